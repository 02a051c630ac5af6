package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// bucketUsernameFold indexes users by the folded form of their username
// (FoldUsername): fold key -> the IDs holding it, NUL-separated. It makes
// "a new name must not equal an existing one under case folding" one
// lookup inside the write's transaction. More than one ID appears only
// for names stored before the rule existed.
const bucketUsernameFold = "usernamefold"

// NormalizeUsername returns the form usernames are stored and looked up
// in: Unicode NFC, so the same name typed with combining characters
// (NFD, as some keyboards and macOS file names produce) is the same
// name. Invalid UTF-8 is returned unchanged.
func NormalizeUsername(name string) string {
	return norm.NFC.String(name)
}

// FoldUsername returns the key under which two usernames count as the
// same name: Unicode full case folding over the compatibility
// normalisation (NFKC), with default-ignorable characters dropped, which
// approximates Unicode's NFKC_Casefold. "Admin", "ADMIN", "admin" with a
// zero-width space and "ａｄｍｉｎ" (fullwidth) all fold to "admin".
func FoldUsername(name string) string {
	s := norm.NFKC.String(name)
	s = strings.Map(func(r rune) rune {
		if DefaultIgnorable(r) {
			return -1
		}
		return r
	}, s)
	// A Caser keeps state: one per call.
	return norm.NFKC.String(cases.Fold().String(s))
}

// DefaultIgnorable approximates Unicode's Default_Ignorable_Code_Point:
// characters that render as nothing (format characters such as zero-width
// joiners and bidi controls, variation selectors, Hangul fillers). The
// fold key drops them, and the username rules (credential) refuse them in
// new names: one definition, so the two cannot drift apart.
func DefaultIgnorable(r rune) bool {
	return unicode.In(r, unicode.Cf, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point)
}

// foldIDs decodes an index value.
func foldIDs(raw []byte) []string {
	if len(raw) == 0 {
		return nil
	}
	return strings.Split(string(raw), "\x00")
}

// foldAdd records id under the fold key of username.
func foldAdd(tx txn, username, id string) error {
	key := FoldUsername(username)
	raw, err := tx.get(bucketUsernameFold, key)
	if err != nil {
		return err
	}
	ids := foldIDs(raw)
	if slices.Contains(ids, id) {
		return nil
	}
	return tx.put(bucketUsernameFold, key, []byte(strings.Join(append(ids, id), "\x00")))
}

// foldRemove drops id from the fold key of username.
func foldRemove(tx txn, username, id string) error {
	key := FoldUsername(username)
	raw, err := tx.get(bucketUsernameFold, key)
	if err != nil || raw == nil {
		return err
	}
	ids := slices.DeleteFunc(foldIDs(raw), func(x string) bool { return x == id })
	if len(ids) == 0 {
		return tx.del(bucketUsernameFold, key)
	}
	return tx.put(bucketUsernameFold, key, []byte(strings.Join(ids, "\x00")))
}

// foldHolders returns the users, other than self, whose username folds
// like username. Index entries that no longer hold (a user deleted or
// renamed by a warden that did not keep the index) are skipped, so a
// stale entry never refuses a free name.
func foldHolders(tx txn, username, self string) ([]User, error) {
	key := FoldUsername(username)
	raw, err := tx.get(bucketUsernameFold, key)
	if err != nil {
		return nil, err
	}
	var out []User
	for _, id := range foldIDs(raw) {
		if id == self {
			continue
		}
		var u User
		if err := getJSON(tx, bucketUsers, id, &u); err != nil {
			if errors.Is(err, ErrNotFound) {
				continue
			}
			return nil, err
		}
		if FoldUsername(u.Username) == key {
			out = append(out, u)
		}
	}
	return out, nil
}

// checkFoldFree refuses (ErrConflict) a new or changed username that
// equals another user's under FoldUsername.
func checkFoldFree(tx txn, username, self string) error {
	others, err := foldHolders(tx, username, self)
	if err != nil {
		return err
	}
	if len(others) > 0 {
		return fmt.Errorf("%w: username %q is taken: an existing username differs from it only in case, width or invisible characters", conflict, username)
	}
	return nil
}

// repairFoldIndex makes the fold index match the users, in one
// transaction: a store written before the index existed (or by an older
// warden sharing the Redis) gets it built, stale entries go. It writes
// only what differs and emits no event: the index is not part of the
// model. The model runs it once per process, before the first write or
// lookup that needs the index.
func (m *model) repairFoldIndex(ctx context.Context) error {
	return m.be.update(ctx, func(tx txn) error {
		want := map[string][]string{}
		err := tx.forEach(bucketUsers, func(id string, val []byte) error {
			var u User
			if err := json.Unmarshal(val, &u); err != nil {
				return fmt.Errorf("decode %s/%s: %w", bucketUsers, id, err)
			}
			k := FoldUsername(u.Username)
			want[k] = append(want[k], u.ID)
			return nil
		})
		if err != nil {
			return err
		}
		have := map[string]string{}
		if err := tx.forEach(bucketUsernameFold, func(k string, v []byte) error {
			have[k] = string(v)
			return nil
		}); err != nil {
			return err
		}
		for k, ids := range want {
			v := strings.Join(ids, "\x00")
			if have[k] != v {
				if err := tx.put(bucketUsernameFold, k, []byte(v)); err != nil {
					return err
				}
			}
			delete(have, k)
		}
		for k := range have {
			if err := tx.del(bucketUsernameFold, k); err != nil {
				return err
			}
		}
		return nil
	})
}

// foldReady runs repairFoldIndex once per process; a failure (Redis
// down) is retried by the next call.
func (m *model) foldReady(ctx context.Context) error {
	if m.foldRepaired.Load() {
		return nil
	}
	m.foldMu.Lock()
	defer m.foldMu.Unlock()
	if m.foldRepaired.Load() {
		return nil
	}
	if err := m.repairFoldIndex(ctx); err != nil {
		return fmt.Errorf("username index: %w", err)
	}
	m.foldRepaired.Store(true)
	return nil
}
