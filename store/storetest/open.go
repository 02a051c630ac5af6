package storetest

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/store"
)

// openTimeout bounds OpenRedis's connection check.
const openTimeout = 10 * time.Second

// Option adjusts what OpenBolt or OpenRedis opens.
type Option func(*openConfig)

type openConfig struct {
	path   string
	url    string
	logger *slog.Logger
}

// configure applies opts to an empty configuration.
func configure(opts []Option) openConfig {
	var c openConfig
	for _, o := range opts {
		o(&c)
	}
	return c
}

// Path makes OpenBolt open the file at path (created if missing) instead
// of a new file in the test's temporary directory: a store reopened after
// a restart, or the file of a stopped warden.
func Path(path string) Option { return func(c *openConfig) { c.path = path } }

// URL makes OpenRedis open a store on the Redis at url instead of on a
// redis-server of its own: several nodes on one Redis, or a server the
// test stops or restarts itself.
func URL(url string) Option { return func(c *openConfig) { c.url = url } }

// Logger is the logger of a store OpenRedis opens (store.RedisOptions).
func Logger(l *slog.Logger) Option { return func(c *openConfig) { c.logger = l } }

// OpenBolt opens an embedded store on a new file in the test's temporary
// directory, or on the file Path names. The store is closed when the test
// ends; a test may close it earlier.
func OpenBolt(t testing.TB, opts ...Option) store.Store {
	t.Helper()
	c := configure(opts)
	if c.path == "" {
		c.path = filepath.Join(t.TempDir(), "warden.db")
	}
	s, err := store.OpenBolt(c.path)
	if err != nil {
		t.Fatalf("OpenBolt(%s): %v", c.path, err)
	}
	closeOnCleanup(t, s)
	return s
}

// OpenRedis opens a Redis store on a redis-server of the test's own
// (StartRedis: a server starts in about 20 ms, and tests stay
// independent), or on the Redis URL names. The store is closed when the
// test ends, before the server it started is killed; a test may close it
// earlier. A missing redis-server fails the test.
func OpenRedis(t testing.TB, opts ...Option) store.Store {
	t.Helper()
	c := configure(opts)
	if c.url == "" {
		c.url = StartRedis(t).URL
	}
	ctx, cancel := context.WithTimeout(context.Background(), openTimeout)
	defer cancel()
	s, err := store.OpenRedisWith(ctx, c.url, store.RedisOptions{Logger: c.logger})
	if err != nil {
		t.Fatalf("OpenRedis(%s): %v", c.url, err)
	}
	closeOnCleanup(t, s)
	return s
}

// closeOnCleanup closes s when the test ends; a store the test already
// closed may report store.ErrClosed.
func closeOnCleanup(t testing.TB, s store.Store) {
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
}
