package store

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
)

// TestRedisResyncFailureIsCounted: a resync that cannot read the version
// (Redis gone right after a resubscription) is counted instead of
// returning silently; the polls catch up later. A resync cut short by
// Close is no error.
func TestRedisResyncFailureIsCounted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there: every dial is refused
	client := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, MaxRetries: -1})
	t.Cleanup(func() { _ = client.Close() })
	b := &redisBackend{client: client, log: slog.New(slog.DiscardHandler), feedErrors: newFeedErrors(), feedLog: newLogLimiter(redisLogEvery, time.Now)}
	resyncs := func() float64 {
		var m dto.Metric
		if err := b.feedErrors.WithLabelValues(feedResync).Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	b.resync(t.Context())
	if n := resyncs(); n != 1 {
		t.Errorf("a resync with Redis unreachable counted %v errors, want 1", n)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	b.resync(ctx)
	if n := resyncs(); n != 1 {
		t.Errorf("a resync cancelled by Close counted as an error (%v errors, want still 1)", n)
	}
}
