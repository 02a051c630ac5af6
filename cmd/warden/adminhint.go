package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/warden-mqtt/warden/store"
)

// The generated admin password is logged once, by the start that creates
// the admin. Should that line be lost (the start failed later and the log
// scrolled by, or nobody kept it), every later start reminds the operator
// how to get a password, until the password is known to be in use.
//
// The signal is a store setting, adminPasswordSetting, written by
// bootstrap with the admin's ID and password version when it generates the
// password, and marked used (UsedAt) as soon as the store shows any of:
//   - a token issued to the admin: every HTTP login (password, MFA, OAuth2
//     alias) records one, and so does every token obtained with a login;
//   - a new password version: the admin changed its password, or an
//     operator reset it with `warden user add admin`;
//   - the admin deleted.
//
// Checked at every start and, while unused, followed on the store's change
// feed, so a login followed by a logout before the next start still
// counts. A password-only MQTT CONNECT as admin leaves no record and does
// not count. Token records alone would not do: a logout deletes the
// login's record, and the reminder would come back.
const adminPasswordSetting = "bootstrap/admin-password"

// adminPasswordHint is the reminder logged at WARN on every start while
// the generated admin password is unused.
const adminPasswordHint = "the admin user has not logged in yet; if the generated password was lost, run: warden user add admin --role admin"

// adminPasswordRecord is the value of adminPasswordSetting.
type adminPasswordRecord struct {
	UserID          string    `json:"userId"`
	PasswordVersion uint64    `json:"passwordVersion"`
	GeneratedAt     time.Time `json:"generatedAt"`
	// UsedAt is when the password was first seen in use; zero while not.
	UsedAt time.Time `json:"usedAt,omitzero"`
}

// recordGeneratedPassword writes adminPasswordSetting for u, whose
// password bootstrap has just generated.
func recordGeneratedPassword(ctx context.Context, s store.Store, u store.User) error {
	raw, err := json.Marshal(adminPasswordRecord{UserID: u.ID, PasswordVersion: u.PasswordVersion, GeneratedAt: time.Now().UTC()})
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if err := s.PutSetting(ctx, adminPasswordSetting, raw); err != nil {
		return fmt.Errorf("bootstrap: record the generated admin password: %w", err)
	}
	return nil
}

// unusedAdminPassword returns the record of a generated admin password
// that is not known to be in use yet; ok is false when there is none (the
// admin was created with a configured password, or before this record
// existed) or it is in use. A use the record does not know yet is recorded
// on the way.
func unusedAdminPassword(ctx context.Context, s store.Store, log *slog.Logger) (rec adminPasswordRecord, ok bool, err error) {
	raw, err := s.Setting(ctx, adminPasswordSetting)
	if errors.Is(err, store.ErrNotFound) {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, fmt.Errorf("generated admin password: %w", err)
	}
	if err := json.Unmarshal(raw, &rec); err != nil {
		return rec, false, fmt.Errorf("generated admin password: setting %s: %w", adminPasswordSetting, err)
	}
	if !rec.UsedAt.IsZero() {
		return rec, false, nil
	}
	used, err := adminPasswordUsed(ctx, s, rec)
	if err != nil || !used {
		return rec, !used, err
	}
	return rec, false, markAdminPasswordUsed(ctx, s, rec, log)
}

// adminPasswordUsed reports whether the store shows the generated password
// in use: the admin has a token, has another password, or is gone.
func adminPasswordUsed(ctx context.Context, s store.Store, rec adminPasswordRecord) (bool, error) {
	u, err := s.User(ctx, rec.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("generated admin password: %w", err)
	}
	if u.PasswordVersion != rec.PasswordVersion {
		return true, nil
	}
	tokens, err := s.UserTokens(ctx, rec.UserID)
	if err != nil {
		return false, fmt.Errorf("generated admin password: %w", err)
	}
	return len(tokens) > 0, nil
}

// markAdminPasswordUsed records that the generated password is in use, so
// later starts stop reminding.
func markAdminPasswordUsed(ctx context.Context, s store.Store, rec adminPasswordRecord, log *slog.Logger) error {
	rec.UsedAt = time.Now().UTC()
	raw, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("generated admin password: %w", err)
	}
	if err := s.PutSetting(ctx, adminPasswordSetting, raw); err != nil {
		return fmt.Errorf("generated admin password: %w", err)
	}
	log.Info("the admin user has logged in or has a new password: starts no longer remind how to reset it", "user", adminUsername)
	return nil
}

// remindAdminPassword logs adminPasswordHint at WARN when the admin's
// generated password is not known to be in use. bootstrap calls it on
// every start but the one that logged the password.
func remindAdminPassword(ctx context.Context, s store.Store, log *slog.Logger) error {
	_, unused, err := unusedAdminPassword(ctx, s, log)
	if err != nil {
		return err
	}
	if unused {
		log.Warn(adminPasswordHint, "user", adminUsername)
	}
	return nil
}

// followAdminPassword watches the store, until ctx is done or the store
// closes, for the first use of an unused generated admin password (on any
// node) and records it, so that a login followed by a logout before the
// next start still ends the reminder. It returns at once when there is
// nothing to follow; errors only cost the reminder its accuracy, so they
// are logged at debug.
func followAdminPassword(ctx context.Context, s store.Store, log *slog.Logger) {
	rec, unused, err := unusedAdminPassword(ctx, s, log)
	if err != nil || !unused {
		if err != nil {
			log.Debug("not following the generated admin password", "err", err)
		}
		return
	}
	events, err := s.Watch(ctx)
	if err != nil {
		log.Debug("not following the generated admin password", "err", err)
		return
	}
	go func() {
		// Once more now that the feed is open: a login between the read
		// above and Watch has no event left to see.
		if _, unused, err := unusedAdminPassword(ctx, s, log); err == nil && !unused {
			return
		}
		cur := rec
		for ev := range events {
			next, done, err := adminPasswordEvent(ctx, s, cur, ev, log)
			if err != nil {
				log.Debug("following the generated admin password", "err", err)
			}
			if done {
				return
			}
			cur = next
		}
	}()
}

// adminPasswordEvent handles one change for followAdminPassword: when ev
// shows the generated password of rec in use, it records so and done is
// true; done is also true when the record says so already (another node
// saw the use) or is gone. A restore may replace the record: the current
// one is returned.
func adminPasswordEvent(ctx context.Context, s store.Store, rec adminPasswordRecord, ev store.Event, log *slog.Logger) (_ adminPasswordRecord, done bool, err error) {
	used := false
	switch {
	case ev.Kind == store.KindToken && ev.Op == store.OpPut:
		t, err := s.Token(ctx, ev.ID)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				err = nil // revoked already; the next start's check decides
			}
			return rec, false, err
		}
		used = t.UserID == rec.UserID
	case ev.Kind == store.KindUser && ev.ID == rec.UserID:
		if used, err = adminPasswordUsed(ctx, s, rec); err != nil {
			return rec, false, err
		}
	case ev.Kind == store.KindReset || (ev.Kind == store.KindSetting && ev.ID == adminPasswordSetting):
		// Re-read: unusedAdminPassword records a use it finds itself.
		cur, unused, err := unusedAdminPassword(ctx, s, log)
		if err != nil {
			return rec, false, err
		}
		return cur, !unused, nil
	}
	if !used {
		return rec, false, nil
	}
	return rec, true, markAdminPasswordUsed(ctx, s, rec, log)
}
