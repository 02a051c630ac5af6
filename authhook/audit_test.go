package authhook_test

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/audit"
	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/internal/logbuf"
)

// TestAuditRecordsRefusedConnects: each refused CONNECT (wrong password,
// unknown user, anonymous) is one audit record with the username, client
// ID, address and reason, and never the password; accepted CONNECTs and
// ACL decisions leave none.
func TestAuditRecordsRefusedConnects(t *testing.T) {
	t.Parallel()
	trail := &logbuf.Buffer{}
	n := startNode(t, nodeOpts{tweak: func(o *authhook.Options) { o.Audit = audit.New(trail) }})
	addUser(t, n.st, "dev", "Dev-password-1", []acl.Permission{perm("dev/#", acl.OpReadWrite)}, nil)

	for _, c := range []connectOpts{
		{clientID: "c-wrong", username: "dev", password: "Secret-guess-1"},
		{clientID: "c-unknown", username: "ghost", password: "Secret-guess-2", version: 4},
		{clientID: "c-anon"},
	} {
		if _, code := n.connect(t, c); code == 0 {
			t.Fatalf("connect %+v accepted", c)
		}
	}
	ok := n.mustConnect(t, connectOpts{clientID: "c-ok", username: "dev", password: "Dev-password-1"})
	ok.subscribe("dev/#", "other/#")
	ok.publish("other/x", 0, "payload", 0)

	out := trail.String()
	var recs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("not JSON: %q", sc.Text())
		}
		recs = append(recs, r)
	}
	want := []struct{ user, client, reason string }{
		{"dev", "c-wrong", "wrong password"},
		{"ghost", "c-unknown", "unknown user"},
		{"", "c-anon", "anonymous"},
	}
	if len(recs) != len(want) {
		t.Fatalf("%d audit records, want %d:\n%s", len(recs), len(want), out)
	}
	for i, w := range want {
		r := recs[i]
		if r["audit"] != true || r["event"] != audit.EventAuthFailure || r["channel"] != audit.ChannelMQTT ||
			r["user"] != w.user || r["client_id"] != w.client || r["reason"] != w.reason ||
			!strings.HasPrefix(r["remote"].(string), "127.0.0.1:") {
			t.Errorf("record %d = %v, want %+v", i, r, w)
		}
	}
	for _, secret := range []string{"Secret-guess-1", "Secret-guess-2", "Dev-password-1", "payload"} {
		if strings.Contains(out, secret) {
			t.Errorf("audit trail contains %q", secret)
		}
	}
}
