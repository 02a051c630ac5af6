package directory

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"strings"
	"sync"
	"time"
)

// maxCached bounds the cache; when it is full of live entries a new success
// is simply not cached.
const maxCached = 10000

// cache remembers successful binds under an HMAC of (username, password)
// with a key made at start: the password is never stored, and the key dies
// with the process, so the table is useless to whoever reads memory dumps
// of another run.
type cache struct {
	ttl time.Duration
	key [32]byte

	mu      sync.Mutex
	gen     uint64 // bumped by forget, so a bind in flight does not re-cache a forgotten user
	entries map[[sha256.Size]byte]cached
}

type cached struct {
	username string // as given to Authenticate
	id       Identity
	expires  time.Time
}

func newCache(ttl time.Duration) *cache {
	c := &cache{ttl: ttl, entries: map[[sha256.Size]byte]cached{}}
	_, _ = rand.Read(c.key[:]) // crypto/rand.Read never fails (Go 1.24+)
	return c
}

// sum is the cache key of a username and password; the username's length
// comes first so ("ab", "c") and ("a", "bc") differ.
func (c *cache) sum(username, password string) [sha256.Size]byte {
	h := hmac.New(sha256.New, c.key[:])
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(username)))
	h.Write(n[:])
	h.Write([]byte(username))
	h.Write([]byte(password))
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// get returns a live entry (a copy) and the generation to hand to put.
func (c *cache) get(k [sha256.Size]byte, now time.Time) (Identity, bool, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if ok && !now.Before(e.expires) {
		delete(c.entries, k)
		ok = false
	}
	return e.id.clone(), ok, c.gen
}

// put caches a success unless forget ran since gen was read.
func (c *cache) put(k [sha256.Size]byte, gen uint64, username string, id Identity, now time.Time) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(c.entries) >= maxCached {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxCached {
			return
		}
	}
	c.entries[k] = cached{username: username, id: id.clone(), expires: now.Add(c.ttl)}
}

// forget drops every entry of the username (as given or as the directory
// spells it).
func (c *cache) forget(username string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for k, e := range c.entries {
		if strings.EqualFold(e.username, username) || strings.EqualFold(e.id.Username, username) {
			delete(c.entries, k)
		}
	}
}

func (id Identity) clone() Identity {
	id.Groups = slices.Clone(id.Groups)
	id.Roles = slices.Clone(id.Roles)
	return id
}
