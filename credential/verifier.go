package credential

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"runtime"
	"sync"
	"sync/atomic"
)

// ErrBusy: no verification worker became free before the caller's
// context ended. It is a server-wide condition, not a verdict on the
// password: answer "busy, retry later".
var ErrBusy = errors.New("credential: password verification pool busy")

// ErrBlocked: the caller's Gate refused the verification once a worker was
// free (the lockout blocked the attempt while it waited). Nothing was
// hashed; answer as the lockout's block would have been answered.
var ErrBlocked = errors.New("credential: password verification refused by the caller's gate")

// Gate bounds verifications by a caller's rule (the lockout) across
// callers that wait for the pool at the same time. Checking the rule
// before waiting is not enough: guesses sent at once all pass that check,
// and then all run. VerifyIf and DummyIf ask Allow once they hold a
// worker, right before hashing, and tell Failed about a password that did
// not match while they still hold it, so the next waiter's Allow sees the
// failure: with one worker, N parallel guesses run at most the rule's
// limit of verifications (with W workers, at most W-1 more).
//
// A zero Gate allows everything and records nothing (Verify, Dummy).
// Lockout.Gate builds the gate of a login; an HTTP login adopts it by
// calling VerifyIf and DummyIf with lockout.Gate(username, remote) and
// leaving the failures they ran to the gate (it still counts those that
// never reach a worker, such as an over-long password).
type Gate struct {
	// Allow reports whether the verification may run; false: ErrBlocked.
	Allow func() bool
	// Failed records a verification that ran and did not succeed (a
	// wrong password, a malformed stored hash, or any dummy run).
	Failed func()
}

func (g Gate) allow() bool { return g.Allow == nil || g.Allow() }

func (g Gate) failed() {
	if g.Failed != nil {
		g.Failed()
	}
}

// Defaults for VerifierOptions fields left zero.
const (
	DefaultVerifyCacheSize = 100_000
)

// DefaultVerifyWorkers is half the cores, at least one: a flood of wrong
// passwords then saturates only those, and the rest keep serving
// connected clients, cached reconnects and the API.
func DefaultVerifyWorkers() int { return max(1, runtime.GOMAXPROCS(0)/2) }

// VerifierOptions configure a Verifier. Zero values take the defaults.
type VerifierOptions struct {
	// Workers bounds concurrent argon2id verifications, and with them the
	// memory they take (Params.Memory each: 19 MiB with DefaultParams).
	Workers int
	// CacheSize bounds the cache of successful verifications.
	CacheSize int
	// Params are the parameters of the dummy hash that Dummy verifies:
	// those new hashes are made with, so a refusal that never reaches a
	// real hash costs what a wrong password costs.
	Params Params
}

// Verifier checks passwords with argon2id on a bounded pool of workers
// shared by every surface (MQTT CONNECT, HTTP logins), and remembers
// successful checks, so a reconnecting fleet costs microseconds and a
// flood of logins cannot take every CPU or allocate argon2id's memory
// without bound. Callers bound their wait with their context.
type Verifier struct {
	slots chan struct{}
	dummy string
	// memKiB is the argon2id memory of Params, for WorkingSet.
	memKiB uint32
	runs   atomic.Uint64

	key  [32]byte  // per-process HMAC key: cache keys never hold raw secrets
	macs sync.Pool // *keyer

	mu    sync.Mutex
	max   int
	cache map[[32]byte]uint64 // keyed hash of (user ID, password) -> password version
}

// NewVerifier builds a verifier and its dummy hash.
func NewVerifier(o VerifierOptions) (*Verifier, error) {
	if o.Workers <= 0 {
		o.Workers = DefaultVerifyWorkers()
	}
	if o.CacheSize <= 0 {
		o.CacheSize = DefaultVerifyCacheSize
	}
	if o.Params == (Params{}) {
		o.Params = DefaultParams
	}
	// A random password: the dummy hash never matches anything sent.
	var pw [24]byte
	if _, err := rand.Read(pw[:]); err != nil {
		return nil, fmt.Errorf("credential: dummy password: %w", err)
	}
	dummy, err := Hash(string(pw[:]), o.Params)
	if err != nil {
		return nil, err
	}
	v := &Verifier{slots: make(chan struct{}, o.Workers), dummy: dummy, memKiB: o.Params.Memory, max: o.CacheSize, cache: map[[32]byte]uint64{}}
	if _, err := rand.Read(v.key[:]); err != nil {
		return nil, fmt.Errorf("credential: cache key: %w", err)
	}
	v.macs.New = func() any { return &keyer{mac: hmac.New(sha256.New, v.key[:])} }
	return v, nil
}

// Workers is the number of concurrent verifications the pool allows.
func (v *Verifier) Workers() int { return cap(v.slots) }

// WorkingSet is the memory, in bytes, the pool's verifications hold
// while all its workers run: each allocates its Params' argon2id memory
// (19 MiB with DefaultParams). The process needs at least twice this
// beside its other memory, since a finished verification's memory stays
// in the heap until the next collection; cmd/warden checks its memory
// limit against it. A stored hash made with larger parameters (a restored
// backup) takes more until it is rehashed.
func (v *Verifier) WorkingSet() int64 { return int64(cap(v.slots)) * int64(v.memKiB) << 10 }

// Verifications counts the argon2id computations run so far on the pool
// (verifications real and dummy, and hashes; cache hits are not counted).
func (v *Verifier) Verifications() uint64 { return v.runs.Load() }

