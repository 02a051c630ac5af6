package webhook_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/broker"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/internal/mqtttest"
	"github.com/warden-mqtt/warden/store"
)

// surfaceCase is one generated user: its permissions and publish prefix,
// and the topics and filters every surface is asked about.
type surfaceCase struct {
	name, clientID string
	perms          []acl.Permission
	prefix         string
}

// surfaceLevels are the topic levels the generator combines: literals the
// permissions name, others they do not, and the values the placeholders
// take. No '$' topic: brokers treat those by their own rules.
var surfaceLevels = []string{"a", "b", "x", "u1", "c1"}

// surfaceTopics are every topic of one to three levels over
// surfaceLevels.
func surfaceTopics() []string {
	var out []string
	var walk func(prefix string, depth int)
	walk = func(prefix string, depth int) {
		for _, l := range surfaceLevels {
			t := l
			if prefix != "" {
				t = prefix + "/" + l
			}
			out = append(out, t)
			if depth < 3 {
				walk(t, depth+1)
			}
		}
	}
	walk("", 1)
	return out
}

// surfaceFilters are filters over the same levels with '+' and '#'.
func surfaceFilters() []string {
	var out []string
	for _, a := range []string{"a", "b", "u1", "+"} {
		out = append(out, a, a+"/#")
		for _, b := range []string{"b", "c1", "u1", "+"} {
			out = append(out, a+"/"+b, a+"/"+b+"/#", a+"/"+b+"/+")
		}
	}
	return append(out, "#", "+/#", "$sys/#", "+/+/+")
}

// surfaceCases are the generated users: each combines permissions with
// and without placeholders, read-only, write-only and both.
func surfaceCases() []surfaceCase {
	sets := [][]acl.Permission{
		{mqttPerm("a/#", acl.OpReadWrite)},
		{mqttPerm("a/b", acl.OpRead), mqttPerm("a/+/x", acl.OpWrite)},
		{mqttPerm("{username}/#", acl.OpReadWrite), mqttPerm("b/{clientId}", acl.OpWrite)},
		{mqttPerm("+/b/#", acl.OpRead), mqttPerm("x/#", acl.OpWrite)},
		{mqttPerm("a/{clientId}/+", acl.OpReadWrite), mqttPerm("b", acl.OpRead)},
		{mqttPerm("#", acl.OpRead), mqttPerm("a/x", acl.OpWrite)},
		{mqttPerm("u1/+/x", acl.OpReadWrite), mqttPerm("u1/c1/#", acl.OpRead)},
	}
	var out []surfaceCase
	for i, perms := range sets {
		out = append(out, surfaceCase{name: "u1", clientID: "c1", perms: perms})
		if i%3 == 0 {
			out = append(out, surfaceCase{name: "u1", clientID: "c1", perms: perms, prefix: "a/"})
		}
	}
	return out
}

func mqttPerm(resource string, op acl.Operation) acl.Permission {
	return acl.Permission{Resource: resource, Operation: op, Context: acl.ContextMQTT}
}

// surfacePassword is every generated user's password (hashed cheaply).
const surfacePassword = "Surface-password-1"

// putSurfaceUser makes the store hold c's user (replacing the last one).
func putSurfaceUser(t *testing.T, st store.Store, c surfaceCase) {
	t.Helper()
	ctx := context.Background()
	if u, err := st.UserByUsername(ctx, c.name); err == nil {
		if err := st.DeleteUser(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
	}
	r, err := st.CreateRole(ctx, store.Role{Name: fmt.Sprintf("role-%d", time.Now().UnixNano()), Permissions: c.perms})
	if err != nil {
		t.Fatal(err)
	}
	hash, err := credential.Hash(surfacePassword, credential.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateUser(ctx, store.User{Username: c.name, PasswordHash: hash, Roles: []string{r.ID}, MQTTPublishPrefix: c.prefix,
		GrantTypes: []store.GrantType{{Method: store.GrantPassword}}}); err != nil {
		t.Fatal(err)
	}
}

// startEmbedded runs warden's embedded broker with hook h.
func startEmbedded(t *testing.T, h *authhook.Hook) string {
	t.Helper()
	br, err := broker.New(broker.Config{TCPAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)}, h)
	if err != nil {
		t.Fatal(err)
	}
	h.Attach(br.Server())
	if err := br.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = br.Close() })
	return br.Addr(broker.ListenerTCP)
}

