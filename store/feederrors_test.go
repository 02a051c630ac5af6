package store_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warden-mqtt/warden/internal/logbuf"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// feedStore is a Redis store on srv whose log is logs, instrumented on a
// registry of its own.
func feedStore(t *testing.T, srv *storetest.Redis, logs *logbuf.Buffer) (store.Store, *prometheus.Registry) {
	t.Helper()
	s := storetest.OpenRedis(t, storetest.URL(srv.URL), storetest.Logger(slog.New(slog.NewTextHandler(logs, nil))))
	in, reg := instrument(t, s, "redis")
	return in, reg
}

// feedErrorCount is warden_store_feed_errors_total{reason} now; -1 when
// the series is missing.
func feedErrorCount(t *testing.T, reg prometheus.Gatherer, reason string) float64 {
	t.Helper()
	m := series(t, reg, "warden_store_feed_errors_total", "reason", reason)
	if m == nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// waitFeedErrors waits up to 10 s for the count of reason to reach n.
func waitFeedErrors(t *testing.T, reg prometheus.Gatherer, reason string, n float64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); feedErrorCount(t, reg, reason) < n; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("warden_store_feed_errors_total{reason=%q} = %v, want %v", reason, feedErrorCount(t, reg, reason), n)
		}
	}
}

// feedWarnings returns the feed's WARN lines of reason in logs.
func feedWarnings(logs *logbuf.Buffer, reason string) []string {
	var out []string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "level=WARN") && strings.Contains(line, "redis change feed") && strings.Contains(line, "reason="+reason) {
			out = append(out, line)
		}
	}
	return out
}

// TestRedisFeedCountsAndLogsDroppedMessages: messages on the events
// channel that are no warden commit (not JSON; JSON without a version)
// are dropped, as before, but now counted, and logged once per 10 s
// without their content. The feed goes on delivering commits.
func TestRedisFeedCountsAndLogsDroppedMessages(t *testing.T) {
	srv := storetest.StartRedis(t)
	var logs logbuf.Buffer
	s, reg := feedStore(t, srv, &logs)
	for _, reason := range []string{"receive", "bad_message", "resync"} {
		if n := feedErrorCount(t, reg, reason); n != 0 {
			t.Errorf("before any problem, %s errors = %v, want a series at 0", reason, n)
		}
	}
	events, err := s.Watch(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	rc := srv.Client(t)
	for _, payload := range []string{"secret-looking-payload", `{"e":[]}`} {
		if err := rc.Publish(t.Context(), "{warden}:events", payload).Err(); err != nil {
			t.Fatal(err)
		}
	}
	waitFeedErrors(t, reg, "bad_message", 2)
	lines := feedWarnings(&logs, "bad_message")
	if len(lines) != 1 {
		t.Fatalf("%d WARN lines for two dropped messages within 10 s, want 1:\n%s", len(lines), logs.String())
	}
	if strings.Contains(logs.String(), "secret-looking-payload") {
		t.Errorf("the log holds a dropped message's content:\n%s", logs.String())
	}
	u, err := s.CreateUser(t.Context(), store.User{Username: "after-the-drops"})
	if err != nil {
		t.Fatal(err)
	}
	waitEvent(t, events, 5*time.Second, func(e store.Event) bool { return e.ID == u.ID })
}

// TestRedisFeedCountsAndLogsReceiveFailures: when Redis goes away, every
// failed receive of the subscription (retried with a growing backoff) is
// counted, and one WARN line says so within 10 s instead of none.
func TestRedisFeedCountsAndLogsReceiveFailures(t *testing.T) {
	srv := storetest.StartRedis(t)
	var logs logbuf.Buffer
	_, reg := feedStore(t, srv, &logs)
	srv.Stop()
	waitFeedErrors(t, reg, "receive", 2)
	if lines := feedWarnings(&logs, "receive"); len(lines) != 1 {
		t.Fatalf("%d WARN lines for repeated receive failures within 10 s, want 1:\n%s", len(lines), logs.String())
	}
}

// TestBoltHasNoFeedErrors: the embedded store has no Redis feed, and no
// series of it.
func TestBoltHasNoFeedErrors(t *testing.T) {
	_, reg := instrument(t, storetest.OpenBolt(t), "bolt")
	if n := feedErrorCount(t, reg, "receive"); n != -1 {
		t.Errorf("bolt store has warden_store_feed_errors_total = %v", n)
	}
}
