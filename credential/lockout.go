package credential

import (
	"encoding/binary"
	"errors"
	"hash/maphash"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Defaults for LockoutOptions fields left zero.
const (
	DefaultMaxFailuresPerUserIP = 10
	DefaultMaxFailuresPerUser   = 100
	DefaultMaxFailuresPerIP     = 100
	DefaultFailureWindow        = 5 * time.Minute
	DefaultLockoutBackoff       = 5 * time.Minute
	DefaultLockoutEntries       = 100_000
)

// LockoutOptions configure a Lockout. Zero values take the defaults; a
// negative maximum switches that limit off.
type LockoutOptions struct {
	// MaxPerUserIP failed password logins for one username from one
	// address within Window block that username from that address.
	MaxPerUserIP int
	// MaxPerUser failed password logins for one username from all
	// addresses together within Window block that username everywhere:
	// the bound on guessing from many addresses. Keep it well above
	// MaxPerUserIP, so that one address cannot lock a user out.
	MaxPerUser int
	// MaxPerIP failed password logins from one address, whatever the
	// username, within Window block that address.
	MaxPerIP int
	// Window is the period failures are counted in; Backoff how long a
	// block lasts.
	Window  time.Duration
	Backoff time.Duration
	// MaxEntries bounds each of the three tables (pairs, usernames,
	// addresses), so a spray of usernames or addresses cannot grow memory
	// (each entry is a few dozen bytes: usernames and addresses are kept
	// as keyed 64-bit hashes, never as strings).
	MaxEntries int
	// Now is the clock; nil: time.Now. Tests inject one.
	Now func() time.Time
}

// Block says whether and why password logins are blocked.
type Block int

// Blocks reported by Lockout.Check.
const (
	// NotBlocked: verify the password.
	NotBlocked Block = iota
	// BlockedUser: this username, from this address or from everywhere;
	// answer exactly as a wrong password, so the lock tells nothing.
	BlockedUser
	// BlockedAddress: this address, whatever the username; the caller
	// may say so (HTTP 429), as it is about the client, not an account.
	BlockedAddress
)

// Lockout is the brute-force limit on password logins, shared by every
// surface (MQTT CONNECT, HTTP logins) so they see the same state. It
// counts failures per (username, address) first, per username alone with
// a much higher threshold, and per address. It concerns passwords only:
// callers accept a valid client certificate or login token whatever it
// says, so failures an attacker causes cannot keep those out.
//
// IPv6 addresses count per /64, the block a single host usually holds.
// The state is per process: on several nodes each keeps its own counts,
// and an attacker gets the limits once per node.
type Lockout struct {
	o    LockoutOptions
	seed maphash.Seed // usernames are kept as keyed hashes, never as strings

	mu    sync.Mutex
	pairs table[pairKey]
	users table[uint64]
	ips   table[address]
}

// pairKey is a (username, address) pair.
type pairKey struct {
	user uint64
	addr address
}

// NewLockout builds a lockout.
func NewLockout(o LockoutOptions) *Lockout {
	if o.MaxPerUserIP == 0 {
		o.MaxPerUserIP = DefaultMaxFailuresPerUserIP
	}
	if o.MaxPerUser == 0 {
		o.MaxPerUser = DefaultMaxFailuresPerUser
	}
	if o.MaxPerIP == 0 {
		o.MaxPerIP = DefaultMaxFailuresPerIP
	}
	if o.Window <= 0 {
		o.Window = DefaultFailureWindow
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultLockoutBackoff
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultLockoutEntries
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Lockout{
		o:     o,
		seed:  maphash.MakeSeed(),
		pairs: table[pairKey]{max: o.MaxPerUserIP, limit: o.MaxEntries, m: map[pairKey]entry{}},
		users: table[uint64]{max: o.MaxPerUser, limit: o.MaxEntries, m: map[uint64]entry{}},
		ips:   table[address]{max: o.MaxPerIP, limit: o.MaxEntries, m: map[address]entry{}},
	}
}

// Options returns the options in effect (defaults filled in).
func (l *Lockout) Options() LockoutOptions { return l.o }

// keys returns the three keys of a login of username from remote.
func (l *Lockout) keys(username, remote string) (pairKey, uint64, address) {
	u, a := maphash.String(l.seed, username), l.addrOf(remote)
	return pairKey{u, a}, u, a
}

// Check reports whether a password login of username from remote (an IP
// address, with or without a port) is blocked, and for how long. An
// address block is reported first: it holds whatever the username.
func (l *Lockout) Check(username, remote string) (Block, time.Duration) {
	kp, ku, ka := l.keys(username, remote)
	l.mu.Lock()
	ipUntil, until := l.ips.blockedUntil(ka), max(l.pairs.blockedUntil(kp), l.users.blockedUntil(ku))
	l.mu.Unlock()
	if ipUntil == 0 && until == 0 {
		return NotBlocked, 0 // never blocked: no need to read the clock
	}
	now := l.o.Now().UnixNano()
	if ipUntil > now {
		return BlockedAddress, time.Duration(ipUntil - now)
	}
	if until > now {
		return BlockedUser, time.Duration(until - now)
	}
	return NotBlocked, 0
}

// Gate is the gate of a password login of username from remote (see
// Gate): a verification runs only while the login is not blocked, and a
// failed one is counted before its worker is released, so guesses sent at
// once cannot all pass the check made before they waited for a worker.
func (l *Lockout) Gate(username, remote string) Gate {
	return Gate{
		Allow:  func() bool { b, _ := l.Check(username, remote); return b == NotBlocked },
		Failed: func() { l.Fail(username, remote) },
	}
}

// Fail records a failed password login of username from remote.
func (l *Lockout) Fail(username, remote string) {
	kp, ku, ka := l.keys(username, remote)
	now := l.o.Now().UnixNano()
	window, backoff := int64(l.o.Window), int64(l.o.Backoff)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pairs.fail(kp, now, window, backoff)
	l.users.fail(ku, now, window, backoff)
	l.ips.fail(ka, now, window, backoff)
}

// Succeed forgets the failures of username from remote after a
// successful login. The username's total and the address's count stay:
// a device that logs in often must not reset the count of an attacker
// guessing from elsewhere, or from behind the same NAT.
func (l *Lockout) Succeed(username, remote string) {
	kp, _, _ := l.keys(username, remote)
	l.mu.Lock()
	if len(l.pairs.m) > 0 {
		delete(l.pairs.m, kp)
	}
	l.mu.Unlock()
}

// Lock blocks username's password logins from every address for
// Backoff, at once (too many wrong MFA codes after a right password).
func (l *Lockout) Lock(username string) {
	now := l.o.Now().UnixNano()
	k := maphash.String(l.seed, username)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.users.put(k, entry{start: now, until: now + int64(l.o.Backoff)}, now, int64(l.o.Window))
}

// address is the part of a client's address that failures count by: an
// IPv4 address (as IPv4-mapped IPv6), an IPv6 /64, or the keyed hash of
// something unparsable (marked by all ones in its second half, which no
// IPv4 or masked IPv6 address has).
type address [16]byte

// addrOf parses remote ("ip:port", "[ip6]:port" or a bare address)
// without allocating, also for what is no IP address (a pipe, a unix
// socket): every CONNECT calls it.
func (l *Lockout) addrOf(remote string) address {
	host := remote
	if strings.HasPrefix(host, "[") {
		if end := strings.IndexByte(host, ']'); end > 0 {
			host = host[1:end]
		}
	} else if i := strings.IndexByte(host, ':'); i >= 0 && i == strings.LastIndexByte(host, ':') {
		host = host[:i] // IPv4 with a port; a bare IPv6 address has several colons
	}
	a, err := netip.Addr{}, errNotIP
	if ipChars(host) {
		a, err = netip.ParseAddr(host)
	}
	if err != nil {
		var out address
		binary.LittleEndian.PutUint64(out[:8], maphash.String(l.seed, host))
		binary.LittleEndian.PutUint64(out[8:], ^uint64(0))
		return out
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		a = netip.PrefixFrom(a, 64).Masked().Addr()
	}
	return a.As16()
}

var errNotIP = errors.New("not an IP address")

// ipChars: s could be an IP address (ParseAddr allocates its error for
// anything else).
func ipChars(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F', c == '.', c == ':', c == '%':
		default:
			return false
		}
	}
	return s != ""
}

