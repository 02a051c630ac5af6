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
	runs  atomic.Uint64

	key  [32]byte // per-process HMAC key: cache keys never hold raw secrets
	macs sync.Pool

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
	v := &Verifier{slots: make(chan struct{}, o.Workers), dummy: dummy, max: o.CacheSize, cache: map[[32]byte]uint64{}}
	if _, err := rand.Read(v.key[:]); err != nil {
		return nil, fmt.Errorf("credential: cache key: %w", err)
	}
	v.macs.New = func() any { return hmac.New(sha256.New, v.key[:]) }
	return v, nil
}

// Workers is the number of concurrent verifications the pool allows.
func (v *Verifier) Workers() int { return cap(v.slots) }

// Verifications counts the argon2id computations run so far on the pool
// (verifications real and dummy, and hashes; cache hits are not counted).
func (v *Verifier) Verifications() uint64 { return v.runs.Load() }

// cacheKey is HMAC(key, userID, encoded, password), each field
// length-prefixed so ("ab","c") and ("a","bc") never collide. The stored
// hash is part of the key (its salt is new with every password), so a
// success stays valid only for the hash it was checked against: a
// password version can repeat (a restore rewinds it, a later change
// reaches the same number), a hash does not.
func (v *Verifier) cacheKey(userID, encoded, password string) [32]byte {
	m := v.macs.Get().(hash.Hash)
	m.Reset()
	var n [binary.MaxVarintLen64]byte
	for _, f := range [...]string{userID, encoded, password} {
		m.Write(n[:binary.PutUvarint(n[:], uint64(len(f)))])
		m.Write([]byte(f))
	}
	var out [32]byte
	m.Sum(out[:0])
	v.macs.Put(m)
	return out
}

// Verify reports whether password matches encoded, the hash of user
// userID at password version version. cached says the answer came from
// memory (a success verified earlier for this version). It waits for a
// worker until ctx ends, then returns ErrBusy. A malformed hash is an
// error, never a match.
func (v *Verifier) Verify(ctx context.Context, userID, password, encoded string, version uint64) (ok, cached bool, err error) {
	k := v.cacheKey(userID, encoded, password)
	v.mu.Lock()
	ver, hit := v.cache[k]
	v.mu.Unlock()
	if hit && ver == version {
		return true, true, nil
	}
	ok, err = v.run(ctx, password, encoded)
	if err != nil || !ok {
		return false, false, err
	}
	v.mu.Lock()
	if len(v.cache) >= v.max {
		for old := range v.cache { // map order is random: a cheap random eviction
			delete(v.cache, old)
			break
		}
	}
	v.cache[k] = version
	v.mu.Unlock()
	return true, false, nil
}

// Dummy spends what verifying a wrong password costs, through the same
// workers, for a refusal that must not tell whether the user exists
// (unknown, suspended, no password set). It returns only ErrBusy, like
// Verify would have.
func (v *Verifier) Dummy(ctx context.Context, password string) error {
	_, err := v.run(ctx, password, v.dummy)
	if errors.Is(err, ErrBusy) {
		return err
	}
	return nil
}

// Check reports whether password matches encoded, like Verify but
// without the cache: for hashes that belong to no user yet (a pending
// registration) or that are checked once (the current password of a
// password change). It waits for a worker like Verify.
func (v *Verifier) Check(ctx context.Context, password, encoded string) (bool, error) {
	return v.run(ctx, password, encoded)
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

func (v *Verifier) run(ctx context.Context, password, encoded string) (bool, error) {
	if len(password) > MaxPasswordLen {
		return false, ErrPasswordTooLong // refused before queueing: costs nothing
	}
	if err := v.acquire(ctx); err != nil {
		return false, err
	}
	defer func() { <-v.slots }()
	v.runs.Add(1)
	return Verify(password, encoded)
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
