package store

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisLogEvery is how often one kind of go-redis line is logged at most.
const redisLogEvery = 10 * time.Second

// redisLogKinds bounds the kinds a logLimiter tells apart; go-redis's
// format strings and the feed's reasons are constants, so this is never
// reached in practice.
const redisLogKinds = 256

// SetRedisLogger sends what go-redis logs on its own (a failed dial, a
// pub/sub reconnect, a Sentinel failover), by default unstructured lines on
// stderr, to log instead: at WARN, message "redis client", go-redis's text
// in "detail". Each kind of line (go-redis's format string) is logged at
// most once per 10 s, and the next one logged counts those dropped in
// between ("suppressed"): a Redis that is down fails every dial of every
// request. URL user information in the text is masked, and so is every
// password of rawURL (the Redis URL in use), wherever it appears.
//
// go-redis has one logger per process (redis.SetLogger), so this is
// process-wide: the binary calls it once, before it opens its Redis store.
func SetRedisLogger(log *slog.Logger, rawURL string) {
	redis.SetLogger(newRedisLogger(log, urlSecrets(rawURL), time.Now))
}

// redisLogger implements go-redis's logging interface (Printf) on slog.
type redisLogger struct {
	log     *slog.Logger
	secrets []string
	limit   *logLimiter // by format string
}

func newRedisLogger(log *slog.Logger, secrets []string, now func() time.Time) *redisLogger {
	return &redisLogger{log: log, secrets: secrets, limit: newLogLimiter(redisLogEvery, now)}
}

// Printf logs one go-redis line, unless a line of its kind was logged less
// than redisLogEvery ago.
func (l *redisLogger) Printf(ctx context.Context, format string, v ...any) {
	if !l.log.Enabled(ctx, slog.LevelWarn) {
		return
	}
	suppressed, ok := l.limit.allow(format)
	if !ok {
		return
	}
	text := strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: ")
	attrs := []any{"detail", l.redact(text)}
	if suppressed > 0 {
		attrs = append(attrs, "suppressed", suppressed)
	}
	l.log.WarnContext(ctx, "redis client", attrs...)
}

// logLimiter lets one line of each kind through per interval and counts
// the lines it holds back, for problems that repeat as fast as a client
// retries (a Redis that is down fails every dial).
type logLimiter struct {
	every time.Duration
	now   func() time.Time

	mu    sync.Mutex
	kinds map[string]*logKind
}

type logKind struct {
	last       time.Time // last logged
	suppressed int       // held back since
}

func newLogLimiter(every time.Duration, now func() time.Time) *logLimiter {
	return &logLimiter{every: every, now: now, kinds: make(map[string]*logKind)}
}

// allow reports whether a line of kind may be logged now and, if so, how
// many lines of its kind were held back since the last one. Kinds past
// redisLogKinds share one budget, so the table stays bounded.
func (l *logLimiter) allow(kind string) (suppressed int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.kinds[kind]; !ok && len(l.kinds) >= redisLogKinds {
		kind = "" // one kind for the rest
	}
	k := l.kinds[kind]
	if k == nil {
		k = &logKind{}
		l.kinds[kind] = k
	}
	now := l.now()
	if !k.last.IsZero() && now.Sub(k.last) < l.every {
		k.suppressed++
		return 0, false
	}
	k.last = now
	suppressed, k.suppressed = k.suppressed, 0
	return suppressed, true
}

// urlUserinfo matches the user information of a URL (scheme://user:pass@).
var urlUserinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@`)

// redact masks URL user information and the known passwords in s.
func (l *redisLogger) redact(s string) string {
	s = urlUserinfo.ReplaceAllString(s, "${1}xxxxx@")
	for _, p := range l.secrets {
		s = strings.ReplaceAll(s, p, "xxxxx")
	}
	return s
}

// urlSecrets returns the passwords in a Redis URL: the user information's,
// and the values of query parameters whose name says "pass" (e.g.
// sentinel_password).
func urlSecrets(rawURL string) []string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil
	}
	var out []string
	if p, ok := u.User.Password(); ok && p != "" {
		out = append(out, p)
	}
	for k, vs := range u.Query() {
		if strings.Contains(strings.ToLower(k), "pass") {
			for _, v := range vs {
				if v != "" {
					out = append(out, v)
				}
			}
		}
	}
	return out
}
