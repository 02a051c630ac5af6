package store

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// redisLogRecords decodes the JSON records in buf.
func redisLogRecords(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(buf.Bytes()))
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("not a JSON record: %q", sc.Text())
		}
		out = append(out, r)
	}
	return out
}

// TestRedisLoggerRateLimitsPerKind: go-redis's lines become WARN records;
// each kind (format string) is logged at most once per 10 s, and the next
// record of that kind counts the lines dropped in between.
func TestRedisLoggerRateLimitsPerKind(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newRedisLogger(slog.New(slog.NewJSONHandler(&buf, nil)), nil, func() time.Time { return now })
	ctx := context.Background()
	const dial = "redis: connection pool: failed to dial after %d attempts: %v"

	for range 100 {
		l.Printf(ctx, dial, 5, "dial tcp 127.0.0.1:6379: connect: connection refused")
	}
	l.Printf(ctx, "pubsub: reconnecting to new endpoint %s (was %s)", "b:1", "a:1")
	now = now.Add(9 * time.Second)
	l.Printf(ctx, dial, 5, "still refused")
	now = now.Add(time.Second)
	l.Printf(ctx, dial, 5, "refused at last")

	recs := redisLogRecords(t, &buf)
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3 (dial, pubsub, dial after 10 s):\n%s", len(recs), buf.String())
	}
	for _, r := range recs {
		if r["level"] != "WARN" || r["msg"] != "redis client" {
			t.Errorf("record %v: want level WARN, msg \"redis client\"", r)
		}
	}
	if d := recs[0]["detail"]; d != "connection pool: failed to dial after 5 attempts: dial tcp 127.0.0.1:6379: connect: connection refused" {
		t.Errorf("first detail %q", d)
	}
	if _, ok := recs[0]["suppressed"]; ok {
		t.Errorf("first record has a suppressed count: %v", recs[0])
	}
	if !strings.HasPrefix(recs[1]["detail"].(string), "pubsub: reconnecting") {
		t.Errorf("another kind was held back: %v", recs[1])
	}
	// 99 of the first burst and the one 9 s later.
	if recs[2]["detail"] != "connection pool: failed to dial after 5 attempts: refused at last" || recs[2]["suppressed"] != float64(100) {
		t.Errorf("third record %v, want the last dial with suppressed=100", recs[2])
	}
}

// TestRedisLoggerMasksPasswords: URL user information and the passwords
// of the Redis URL in use never reach the log.
func TestRedisLoggerMasksPasswords(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	secrets := urlSecrets("redis://default:Pw-one-1@redis:6379/0?sentinel_password=Pw-two-2&master_name=m")
	l := newRedisLogger(slog.New(slog.NewJSONHandler(&buf, nil)), secrets, time.Now)
	l.Printf(context.Background(), "dial %s failed", "rediss://someone:hunter2@other:6380/1")
	l.Printf(context.Background(), "sentinel: auth %s and %s", "Pw-one-1", "Pw-two-2")

	out := buf.String()
	for _, secret := range []string{"hunter2", "someone", "Pw-one-1", "Pw-two-2"} {
		if strings.Contains(out, secret) {
			t.Errorf("%q logged:\n%s", secret, out)
		}
	}
	recs := redisLogRecords(t, &buf)
	if len(recs) != 2 || recs[0]["detail"] != "dial rediss://xxxxx@other:6380/1 failed" || recs[1]["detail"] != "sentinel: auth xxxxx and xxxxx" {
		t.Errorf("records %v", recs)
	}
}

// TestRedisLoggerFollowsTheLevel: with WARN off, nothing is formatted or
// counted.
func TestRedisLoggerFollowsTheLevel(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := newRedisLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelError})), nil, time.Now)
	l.Printf(context.Background(), "redis: %s", "x")
	if buf.Len() != 0 || len(l.limit.kinds) != 0 {
		t.Errorf("logged %q, kinds %v", buf.String(), l.limit.kinds)
	}
}