// keyer computes cache keys: an HMAC and the buffer its input is framed
// in, reused through Verifier.macs, so a cached CONNECT computes its key
// without allocating (a []byte conversion per field, the length prefix
// and the sum escaped through the hash.Hash interface: five allocations
// per key, the most of any step of a warm CONNECT, issue 21).
type keyer struct {
	mac hash.Hash
	buf []byte
}

// maxKeyerBuf bounds the buffer a pooled keyer keeps: a key input is a
// user ID, an encoded hash and a password of at most MaxPasswordLen, so
// a larger one came from an odd caller and is not kept.
const maxKeyerBuf = 4 << 10

// cacheKey is HMAC(key, userID, encoded, password), each field
// length-prefixed so ("ab","c") and ("a","bc") never collide. The stored
// hash is part of the key (its salt is new with every password), so a
// success stays valid only for the hash it was checked against: a
// password version can repeat (a restore rewinds it, a later change
// reaches the same number), a hash does not.
func (v *Verifier) cacheKey(userID, encoded, password string) [32]byte {
	k := v.macs.Get().(*keyer)
	b := k.buf[:0]
	for _, f := range [...]string{userID, encoded, password} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	k.mac.Reset()
	k.mac.Write(b)
	clear(b)                // the password must not linger in a pooled buffer
	sum := k.mac.Sum(b[:0]) // in b's array, unless it is too small
	var out [32]byte
	copy(out[:], sum)
	clear(sum)
	if cap(sum) <= maxKeyerBuf {
		k.buf = sum[:0]
	} else {
		k.buf = nil
	}
	v.macs.Put(k)
	return out
}

// Verify reports whether password matches encoded, the hash of user
// userID at password version version. cached says the answer came from
// memory (a success verified earlier for this version). It waits for a
// worker until ctx ends, then returns ErrBusy. A malformed hash is an
// error, never a match.
func (v *Verifier) Verify(ctx context.Context, userID, password, encoded string, version uint64) (ok, cached bool, err error) {
	return v.VerifyIf(ctx, Gate{}, userID, password, encoded, version)
}

// VerifyIf is Verify behind g (see Gate): once a worker is free it asks
// g.Allow, and answers ErrBlocked without hashing when refused; a
// verification that ran and failed is reported to g.Failed before the
// worker is released. A cached success is answered at once, without
// asking g: it costs nothing to bound, and the caller checked its rule
// before calling.
func (v *Verifier) VerifyIf(ctx context.Context, g Gate, userID, password, encoded string, version uint64) (ok, cached bool, err error) {
	k := v.cacheKey(userID, encoded, password)
	v.mu.Lock()
	ver, hit := v.cache[k]
	v.mu.Unlock()
	if hit && ver == version {
		return true, true, nil
	}
	ok, err = v.run(ctx, g, password, encoded)
	if err != nil || !ok {
		return false, false, err
	}
	v.remember(k, version)
	return true, false, nil
}

// remember caches a success under k (cacheKey) for the password version.
func (v *Verifier) remember(k [32]byte, version uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.cache) >= v.max {
		for old := range v.cache { // map order is random: a cheap random eviction
			delete(v.cache, old)
			break
		}
	}
	v.cache[k] = version
}

// Dummy spends what verifying a wrong password costs, through the same
// workers, for a refusal that must not tell whether the user exists
// (unknown, suspended, no password set). It returns only ErrBusy, like
// Verify would have.
func (v *Verifier) Dummy(ctx context.Context, password string) error {
	return v.DummyIf(ctx, Gate{}, password)
}

// DummyIf is Dummy behind g (see Gate): it returns ErrBlocked without
// hashing when g.Allow refuses once a worker is free, and otherwise
// reports the run (which never matches) to g.Failed before the worker is
// released. Errors other than ErrBusy and ErrBlocked are not returned.
func (v *Verifier) DummyIf(ctx context.Context, g Gate, password string) error {
	_, err := v.run(ctx, g, password, v.dummy)
	if errors.Is(err, ErrBusy) || errors.Is(err, ErrBlocked) {
		return err
	}
	return nil
}

// Check reports whether password matches encoded, like Verify but
// without the cache: for hashes that belong to no user yet (a pending
// registration) or that are checked once (the current password of a
// password change). It waits for a worker like Verify.
func (v *Verifier) Check(ctx context.Context, password, encoded string) (bool, error) {
	return v.run(ctx, Gate{}, password, encoded)
}

// Hash hashes a new password with p on the same workers: making a hash
// costs what verifying one does, and the registration endpoint, which
// needs no token, must not get around the pool's bound.
func (v *Verifier) Hash(ctx context.Context, password string, p Params) (string, error) {
	if len(password) > MaxPasswordLen {
		return "", ErrPasswordTooLong
	}
	if err := v.acquire(ctx); err != nil {
		return "", err
	}
	defer func() { <-v.slots }()
	v.runs.Add(1)
	return Hash(password, p)
}

// run verifies password against encoded on a worker, behind g.
func (v *Verifier) run(ctx context.Context, g Gate, password, encoded string) (bool, error) {
	if len(password) > MaxPasswordLen {
		return false, ErrPasswordTooLong // refused before queueing: costs nothing
	}
	if err := v.acquire(ctx); err != nil {
		return false, err
	}
	defer func() { <-v.slots }()
	if !g.allow() {
		return false, ErrBlocked
	}
	v.runs.Add(1)
	ok, err := Verify(password, encoded)
	if !ok {
		g.failed() // still holding the worker: the next waiter's Allow sees it
	}
	return ok, err
}

// acquire takes a worker slot, or gives up with ErrBusy when ctx ends.
func (v *Verifier) acquire(ctx context.Context) error {
	select {
	case v.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ErrBusy
	}
}
