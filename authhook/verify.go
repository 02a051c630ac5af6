package authhook

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"sync"

	"github.com/warden-mqtt/warden/credential"
)

// errBusy: no hashing worker became free in time.
var errBusy = errors.New("authhook: password verification queue full")

// verifier checks passwords with argon2id on a bounded pool of workers and
// remembers successful checks, so a reconnecting fleet costs microseconds
// and a flood of wrong passwords cannot take every CPU.
type verifier struct {
	slots chan struct{}

	key  [32]byte // per-process HMAC key: cache keys never hold raw secrets
	pool sync.Pool

	mu    sync.Mutex
	max   int
	cache map[[32]byte]uint64 // keyed hash of (user ID, password) -> password version
}

func newVerifier(workers, cacheSize int) *verifier {
	v := &verifier{slots: make(chan struct{}, workers), max: cacheSize, cache: map[[32]byte]uint64{}}
	if _, err := rand.Read(v.key[:]); err != nil {
		panic("authhook: no randomness for the cache key: " + err.Error())
	}
	v.pool.New = func() any { return hmac.New(sha256.New, v.key[:]) }
	return v
}

// cacheKey is HMAC(key, len(userID) userID len(password) password): fields
// are length-prefixed so ("ab","c") and ("a","bc") never collide.
func (v *verifier) cacheKey(userID, password string) [32]byte {
	m := v.pool.Get().(hash.Hash)
	m.Reset()
	var n [binary.MaxVarintLen64]byte
	m.Write(n[:binary.PutUvarint(n[:], uint64(len(userID)))])
	m.Write([]byte(userID))
	m.Write(n[:binary.PutUvarint(n[:], uint64(len(password)))])
	m.Write([]byte(password))
	var out [32]byte
	m.Sum(out[:0])
	v.pool.Put(m)
	return out
}

// verify reports whether password matches the user's hash. cached says the
// answer came from memory.
func (v *verifier) verify(ctx context.Context, userID, password, encoded string, version uint64) (ok, cached bool, err error) {
	k := v.cacheKey(userID, password)
	v.mu.Lock()
	ver, hit := v.cache[k]
	v.mu.Unlock()
	if hit && ver == version {
		return true, true, nil
	}
	select {
	case v.slots <- struct{}{}:
	case <-ctx.Done():
		return false, false, errBusy
	}
	ok, err = credential.Verify(password, encoded)
	<-v.slots
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
