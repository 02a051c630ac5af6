package audit_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/audit"
)

// records decodes every line of b, failing on a line that is not JSON.
func records(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("not a JSON line: %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

func TestChangeRecord(t *testing.T) {
	var buf bytes.Buffer
	audit.New(&buf).Change(context.Background(), audit.Change{
		User: "admin", Action: "DELETE /api/users/{id}", Remote: "10.0.0.5:51234", Status: 204,
		Targets: []audit.Target{{Key: "id", Value: "u-1"}},
	})
	rs := records(t, buf.Bytes())
	if len(rs) != 1 {
		t.Fatalf("%d records, want 1: %s", len(rs), buf.String())
	}
	r := rs[0]
	want := map[string]any{
		"audit": true, "event": "admin.change", "msg": "admin change", "level": "INFO", "user": "admin",
		"action": "DELETE /api/users/{id}", "remote": "10.0.0.5:51234", "outcome": "success", "status": float64(204),
		"target": map[string]any{"id": "u-1"},
	}
	for k, v := range want {
		if got, _ := json.Marshal(r[k]); string(got) != mustJSON(t, v) {
			t.Errorf("%s = %s, want %s", k, got, mustJSON(t, v))
		}
	}
	ts, err := time.Parse(time.RFC3339Nano, r["time"].(string))
	if err != nil || ts.Location() != time.UTC || !strings.HasSuffix(r["time"].(string), "Z") {
		t.Errorf("time %v is not RFC 3339 in UTC (%v)", r["time"], err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAuthFailureRecord(t *testing.T) {
	var buf bytes.Buffer
	l := audit.New(&buf)
	l.AuthFailure(context.Background(), audit.AuthFailure{Channel: audit.ChannelMQTT, User: "dev-1", ClientID: "c1", Remote: "10.0.0.9:4000", Reason: "wrong password"})
	l.AuthFailure(context.Background(), audit.AuthFailure{Channel: audit.ChannelHTTPLogin, User: "bob", Remote: "10.0.0.9:4001", Reason: "unknown user"})
	rs := records(t, buf.Bytes())
	if len(rs) != 2 {
		t.Fatalf("%d records, want 2", len(rs))
	}
	if r := rs[0]; r["event"] != "auth.failure" || r["channel"] != "mqtt" || r["user"] != "dev-1" || r["client_id"] != "c1" ||
		r["remote"] != "10.0.0.9:4000" || r["reason"] != "wrong password" || r["audit"] != true {
		t.Errorf("mqtt record: %v", r)
	}
	if _, ok := rs[1]["client_id"]; ok {
		t.Errorf("an HTTP failure has a client_id: %v", rs[1])
	}
}

func TestOutcomeOfStatus(t *testing.T) {
	for status, want := range map[int]audit.Outcome{
		200: audit.Success, 201: audit.Success, 204: audit.Success,
		401: audit.Denied, 403: audit.Denied,
		400: audit.Failed, 404: audit.Failed, 409: audit.Failed, 413: audit.Failed, 423: audit.Failed, 500: audit.Failed, 503: audit.Failed,
	} {
		if got := audit.OutcomeOf(status); got != want {
			t.Errorf("OutcomeOf(%d) = %s, want %s", status, got, want)
		}
	}
}

// TestRecordsCarryNoSecrets: a token sent as a username is masked, a path
// value named like a secret is dropped, and a long value is cut.
func TestRecordsCarryNoSecrets(t *testing.T) {
	const jwt = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
	var buf bytes.Buffer
	l := audit.New(&buf)
	l.AuthFailure(context.Background(), audit.AuthFailure{Channel: audit.ChannelMQTT, User: jwt, ClientID: jwt, Reason: "unknown user"})
	l.Change(context.Background(), audit.Change{User: "admin", Action: "DELETE /api/oauth2/{token}", Status: 200, Targets: []audit.Target{
		{Key: "token", Value: "opaque-secret-1"}, {Key: "password", Value: "opaque-secret-2"}, {Key: "otp", Value: "123456"},
		{Key: "backupCode", Value: "opaque-secret-3"}, {Key: "key_id", Value: "k-1"}, {Key: "id", Value: jwt},
	}})
	long := strings.Repeat("a", 10_000)
	l.AuthFailure(context.Background(), audit.AuthFailure{Channel: audit.ChannelHTTPLogin, User: long})

	out := buf.String()
	for _, secret := range []string{jwt, "opaque-secret-1", "opaque-secret-2", "opaque-secret-3", "123456"} {
		if strings.Contains(out, secret) {
			t.Errorf("audit output contains %q:\n%s", secret, out)
		}
	}
	rs := records(t, buf.Bytes())
	if rs[0]["user"] != audit.Redacted || rs[0]["client_id"] != audit.Redacted {
		t.Errorf("token-shaped username or client ID not masked: %v", rs[0])
	}
	target, _ := rs[1]["target"].(map[string]any)
	if len(target) != 2 || target["key_id"] != "k-1" || target["id"] != audit.Redacted {
		t.Errorf("targets = %v, want only key_id and a masked id", target)
	}
	if u, _ := rs[2]["user"].(string); len(u) > 300 {
		t.Errorf("a %d-byte username was written whole", len(u))
	}
}

func TestNilLoggerWritesNothing(t *testing.T) {
	var l *audit.Logger
	l.Change(context.Background(), audit.Change{User: "admin"})
	l.AuthFailure(context.Background(), audit.AuthFailure{User: "x"})
}

func TestOpenSinks(t *testing.T) {
	var stdout, stderr bytes.Buffer
	for _, c := range []struct {
		sink           string
		stdout, stderr int
	}{{"stderr", 0, 1}, {"stdout", 1, 0}, {"off", 0, 0}} {
		stdout.Reset()
		stderr.Reset()
		l, closeFn, err := audit.Open(c.sink, &stdout, &stderr)
		if err != nil {
			t.Fatalf("Open(%q): %v", c.sink, err)
		}
		l.AuthFailure(context.Background(), audit.AuthFailure{Channel: audit.ChannelHTTPLogin, User: "bob"})
		if err := closeFn(); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(stdout.String(), "\n"); n != c.stdout {
			t.Errorf("%s: %d lines on stdout, want %d", c.sink, n, c.stdout)
		}
		if n := strings.Count(stderr.String(), "\n"); n != c.stderr {
			t.Errorf("%s: %d lines on stderr, want %d", c.sink, n, c.stderr)
		}
	}
	if _, _, err := audit.Open("", &stdout, &stderr); err == nil {
		t.Error("Open accepted an empty sink")
	}
}

// TestOpenFileAppends: a file sink is created 0600 and appended to across
// opens (restarts), one JSON object per line.
func TestOpenFileAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	for i := range 2 {
		l, closeFn, err := audit.Open(path, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		l.AuthFailure(context.Background(), audit.AuthFailure{Channel: audit.ChannelHTTPLogin, User: "bob", Reason: "wrong password"})
		if err := closeFn(); err != nil {
			t.Fatalf("close %d: %v", i, err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(records(t, b)); n != 2 {
		t.Errorf("%d records after two opens, want 2", n)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("file mode %v, want 0600", perm)
	}
	if _, _, err := audit.Open(filepath.Join(t.TempDir(), "missing", "dir", "audit.jsonl"), nil, nil); err == nil {
		t.Error("Open succeeded in a directory that does not exist")
	}
}
