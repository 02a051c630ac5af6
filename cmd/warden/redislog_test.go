package main

import (
	"bytes"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/store/storetest"
)

// slogTextLine is a line of slog's text handler: time, level, message.
var slogTextLine = regexp.MustCompile(`^time=\S+ level=(DEBUG|INFO|WARN|ERROR) msg=`)

// TestRedisClientLinesGoThroughSlog runs the binary on a Redis with a
// password, stops Redis and keeps warden busy: what go-redis has to say
// (failed dials, pub/sub reconnects) comes out as slog records, few of
// them however many requests fail, and without the password.
func TestRedisClientLinesGoThroughSlog(t *testing.T) {
	t.Parallel()
	r := storetest.StartRedis(t)
	const redisPW = "Redis-Secret-9f3k"
	if err := r.Client(t).ConfigSet(t.Context(), "requirepass", redisPW).Err(); err != nil {
		t.Fatal(err)
	}
	bin := buildWarden(t)
	adminPW := validPassword(t)
	p := startWarden(t, bin, "WARDEN_REDIS_URL=redis://default:"+redisPW+"@"+r.Addr+"/0", "WARDEN_DATA_DIR="+t.TempDir(),
		"WARDEN_ADMIN_PASSWORD="+adminPW, "WARDEN_AUDIT_LOG=off", "WARDEN_LOG_LEVEL=info")
	p.waitFor("warden ready")
	httpAddr := listenAddr(t, p.out.String(), "http")

	r.Stop()
	// Every login reads the store; before the fix each failed one added
	// go-redis lines of its own.
	end := time.Now().Add(4 * time.Second)
	logins := 0
	for time.Now().Before(end) {
		body := strings.NewReader(`{"username":"admin","password":"` + adminPW + `"}`)
		if resp, err := http.Post("http://"+httpAddr+"/api/login", "application/json", body); err == nil {
			_ = resp.Body.Close()
		}
		logins++
		time.Sleep(100 * time.Millisecond)
	}
	p.signal(syscall.SIGTERM)
	p.exitCode()

	out := p.out.String()
	if strings.Contains(out, redisPW) {
		t.Errorf("the Redis password was logged:\n%s", out)
	}
	redisLines := 0
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if !slogTextLine.MatchString(line) {
			t.Errorf("not a slog record: %s", line)
		}
		if strings.HasPrefix(line, "redis: ") || strings.Contains(line, `msg="redis client"`) {
			redisLines++
			if slogTextLine.MatchString(line) && !strings.Contains(line, "level=WARN") {
				t.Errorf("go-redis line not at WARN: %s", line)
			}
		}
	}
	if redisLines == 0 {
		t.Errorf("no go-redis line at all after Redis stopped (%d logins):\n%s", logins, out)
	}
	// A handful of kinds (dial failures, pub/sub), each at most once per
	// 10 s.
	if redisLines > 5 {
		t.Errorf("%d go-redis lines in about 4 s (%d logins), want at most 5", redisLines, logins)
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("output:\n%s", bytes.TrimSpace([]byte(out)))
	}
}