// entry is the failure count of one key. Times are Unix nanoseconds.
type entry struct {
	count int64
	start int64 // start of the counting window
	until int64 // blocked before this
}

// table counts failures per key, with at most limit entries. Go maps hash
// their keys with a per-map random seed, so keys cannot be chosen to
// collide.
type table[K comparable] struct {
	max   int // failures that block; <= 0: never
	limit int
	m     map[K]entry
	swept int64 // last sweep of expired entries
}

func (t *table[K]) blockedUntil(k K) int64 {
	if t.max <= 0 || len(t.m) == 0 {
		return 0
	}
	return t.m[k].until
}

func (t *table[K]) fail(k K, now, window, backoff int64) {
	if t.max <= 0 {
		return
	}
	e, ok := t.m[k]
	if !ok || now-e.start > window {
		e.count, e.start = 0, now
	}
	e.count++
	if e.count >= int64(t.max) {
		e.until = now + backoff
		e.count, e.start = 0, now
	}
	t.put(k, e, now, window)
}

// put stores e under k. A new key first sweeps expired entries out (at
// most once per window, so the cost is spread over many calls); if the
// table is still full, one entry of little value goes, chosen among a few
// sampled (map iteration starts at a random place): an expired one, else
// one not blocked with the fewest failures, else the block that ends
// first.
func (t *table[K]) put(k K, e entry, now, window int64) {
	if _, ok := t.m[k]; !ok {
		if now-t.swept > window {
			t.swept = now
			for old, x := range t.m {
				if x.expired(now, window) {
					delete(t.m, old)
				}
			}
		}
		if len(t.m) >= t.limit {
			var victim K
			var worst entry
			found := false
			n := 0
			for old, x := range t.m {
				if x.expired(now, window) {
					victim, found = old, true
					break
				}
				if !found || x.less(worst, now) {
					victim, worst, found = old, x, true
				}
				if n++; n == 8 {
					break
				}
			}
			delete(t.m, victim)
		}
	}
	t.m[k] = e
}

func (e entry) expired(now, window int64) bool { return now >= e.until && now-e.start > window }

// less: e is worth less than o (evicted first).
func (e entry) less(o entry, now int64) bool {
	eb, ob := e.until > now, o.until > now
	switch {
	case eb != ob:
		return !eb
	case eb:
		return e.until < o.until
	}
	return e.count < o.count
}
