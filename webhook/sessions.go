package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/store"
)

// An external broker asks warden at every PUBLISH and SUBSCRIBE, but keeps
// a connected client's subscriptions (and its session) as they were
// granted, and never asks again about a client that stays connected. So
// each broker surface with an API to disconnect clients keeps a tracker of
// the sessions this node admitted: after every change of the model, each is
// decided again (authhook.Hook.Recheck); a session whose access ended or
// whose permissions changed is disconnected through the broker's API, and
// its client reconnects to the rights it has now.

// kickFunc disconnects one session through a broker's API. key is what
// the surface tracked it by (its client ID, with VerneMQ's mountpoint).
type kickFunc func(ctx context.Context, key string) error

// tracked is one admitted session.
type tracked struct {
	grant  authhook.Grant
	digest string // rightsDigest of what it was admitted with
}

// tracker keeps one broker's admitted sessions and disconnects those a
// change ends or alters.
type tracker struct {
	name    string // the broker, for logs
	decider Decider
	kick    kickFunc
	log     *slog.Logger

	mu       sync.Mutex
	sessions map[string]tracked

	wake chan struct{}
	stop func()
	done chan struct{}
}

// newTracker starts following the model's changes for sessions kicked
// with kick, until ctx ends.
func newTracker(ctx context.Context, name string, d Decider, kick kickFunc, log *slog.Logger) *tracker {
	t := &tracker{name: name, decider: d, kick: kick, log: log, sessions: map[string]tracked{},
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	t.stop = d.OnChange(func(store.Event) {
		select {
		case t.wake <- struct{}{}:
		default:
		}
	})
	go t.loop(ctx)
	return t
}

// add tracks a session admitted with d (replacing one with the same key:
// the broker took the session over).
func (t *tracker) add(key string, d authhook.Decision) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sessions[key] = tracked{grant: d.Grant, digest: rightsDigest(d)}
}

// remove forgets a session that ended.
func (t *tracker) remove(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.sessions, key)
}

// loop sweeps after each change until ctx ends.
func (t *tracker) loop(ctx context.Context) {
	defer close(t.done)
	defer t.stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.wake:
		}
		t.sweep(ctx)
	}
}

// sweep decides every tracked session again and kicks those that may not
// stay as they are. A session the store cannot decide now stays.
func (t *tracker) sweep(ctx context.Context) {
	t.mu.Lock()
	sessions := make(map[string]tracked, len(t.sessions))
	for k, s := range t.sessions {
		sessions[k] = s
	}
	t.mu.Unlock()
	for key, s := range sessions {
		reason := ""
		d, err := t.decider.Recheck(ctx, s.grant)
		var r *authhook.Refusal
		switch {
		case errors.As(err, &r):
			reason = r.Reason
		case err != nil:
			continue
		case rightsDigest(d) != s.digest:
			reason = "permissions or publish prefix changed"
		default:
			continue
		}
		kctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = t.kick(kctx, key)
		cancel()
		if err != nil {
			t.log.Warn(t.name+" session not disconnected", "user", s.grant.Username, "client", s.grant.ClientID, "reason", reason, "err", err)
			continue
		}
		t.remove(key)
		t.log.Info(t.name+" session disconnected", "user", s.grant.Username, "client", s.grant.ClientID, "reason", reason)
	}
}

// rightsDigest identifies what a decision lets a client do: its
// permissions and its publish prefix (which EMQX's acl rules cannot
// follow, and a broker applies from the answer it got).
func rightsDigest(d authhook.Decision) string {
	return permsDigest(d.Permissions) + "/" + hex.EncodeToString([]byte(d.PublishPrefix))
}

// permsDigest identifies a permission list whatever its order.
func permsDigest(perms []acl.Permission) string {
	lines := make([]string, 0, len(perms))
	for _, p := range perms {
		lines = append(lines, string(p.Context)+"\x00"+string(p.Operation)+"\x00"+p.Resource)
	}
	slices.Sort(lines)
	lines = slices.Compact(lines)
	h := sha256.New()
	for _, l := range lines {
		h.Write([]byte(l))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