// embeddedDecisions asks the embedded broker, as an MQTT 5 client of c's
// user: a QoS 1 PUBLISH to each topic (PUBACK below 0x80: allowed) and one
// SUBSCRIBE of every filter (SUBACK below 0x80: granted).
func embeddedDecisions(t *testing.T, addr string, c surfaceCase, topics, filters []string) (pub, sub []bool) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	if _, err := conn.Write(mqtttest.Connect{Version: 5, ClientID: c.clientID, Username: c.name, Password: surfacePassword, Keepalive: 60}.Bytes()); err != nil {
		t.Fatal(err)
	}
	if first, body := mqtttest.MustReadPacket(t, r); first != 0x20 || len(body) < 2 || body[1] != 0 {
		t.Fatalf("CONNACK %#x %v", first, body)
	}
	// Publishes are pipelined: each has its packet identifier, the PUBACKs
	// come back in order.
	w := bufio.NewWriter(conn)
	for i, topic := range topics {
		id := i + 1
		body := append(mqtttest.String(topic), byte(id>>8), byte(id), 0) // no properties
		_, _ = w.Write(mqtttest.Packet(0x32, append(body, 'p')))
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	pub = make([]bool, len(topics))
	for range topics {
		first, body := mqtttest.MustReadPacket(t, r)
		if first != 0x40 || len(body) < 2 {
			t.Fatalf("got %#x, want PUBACK", first)
		}
		id := int(body[0])<<8 | int(body[1])
		pub[id-1] = len(body) == 2 || body[2] < 0x80
	}
	sbody := []byte{0xff, 0xff, 0} // packet identifier, no properties
	for _, f := range filters {
		sbody = append(append(sbody, mqtttest.String(f)...), 1)
	}
	if _, err := conn.Write(mqtttest.Packet(0x82, sbody)); err != nil {
		t.Fatal(err)
	}
	first, ack := mqtttest.MustReadPacket(t, r)
	if first != 0x90 || len(ack) < 3 {
		t.Fatalf("got %#x, want SUBACK", first)
	}
	codes := ack[3+int(ack[2]):] // identifier, property length, properties
	if len(codes) != len(filters) {
		t.Fatalf("SUBACK with %d codes for %d filters", len(codes), len(filters))
	}
	sub = make([]bool, len(filters))
	for i, code := range codes {
		sub[i] = code < 0x80
	}
	_, _ = conn.Write([]byte{0xe0, 0})
	return pub, sub
}

