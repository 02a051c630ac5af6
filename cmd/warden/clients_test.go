package main

import (
	"bufio"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/internal/mqtttest"
	"github.com/warden-mqtt/warden/store/storetest"
)

// The connected-clients API of issue 20 end to end on the real binary:
// GET /api/clients lists what real MQTT clients connected as, DELETE
// /api/clients/{clientId} disconnects one (DISCONNECT 0x98) and no other,
// on this node or, through Redis, on another.

// clientView is one entry of GET /api/clients as the UI reads it.
type clientView struct {
	ClientID        string `json:"clientId"`
	Username        string `json:"username"`
	ProtocolVersion int    `json:"protocolVersion"`
	RemoteAddr      string `json:"remoteAddr"`
	ConnectedAt     string `json:"connectedAt"`
	Credential      string `json:"credential"`
	Node            string `json:"node"`
	Listener        string `json:"listener"`
}

// clientListing is the whole answer of GET /api/clients.
type clientListing struct {
	Clients []clientView `json:"clients"`
	Nodes   []struct {
		ID        string `json:"id"`
		UpdatedAt string `json:"updatedAt"`
		Truncated bool   `json:"truncated"`
	} `json:"nodes"`
}

// clientsNode is a running warden with its addresses and an admin token.
type clientsNode struct {
	p                  *process
	httpAddr, mqttAddr string
	admin              string
	nodeID             string
}

