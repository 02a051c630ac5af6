package authhook

import (
	"sync"
	"time"
)

// limiter counts failed CONNECTs per key (a username, or a remote IP) in a
// fixed window and blocks a key that reaches the maximum for a back-off
// period, so a guesser cannot make the broker hash passwords without end.
type limiter struct {
	max     int
	window  time.Duration
	backoff time.Duration
	limit   int // bound on tracked keys, so a spray of usernames cannot grow memory

	mu   sync.Mutex
	keys map[string]*failures
}

type failures struct {
	count        int
	windowStart  time.Time
	blockedUntil time.Time
}

func newLimiter(max int, window, backoff time.Duration, limit int) *limiter {
	return &limiter{max: max, window: window, backoff: backoff, limit: limit, keys: map[string]*failures{}}
}

// blocked reports whether key is in its back-off period.
func (l *limiter) blocked(key string, now time.Time) bool {
	if l == nil || l.max <= 0 || key == "" {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.keys[key]
	return f != nil && now.Before(f.blockedUntil)
}

// fail records one failure for key.
func (l *limiter) fail(key string, now time.Time) {
	if l == nil || l.max <= 0 || key == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.keys[key]
	if f == nil {
		if len(l.keys) >= l.limit {
			l.pruneLocked(now)
			if len(l.keys) >= l.limit {
				// Still full of live entries: forget an arbitrary one rather
				// than grow without bound.
				for k := range l.keys {
					delete(l.keys, k)
					break
				}
			}
		}
		f = &failures{windowStart: now}
		l.keys[key] = f
	}
	if now.Sub(f.windowStart) > l.window {
		f.count, f.windowStart = 0, now
	}
	f.count++
	if f.count >= l.max {
		f.blockedUntil = now.Add(l.backoff)
		f.count, f.windowStart = 0, now
	}
}

// reset forgets key's failures (after a successful login for a username).
func (l *limiter) reset(key string) {
	if l == nil || key == "" {
		return
	}
	l.mu.Lock()
	delete(l.keys, key)
	l.mu.Unlock()
}

func (l *limiter) pruneLocked(now time.Time) {
	for k, f := range l.keys {
		if now.After(f.blockedUntil) && now.Sub(f.windowStart) > l.window {
			delete(l.keys, k)
		}
	}
}

func (l *limiter) prune(now time.Time) {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.pruneLocked(now)
	l.mu.Unlock()
}
