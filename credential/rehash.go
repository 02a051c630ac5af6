package credential

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/warden-mqtt/warden/store"
)

// Defaults for RehasherOptions fields left zero.
const (
	// DefaultRehashPending bounds the upgrades under way at once. Each
	// takes a worker of the verification pool for one hash, so logins
	// barely notice them.
	DefaultRehashPending = 2
	// DefaultRehashTimeout bounds one upgrade: the wait for a worker, the
	// hash and the store write.
	DefaultRehashTimeout = 10 * time.Second
)

// HashStore is the one write a Rehasher makes; store.Store has it.
type HashStore interface {
	RehashPassword(ctx context.Context, id, oldHash, newHash string) error
}

// RehasherOptions configure a Rehasher.
type RehasherOptions struct {
	// Store receives the new hashes; required.
	Store HashStore
	// Verifier makes the new hashes on its pool, shared with the logins,
	// and learns each as verified, so the user's next login is still
	// answered from its cache; required.
	Verifier *Verifier
	// Params are today's parameters, those new passwords are hashed with:
	// a stored hash made with others is upgraded. Zero: DefaultParams.
	Params Params
	// Logger hears about each upgrade (DEBUG) and each that failed for
	// another reason than a race, the store or the pool (WARN); nil:
	// slog.Default().
	Logger *slog.Logger
	// MaxPending bounds the upgrades under way (DefaultRehashPending);
	// Timeout bounds each (DefaultRehashTimeout).
	MaxPending int
	Timeout    time.Duration
}

// Rehasher upgrades stored password hashes to today's parameters after a
// login proves the password right, the one moment the plaintext is at
// hand, as Django, passlib and Rails' has_secure_password do: raising
// Params then reaches every account that logs in, without a reset.
// NeedsRehash decides. The new hash keeps the user's password version
// (store.Store.RehashPassword): the password is the same, so its
// sessions, tokens and connected clients stay. A nil *Rehasher upgrades
// nothing.
type Rehasher struct {
	// ctx ends the upgrades under way (the binary's run): they are
	// background work that outlives the login that started them.
	ctx context.Context
	o   RehasherOptions

	mu      sync.Mutex
	pending map[string]struct{} // IDs of the users being upgraded
	wg      sync.WaitGroup
}

// NewRehasher builds a Rehasher whose upgrades end with ctx.
func NewRehasher(ctx context.Context, o RehasherOptions) (*Rehasher, error) {
	if o.Store == nil || o.Verifier == nil {
		return nil, errors.New("credential: RehasherOptions.Store and RehasherOptions.Verifier are required")
	}
	o.Params = cmp.Or(o.Params, DefaultParams)
	if err := o.Params.Validate(); err != nil {
		return nil, err
	}
	o.Logger = cmp.Or(o.Logger, slog.Default())
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultRehashPending
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultRehashTimeout
	}
	return &Rehasher{ctx: ctx, o: o, pending: map[string]struct{}{}}, nil
}

// Upgrade replaces u.PasswordHash with a hash of password made with
// today's Params when it was made with other parameters. Call it after a
// verification of password against u.PasswordHash that ran and succeeded,
// not one answered from the Verifier's cache: that is the hot path of
// reconnecting clients, and a hash it answers for was checked (and
// upgraded) when it ran. Upgrade returns at once; the hash is made on the
// Verifier's pool and written in the background, one upgrade per user and
// MaxPending in all at a time. One that cannot start or fails leaves the
// old hash, which keeps working; the user's next verified login tries
// again.
func (r *Rehasher) Upgrade(u store.User, password string) {
	if r == nil || !NeedsRehash(u.PasswordHash, r.o.Params) || !r.claim(u.ID) {
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer r.release(u.ID)
		r.upgrade(u, password)
	}()
}

// Wait returns once the upgrades under way are done.
func (r *Rehasher) Wait() { r.wg.Wait() }

// claim reserves an upgrade of the user, false when one is under way or
// MaxPending are.
func (r *Rehasher) claim(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, busy := r.pending[id]; busy || len(r.pending) >= r.o.MaxPending {
		return false
	}
	r.pending[id] = struct{}{}
	return true
}

func (r *Rehasher) release(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.pending, id)
}

// upgrade hashes and writes. The write succeeds only while the stored
// hash is still u's: a password changed meanwhile, or an upgrade by
// another node, wins.
func (r *Rehasher) upgrade(u store.User, password string) {
	ctx, cancel := context.WithTimeout(r.ctx, r.o.Timeout)
	defer cancel()
	h, err := r.o.Verifier.Hash(ctx, password, r.o.Params)
	if err == nil {
		err = r.o.Store.RehashPassword(ctx, u.ID, u.PasswordHash, h)
	}
	if err != nil {
		level := slog.LevelWarn
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrUnavailable) ||
			errors.Is(err, store.ErrClosed) || errors.Is(err, ErrBusy) || ctx.Err() != nil {
			level = slog.LevelDebug // the next verified login tries again
		}
		r.o.Logger.Log(ctx, level, "password hash upgrade skipped", "user", u.Username, "err", err)
		return
	}
	r.o.Verifier.remember(r.o.Verifier.cacheKey(u.ID, h, password), u.PasswordVersion)
	r.o.Logger.Debug("password hash upgraded to the current parameters", "user", u.Username)
}