// TestThreeSurfacesDecideAlike: one decision table for warden's three
// surfaces. Generated users (permissions with placeholders, read-only,
// write-only, a publish prefix) ask about every generated topic and filter
// on the embedded broker (as an MQTT 5 client), through VerneMQ's
// auth_on_publish and auth_on_subscribe hooks, and through EMQX's
// authorizer; every answer must be the same. EMQX refuses users with a
// publish prefix at CONNECT, so their publishes are compared on the other
// two only.
func TestThreeSurfacesDecideAlike(t *testing.T) {
	t.Parallel()
	topics, filters := surfaceTopics(), surfaceFilters()
	compared, allowed := 0, 0
	for i, c := range surfaceCases() {
		e := newVMQEnv(t, nil)
		putSurfaceUser(t, e.st, c)
		addr := startEmbedded(t, e.hook)
		pub, sub := embeddedDecisions(t, addr, c, topics, filters)
		for _, ok := range slices.Concat(pub, sub) {
			if ok {
				allowed++
			}
		}
		vsub := vmqSubscribeDecisions(t, e, c, filters)
		for j, topic := range topics {
			if got := vmqPublishAllowed(t, e, c, topic); got != pub[j] {
				t.Errorf("case %d (%v, prefix %q): publish %q: VerneMQ %v, embedded %v", i, c.perms, c.prefix, topic, got, pub[j])
			}
			if c.prefix == "" {
				if got := emqxAllowed(t, e, c, "publish", topic); got != pub[j] {
					t.Errorf("case %d (%v): publish %q: EMQX %v, embedded %v", i, c.perms, topic, got, pub[j])
				}
			}
			compared++
		}
		for j, f := range filters {
			if vsub[j] != sub[j] {
				t.Errorf("case %d (%v): subscribe %q: VerneMQ %v, embedded %v", i, c.perms, f, vsub[j], sub[j])
			}
			if got := emqxAllowed(t, e, c, "subscribe", f); got != sub[j] {
				t.Errorf("case %d (%v): subscribe %q: EMQX %v, embedded %v", i, c.perms, f, got, sub[j])
			}
			compared++
		}
	}
	t.Logf("%d users, %d topics, %d filters: %d decisions (%d allowed) compared on every surface", len(surfaceCases()), len(topics), len(filters), compared, allowed)
	if allowed == 0 || allowed == compared {
		t.Fatalf("the table is degenerate: %d of %d decisions allowed", allowed, compared)
	}
}

// vmqPublishAllowed asks auth_on_publish_m5 about a QoS 1 publish.
func vmqPublishAllowed(t *testing.T, e *vmqEnv, c surfaceCase, topic string) bool {
	t.Helper()
	body := mustJSON(t, map[string]any{"username": c.name, "client_id": c.clientID, "mountpoint": "", "qos": 1,
		"topic": topic, "payload": "cA==", "retain": false, "properties": map[string]any{}})
	a := e.call(t, "/api/broker/auth/publish", "auth_on_publish_m5", []byte(body))
	m, _ := a.body.(map[string]any)
	return a.status == http.StatusOK && m["result"] == "ok"
}

// vmqSubscribeDecisions asks auth_on_subscribe (3.1.1) about every filter
// at QoS 1 at once: a filter is granted unless its answer says QoS 128.
func vmqSubscribeDecisions(t *testing.T, e *vmqEnv, c surfaceCase, filters []string) []bool {
	t.Helper()
	var req []map[string]any
	for _, f := range filters {
		req = append(req, map[string]any{"topic": f, "qos": 1})
	}
	body := mustJSON(t, map[string]any{"username": c.name, "client_id": c.clientID, "mountpoint": "", "topics": req})
	a := e.call(t, "/api/broker/auth/subscribe", "auth_on_subscribe", []byte(body))
	m, _ := a.body.(map[string]any)
	out := make([]bool, len(filters))
	if a.status != http.StatusOK || m["result"] != "ok" {
		t.Fatalf("auth_on_subscribe: %d %s", a.status, a.raw)
	}
	list, ok := m["topics"].([]any)
	if !ok { // every filter granted
		for i := range out {
			out[i] = true
		}
		return out
	}
	for i, x := range list {
		out[i] = x.(map[string]any)["qos"].(float64) != 128
	}
	return out
}

// emqxAllowed asks EMQX's authorizer endpoint about one action.
func emqxAllowed(t *testing.T, e *vmqEnv, c surfaceCase, action, topic string) bool {
	t.Helper()
	resp, err := e.srv.Client().Post(e.srv.URL+"/api/broker/emqx/authz", "application/json",
		strings.NewReader(mustJSON(t, map[string]string{"username": c.name, "clientid": c.clientID, "topic": topic, "action": action})))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a struct {
		Result string `json:"result"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("authz %s %q: %d %v", action, topic, resp.StatusCode, err)
	}
	return a.Result == "allow"
}