// startClientsNode starts the binary with env and flags args and logs the
// admin in with pw.
func startClientsNode(t *testing.T, pw string, args []string, env ...string) *clientsNode {
	t.Helper()
	p := startWardenArgs(t, buildWarden(t), args, append(env, "WARDEN_ADMIN_PASSWORD="+pw)...)
	p.waitFor("warden ready")
	out := p.out.String()
	n := &clientsNode{
		p:        p,
		httpAddr: strings.Replace(listenAddr(t, out, "http"), "[::]", "127.0.0.1", 1),
		mqttAddr: strings.Replace(listenAddr(t, out, "mqtt"), "[::]", "127.0.0.1", 1),
	}
	m := regexp.MustCompile(`msg=node node_id=(\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no node ID in the log:\n%s", out)
	}
	n.nodeID = m[1]
	var login struct{ Token string }
	apiCall(t, n.httpAddr, "POST", "/api/login", "", map[string]string{"username": "admin", "password": pw}, &login, http.StatusOK)
	n.admin = login.Token
	return n
}

// list calls GET /api/clients with query as token.
func (n *clientsNode) list(t *testing.T, token, query string) clientListing {
	t.Helper()
	var l clientListing
	apiCall(t, n.httpAddr, "GET", "/api/clients"+query, token, nil, &l, http.StatusOK)
	return l
}

// waitListed polls GET /api/clients with query as the admin until it
// lists the client IDs want (comma-separated, in order), for at most 10 s,
// and returns that listing; it fails the test if it never does.
func (n *clientsNode) waitListed(t *testing.T, query, want string) clientListing {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l := n.list(t, n.admin, query)
		got := strings.Join(l.clientIDs(), ",")
		if got == want {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s, %s: listed %q, want %q", n.nodeID, query, got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// clientIDs lists the client IDs of a listing, in its order.
func (l clientListing) clientIDs() []string {
	var ids []string
	for _, c := range l.Clients {
		ids = append(ids, c.ClientID)
	}
	return ids
}

// addMQTTUser creates a user that may publish and subscribe under its
// own name and returns its password.
func addMQTTUser(t *testing.T, n *clientsNode, name string) string {
	t.Helper()
	pw := validPassword(t)
	apiCall(t, n.httpAddr, "POST", "/api/users", n.admin, map[string]any{"username": name, "password": pw,
		"initialPermissions": []map[string]string{{"resource": name + "/#", "operation": "readWrite", "context": "mqtt"}}}, nil, http.StatusCreated)
	return pw
}

// wantKicked waits for the server to close c's connection with a
// DISCONNECT of reason 0x98 (administrative action).
func wantKicked(t *testing.T, c *tkClient) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatalf("%s still connected 5 s after the kick", c.name)
	}
	select {
	case r := <-c.reason:
		if r != 0x98 {
			t.Fatalf("%s: DISCONNECT reason 0x%02x, want 0x98 (administrative action)", c.name, r)
		}
	case <-time.After(time.Second):
		t.Fatalf("%s: connection closed without a DISCONNECT", c.name)
	}
}

// TestBinaryConnectedClients: two MQTT 5 clients of different users (one
// with its password, one with a login token) and an MQTT 3.1.1 client are
// listed with what they connected with, sorted by username; the username
// filter keeps one user's; a kick disconnects exactly that client with
// 0x98, is audited, and the client may connect again; an unknown client
// is 404; a caller with only read on /api/clients may list but not kick,
// one without it may not list.
func TestBinaryConnectedClients(t *testing.T) {
	t.Parallel()
	n := startClientsNode(t, validPassword(t), nil, "WARDEN_DATA_DIR="+filepath.Join(t.TempDir(), "data"))
	alicePW := addMQTTUser(t, n, "alice")
	bobPW := addMQTTUser(t, n, "bob")
	var bobLogin struct{ Token string }
	apiCall(t, n.httpAddr, "POST", "/api/login", "", map[string]string{"username": "bob", "password": bobPW}, &bobLogin, http.StatusOK)

	before := time.Now().UTC().Add(-time.Second)
	alice := mustConnect(t, n.mqttAddr, "alice-sensor", "alice", alicePW)
	bob := mustConnect(t, n.mqttAddr, "bob-gateway", "bob", bobLogin.Token)
	v3, err := net.DialTimeout("tcp", n.mqttAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v3.Close() })
	if _, err := v3.Write(mqtttest.Connect{Version: 4, ClientID: "alice-legacy", Username: "alice", Password: alicePW, Keepalive: 60}.Bytes()); err != nil {
		t.Fatal(err)
	}
	v3r := bufio.NewReader(v3)
	if first, body := mqtttest.MustReadPacket(t, v3r); first != 0x20 || len(body) != 2 || body[1] != 0 {
		t.Fatalf("MQTT 3.1.1 CONNACK %02x %x, want accepted", first, body)
	}

	// Mochi marks a session established (and the hook its client live)
	// just after writing the CONNACK: a listing may trail it by moments.
	l := n.waitListed(t, "", "alice-legacy,alice-sensor,bob-gateway")
	want := map[string]clientView{
		"alice-legacy": {Username: "alice", ProtocolVersion: 4, Credential: "password"},
		"alice-sensor": {Username: "alice", ProtocolVersion: 5, Credential: "password"},
		"bob-gateway":  {Username: "bob", ProtocolVersion: 5, Credential: "token"},
	}
	for _, c := range l.Clients {
		w := want[c.ClientID]
		if c.Username != w.Username || c.ProtocolVersion != w.ProtocolVersion || c.Credential != w.Credential {
			t.Errorf("%s: username %q, protocol %d, credential %q; want %q, %d, %q", c.ClientID, c.Username, c.ProtocolVersion, c.Credential, w.Username, w.ProtocolVersion, w.Credential)
		}
		if c.Node != n.nodeID || c.Listener != "tcp" {
			t.Errorf("%s: node %q, listener %q; want %q, tcp", c.ClientID, c.Node, c.Listener, n.nodeID)
		}
		if host, _, err := net.SplitHostPort(c.RemoteAddr); err != nil || host != "127.0.0.1" {
			t.Errorf("%s: remoteAddr %q, want 127.0.0.1:port", c.ClientID, c.RemoteAddr)
		}
		at, err := time.Parse(time.RFC3339, c.ConnectedAt)
		if err != nil || !strings.HasSuffix(c.ConnectedAt, "Z") || at.Before(before) || at.After(time.Now().Add(time.Second)) {
			t.Errorf("%s: connectedAt %q, want an RFC 3339 UTC time of the CONNECT (%v)", c.ClientID, c.ConnectedAt, err)
		}
	}
	if len(l.Nodes) != 1 || l.Nodes[0].ID != n.nodeID {
		t.Errorf("nodes %+v, want this node %s alone", l.Nodes, n.nodeID)
	}
	if got := strings.Join(n.list(t, n.admin, "?username=bob").clientIDs(), ","); got != "bob-gateway" {
		t.Errorf("username=bob listed %q, want bob-gateway", got)
	}
	if got := n.list(t, n.admin, "?username=nobody").Clients; got == nil || len(got) != 0 {
		t.Errorf("username=nobody listed %+v, want an empty array", got)
	}
	if got := strings.Join(n.list(t, n.admin, "?scope=cluster&username=alice").clientIDs(), ","); got != "alice-legacy,alice-sensor" {
		t.Errorf("scope=cluster&username=alice listed %q, want alice-legacy,alice-sensor", got)
	}
	apiCall(t, n.httpAddr, "GET", "/api/clients?scope=everywhere", n.admin, nil, nil, http.StatusBadRequest)

	// Access: read on /api/clients lists but does not kick; without it, no
	// listing either.
	var viewerRole struct{ ID string }
	apiCall(t, n.httpAddr, "POST", "/api/roles", n.admin, map[string]any{"name": "client-viewer", "isShared": true,
		"permissions": []map[string]string{{"resource": "/api/clients", "operation": "read", "context": "http"}}}, &viewerRole, http.StatusCreated)
	viewerPW, plainPW := validPassword(t), validPassword(t)
	apiCall(t, n.httpAddr, "POST", "/api/users", n.admin, map[string]any{"username": "viewer", "password": viewerPW, "roles": []string{viewerRole.ID}}, nil, http.StatusCreated)
	apiCall(t, n.httpAddr, "POST", "/api/users", n.admin, map[string]any{"username": "plain", "password": plainPW}, nil, http.StatusCreated)
	var viewer, plain struct{ Token string }
	apiCall(t, n.httpAddr, "POST", "/api/login", "", map[string]string{"username": "viewer", "password": viewerPW}, &viewer, http.StatusOK)
	apiCall(t, n.httpAddr, "POST", "/api/login", "", map[string]string{"username": "plain", "password": plainPW}, &plain, http.StatusOK)
	if got := len(n.list(t, viewer.Token, "").Clients); got != 3 {
		t.Errorf("the viewer listed %d clients, want 3", got)
	}
	apiCall(t, n.httpAddr, "DELETE", "/api/clients/alice-sensor", viewer.Token, nil, nil, http.StatusForbidden)
	apiCall(t, n.httpAddr, "GET", "/api/clients", plain.Token, nil, nil, http.StatusForbidden)
	apiCall(t, n.httpAddr, "GET", "/api/clients", "", nil, nil, http.StatusUnauthorized)
	wantConnected(t, alice, "alice/x", "a refused kick")

	var notFound struct{ Error string }
	apiCall(t, n.httpAddr, "DELETE", "/api/clients/no-such-client", n.admin, nil, &notFound, http.StatusNotFound)
	if notFound.Error != "no such connected client" {
		t.Errorf("404 error %q, want \"no such connected client\"", notFound.Error)
	}

	// The kick: alice-sensor gets DISCONNECT 0x98; the others stay.
	apiCall(t, n.httpAddr, "DELETE", "/api/clients/alice-sensor", n.admin, nil, nil, http.StatusNoContent)
	wantKicked(t, alice)
	wantConnected(t, bob, "bob/x", "alice's kick")
	if _, err := v3.Write([]byte{0xc0, 0}); err != nil { // PINGREQ
		t.Fatal(err)
	}
	_ = v3.SetReadDeadline(time.Now().Add(5 * time.Second))
	if first, _, err := mqtttest.ReadPacket(v3r); err != nil || first != 0xd0 {
		t.Fatalf("alice-legacy after alice-sensor's kick: %02x, %v; want a PINGRESP", first, err)
	}
	if got := strings.Join(n.list(t, n.admin, "").clientIDs(), ","); got != "alice-legacy,bob-gateway" {
		t.Errorf("after the kick listed %s, want alice-legacy,bob-gateway", got)
	}
	apiCall(t, n.httpAddr, "DELETE", "/api/clients/alice-sensor", n.admin, nil, nil, http.StatusNotFound)
	// The change is audited like every other.
	audited := regexp.MustCompile(`"action":"DELETE /api/clients/\{clientId\}","target":\{"clientId":"alice-sensor"\}.*"outcome":"success","status":204`)
	if !audited.MatchString(n.p.out.String()) {
		t.Errorf("no audit record of the kick:\n%s", n.p.out)
	}
	// A kick is only a disconnect: the client may come back.
	again := mustConnect(t, n.mqttAddr, "alice-sensor", "alice", alicePW)
	wantConnected(t, again, "alice/x", "reconnecting after a kick")
}

// TestBinaryConnectedClientsAcrossNodes: two nodes on one Redis. A client
// of node b is listed by node a with scope=cluster (and not with
// scope=node), with node b named and fresh; node a's kick disconnects it
// through the store, and its list on node a empties.
func TestBinaryConnectedClientsAcrossNodes(t *testing.T) {
	t.Parallel()
	redisURL := storetest.StartRedis(t).URL
	pw := validPassword(t)
	a := startClientsNode(t, pw, []string{"--node-id", "node-a"}, "WARDEN_REDIS_URL="+redisURL, "WARDEN_DATA_DIR="+filepath.Join(t.TempDir(), "a"))
	b := startClientsNode(t, pw, []string{"--node-id", "node-b"}, "WARDEN_REDIS_URL="+redisURL, "WARDEN_DATA_DIR="+filepath.Join(t.TempDir(), "b"))
	if a.nodeID != "node-a" || b.nodeID != "node-b" {
		t.Fatalf("node IDs %q, %q; want node-a, node-b (--node-id)", a.nodeID, b.nodeID)
	}
	devPW := addMQTTUser(t, a, "dev")
	onA := mustConnect(t, a.mqttAddr, "dev-a", "dev", devPW)
	onB := mustConnect(t, b.mqttAddr, "dev/b 1", "dev", devPW) // a client ID with a slash and a space

	// Node b publishes its list about a second after the connect.
	l := a.waitListed(t, "?scope=cluster", "dev-a,dev/b 1")
	if l.Clients[0].Node != "node-a" || l.Clients[1].Node != "node-b" || l.Clients[1].Credential != "password" || l.Clients[1].ProtocolVersion != 5 {
		t.Errorf("scope=cluster clients %+v, want dev-a on node-a and dev/b 1 on node-b (password, MQTT 5)", l.Clients)
	}
	if len(l.Nodes) != 2 || l.Nodes[0].ID != "node-a" || l.Nodes[1].ID != "node-b" {
		t.Fatalf("scope=cluster nodes %+v, want node-a and node-b", l.Nodes)
	}
	if at, err := time.Parse(time.RFC3339, l.Nodes[1].UpdatedAt); err != nil || time.Since(at) > 30*time.Second {
		t.Errorf("node-b updatedAt %q (%v), want a recent RFC 3339 time", l.Nodes[1].UpdatedAt, err)
	}
	if got := strings.Join(a.list(t, a.admin, "").clientIDs(), ","); got != "dev-a" {
		t.Errorf("node a, scope=node: listed %q, want only its own dev-a", got)
	}

	// Node a kicks node b's client.
	apiCall(t, a.httpAddr, "DELETE", "/api/clients/"+url.PathEscape("dev/b 1"), a.admin, nil, nil, http.StatusNoContent)
	wantKicked(t, onB)
	wantConnected(t, onA, "dev/x", "the kick of a client on another node")
	a.waitListed(t, "?scope=cluster", "dev-a")
	apiCall(t, a.httpAddr, "DELETE", "/api/clients/no-such-client", a.admin, nil, nil, http.StatusNotFound)
	if !strings.Contains(b.p.out.String(), "mqtt client disconnected by an administrator") {
		t.Errorf("node b did not log the kick:\n%s", b.p.out)
	}

	// A node that stops takes its list out of the store: node a's
	// cluster view names only itself at once, not after the list ages.
	mustConnect(t, b.mqttAddr, "dev-b2", "dev", devPW)
	a.waitListed(t, "?scope=cluster", "dev-a,dev-b2")
	b.p.signal(syscall.SIGTERM)
	if code := b.p.exitCode(); code != 0 {
		t.Fatalf("node b exited with %d", code)
	}
	l = a.list(t, a.admin, "?scope=cluster")
	if got := strings.Join(l.clientIDs(), ","); got != "dev-a" || len(l.Nodes) != 1 || l.Nodes[0].ID != "node-a" {
		t.Errorf("after node b stopped: listed %q on nodes %+v, want dev-a on node-a alone", got, l.Nodes)
	}
}

// TestDefaultNodeID: without --node-id a node is named after its host,
// with a suffix that differs at every start, in characters a node ID
// takes.
func TestDefaultNodeID(t *testing.T) {
	t.Parallel()
	a, b := nodeID(""), nodeID("")
	for _, id := range []string{a, b} {
		if err := authhook.ValidNodeID(id); err != nil {
			t.Errorf("default node ID %q: %v", id, err)
		}
	}
	if a == b {
		t.Errorf("two starts got the same node ID %q", a)
	}
	if host, _ := os.Hostname(); host != "" && !strings.HasPrefix(a, host[:min(len(host), 8)]) {
		t.Errorf("default node ID %q does not begin with the host name %q", a, host)
	}
	if got := nodeID("edge-1"); got != "edge-1" {
		t.Errorf("--node-id edge-1 gave %q", got)
	}
}
