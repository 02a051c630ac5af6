package natscallout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync"

	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/store"
)

// A NATS cluster hands an MQTT session (its subscriptions and its queued
// QoS 1 messages) to any new connection with the session's client ID,
// whichever user it authenticates as. The embedded broker refuses a
// client ID another user's client holds and purges another user's
// offline session; warden cannot purge a session held in NATS's streams,
// so here a client ID belongs to the first user admitted with it, in the
// shared store, for as long as that user exists.

// claimPrefix begins the store setting recording a client ID's owner; the
// rest is the SHA-256 of the client ID, so any client ID gives a short,
// plain key.
const claimPrefix = "nats-client/"

// maxCachedClaims bounds the claims a node remembers for when the store
// is unreachable.
const maxCachedClaims = 1 << 16

// claims records and checks client-ID owners.
type claims struct {
	st store.Store

	mu   sync.Mutex
	seen map[string]string // claim key -> owner user ID, as last read
}

func newClaims(st store.Store) *claims {
	return &claims{st: st, seen: map[string]string{}}
}

// errClientID refuses another user's client ID, as the embedded broker
// does (0x85 / 2 there; NATS tells the client "not authorized").
var errClientID = &authhook.Refusal{Code: authhook.RefusedClientID, Reason: "client ID in use by another user"}

// claim admits userID with clientID if the client ID is unclaimed (it is
// then userID's), already userID's, or its owner was deleted. A client ID
// this node saw userID own is admitted without asking the store, so with
// the store unreachable too, as a cached user is.
func (c *claims) claim(ctx context.Context, clientID, userID string) error {
	if clientID == "" {
		return nil // a plain NATS client: no session to take over
	}
	sum := sha256.Sum256([]byte(clientID))
	key := claimPrefix + hex.EncodeToString(sum[:])
	if c.cached(key) == userID {
		// A client ID changes owner only once its owner is deleted, and a
		// deleted user is never admitted: what this node saw still holds.
		return nil
	}
	owner, err := c.owner(ctx, key, userID)
	switch {
	case err != nil:
		return &authhook.Refusal{Code: authhook.RefusedUnavailable, Reason: "store unavailable"}
	case owner != userID:
		return errClientID
	}
	c.remember(key, userID)
	return nil
}

// owner returns the client ID's owner after claiming it for userID if it
// had none, or if its owner no longer exists.
func (c *claims) owner(ctx context.Context, key, userID string) (string, error) {
	v, err := c.st.Setting(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		err = c.st.CreateSetting(ctx, key, []byte(userID))
		if errors.Is(err, store.ErrConflict) {
			v, err = c.st.Setting(ctx, key) // another node won the race
		} else if err == nil {
			return userID, nil
		}
	}
	if err != nil {
		return "", err
	}
	owner := string(v)
	if owner == userID {
		return owner, nil
	}
	if _, err := c.st.User(ctx, owner); !errors.Is(err, store.ErrNotFound) {
		return owner, err // nil: the owner exists and keeps it
	}
	// The owner was deleted: its session, if NATS still holds one, goes
	// to the next user, as the embedded broker purges it for them.
	if err := c.st.PutSetting(ctx, key, []byte(userID)); err != nil {
		return "", err
	}
	return userID, nil
}

func (c *claims) cached(key string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[key]
}

func (c *claims) remember(key, userID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.seen) >= maxCachedClaims {
		clear(c.seen) // rare; the store answers again when it is back
	}
	c.seen[key] = userID
}
