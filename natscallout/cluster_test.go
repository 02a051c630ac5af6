package natscallout

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/internal/mqtttest"
	"github.com/warden-mqtt/warden/internal/poll"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// The names and passwords of the cluster: warden's NATS user (and its
// system user) as the printed configuration names them, and the one
// password every MQTT user of the tests has.
const (
	clusterWarden   = "warden"
	clusterPassword = "Cluster-nats-pass-1"
	userPassword    = "Cluster-user-pass-1"
)

// quickHash keeps the argon2id hashes of the tests' users cheap.
var quickHash = credential.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// cluster is three nats-server nodes routed to each other, each running
// the configuration warden nats-config prints, with JetStream and an MQTT
// listener, and two warden responders (each its own authhook.Hook) on one
// redis store, connected to nodes 1 and 2, answering the auth callouts of
// all three in one queue group.
type cluster struct {
	nodes      []*server.Server
	mqtt       []string // MQTT address of each node
	st         store.Store
	issuer     nkeys.KeyPair
	responders []*Service
}

// newCluster starts the cluster and returns once every node routes to the
// other two, JetStream has a meta leader, both responders are known to
// every node and an MQTT client is admitted on every node (the first MQTT
// CONNECT of a node creates the account's MQTT streams).
func newCluster(t *testing.T) *cluster {
	t.Helper()
	issuer, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := issuer.PublicKey()
	var printed bytes.Buffer
	if err := WriteServerConfig(&printed, ServerConfig{Issuer: pub, User: clusterWarden, Password: clusterPassword}); err != nil {
		t.Fatal(err)
	}
	c := &cluster{st: storetest.OpenRedis(t), issuer: issuer}
	routePorts := []int{freePort(t), freePort(t), freePort(t)}
	for i := range routePorts {
		s, opts := startNode(t, i, routePorts, printed.String())
		c.nodes = append(c.nodes, s)
		c.mqtt = append(c.mqtt, net.JoinHostPort(opts.MQTT.Host, strconv.Itoa(opts.MQTT.Port)))
	}
	// The responders connect while the cluster forms: both take seconds.
	c.startResponders(t, c.nodes[0].ClientURL(), c.nodes[1].ClientURL())
	poll.Until(t, 20*time.Second, "every node routed to the other two, JetStream with a meta leader", func() bool {
		leaders := 0
		for _, s := range c.nodes {
			if routedPeers(s) != len(c.nodes)-1 || !s.JetStreamIsCurrent() {
				return false
			}
			if s.JetStreamIsLeader() {
				leaders++
			}
		}
		return leaders == 1
	})
	c.waitResponders(t, 2)
	c.addUser(t, "warmup", mqtt("warmup", acl.OpRead))
	for i := range c.nodes {
		poll.Until(t, 20*time.Second, fmt.Sprintf("an MQTT client admitted on node %d", i+1), func() bool {
			code, err := tryConnect(c.mqtt[i], fmt.Sprintf("warmup-%d", i+1), "warmup", userPassword)
			return err == nil && code == 0
		})
	}
	return c
}

// startNode writes the printed configuration as warden.conf beside the
// configuration of node i (client and MQTT listeners on free ports, the
// cluster listener on routePorts[i] with routes to the others, JetStream
// in a directory of the test), and runs nats-server from that file.
func startNode(t *testing.T, i int, routePorts []int, printed string) (*server.Server, *server.Options) {
	t.Helper()
	dir := t.TempDir()
	var routes []string
	for j, p := range routePorts {
		if j != i {
			routes = append(routes, strconv.Quote("nats-route://127.0.0.1:"+strconv.Itoa(p)))
		}
	}
	conf := fmt.Sprintf(`server_name: n%d
listen: 127.0.0.1:-1
cluster {
  name: warden-test
  listen: 127.0.0.1:%d
  routes: [ %s ]
}
jetstream { store_dir: %q }
mqtt { listen: 127.0.0.1:-1 }
include "warden.conf"
`, i+1, routePorts[i], strings.Join(routes, ", "), filepath.Join(dir, "js"))
	if err := os.WriteFile(filepath.Join(dir, "warden.conf"), []byte(printed), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("node %d refuses its configuration: %v\n%s", i+1, err, conf)
	}
	opts.NoSigs, opts.NoLog = true, true
	// warden's bcrypt-hashed password takes long to check under -race:
	// longer than the short first PING nats.go would take for a refusal.
	opts.DisableShortFirstPing = true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("node %d: %v", i+1, err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatalf("node %d not ready within 10 s", i+1)
	}
	return s, opts
}

// freePort is a TCP port nothing listened on a moment ago: a cluster
// listener's port must be known before the other nodes' routes name it.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// routedPeers is how many other nodes s has a route to.
func routedPeers(s *server.Server) int {
	rz, err := s.Routez(nil)
	if err != nil {
		return 0
	}
	peers := map[string]bool{}
	for _, r := range rz.Routes {
		peers[r.RemoteID] = true
	}
	return len(peers)
}

// responderOptions are the Options of a warden responder that connects to
// url and decides with h: the one place the cluster's responders are
// configured.
func (c *cluster) responderOptions(url string, h *authhook.Hook) Options {
	return Options{
		URL: url,
		// Warden's password is checked against its bcrypt hash, slow
		// under -race: nats.go's 2 s default may not be enough.
		Connect:     []nats.Option{nats.UserInfo(clusterWarden, clusterPassword), nats.Timeout(20 * time.Second)},
		System:      []nats.Option{nats.UserInfo(clusterWarden+SystemUserSuffix, clusterPassword)},
		Decider:     h,
		Store:       c.st,
		Issuer:      c.issuer,
		Permissions: Permissions,
	}
}

// startResponders runs one warden responder connected to each of urls,
// each with a hook of its own on the cluster's store. They connect at
// once: the server checks warden's password against its bcrypt hash,
// which takes seconds under -race.
func (c *cluster) startResponders(t *testing.T, urls ...string) []*Service {
	t.Helper()
	ctx := context.Background()
	opts := make([]Options, len(urls))
	for i, url := range urls {
		tokens, err := credential.NewTokens(ctx, c.st, "warden-test")
		if err != nil {
			t.Fatal(err)
		}
		h, err := authhook.New(ctx, authhook.Options{Store: c.st, Tokens: tokens, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.Stop() })
		opts[i] = c.responderOptions(url, h)
	}
	started := make([]*Service, len(urls))
	errs := make([]error, len(urls))
	var wg sync.WaitGroup
	for i := range urls {
		wg.Go(func() { started[i], errs[i] = Start(ctx, opts[i]) })
	}
	wg.Wait()
	for _, s := range started {
		if s != nil {
			t.Cleanup(func() { _ = s.Close() }) // a second Close only reports the subscription gone
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	c.responders = append(c.responders, started...)
	return started
}

// waitResponders waits until every node knows n responders (its own
// clients' and its routes' subscriptions to the callout subject): a
// responder's subscription reaches the other nodes through the routes
// some time after Start returns, and its unsubscription after Close.
func (c *cluster) waitResponders(t *testing.T, n int) {
	t.Helper()
	for i, s := range c.nodes {
		poll.Until(t, 10*time.Second, fmt.Sprintf("node %d knowing %d warden responders", i+1, n), func() bool {
			return respondersKnown(s) == n
		})
	}
}

// respondersKnown counts the subscriptions to the callout subject in the
// auth account that s would deliver a request to: its clients' and, for
// each route, the remote node's.
func respondersKnown(s *server.Server) int {
	n := 0
	sz, err := s.Subsz(&server.SubszOptions{Subscriptions: true, Account: AuthAccount, Test: requestSubject})
	if err != nil {
		return -1
	}
	n += len(sz.Subs)
	rz, err := s.Routez(&server.RoutezOptions{SubscriptionsDetail: true})
	if err != nil {
		return -1
	}
	for _, r := range rz.Routes {
		for _, sub := range r.SubsDetail {
			// A pooled route names no account; warden's queue group
			// on the callout subject is in the auth account alone.
			if sub.Subject == requestSubject && sub.Queue == DefaultQueue {
				n++
			}
		}
	}
	return n
}

// addUser creates a user with the password userPassword and a role
// holding perms in the cluster's store.
func (c *cluster) addUser(t *testing.T, name string, perms ...acl.Permission) store.User {
	t.Helper()
	ctx := context.Background()
	r, err := c.st.CreateRole(ctx, store.Role{Name: name + "-role", Permissions: perms})
	if err != nil {
		t.Fatal(err)
	}
	hash, err := credential.Hash(userPassword, quickHash)
	if err != nil {
		t.Fatal(err)
	}
	u, err := c.st.CreateUser(ctx, store.User{Username: name, PasswordHash: hash, Roles: []string{r.ID},
		GrantTypes: []store.GrantType{{Method: store.GrantPassword}}})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// connectPacket is an MQTT 3.1.1 CONNECT with a username and a password,
// with a clean session or a persistent one (mqtttest.Connect is always
// clean).
func connectPacket(clientID, username, password string, clean bool) []byte {
	flags := byte(0xc0) // username, password
	if clean {
		flags |= 0x02
	}
	body := append(mqtttest.String("MQTT"), 4, flags, 0, 30) // keepalive 30 s
	for _, s := range []string{clientID, username, password} {
		body = append(body, mqtttest.String(s)...)
	}
	return mqtttest.Packet(0x10, body)
}

// tryConnect sends a clean-session CONNECT to addr and returns the CONNACK
// return code, or an error when the server closed the connection or sent
// something else; the connection is closed after.
func tryConnect(addr, clientID, username, password string) (byte, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(connectPacket(clientID, username, password, true)); err != nil {
		return 0, err
	}
	first, body, err := mqtttest.ReadPacket(conn)
	if err != nil {
		return 0, err
	}
	if first != 0x20 || len(body) != 2 {
		return 0, fmt.Errorf("not a CONNACK: %#x % x", first, body)
	}
	return body[1], nil
}

// connect connects an MQTT 3.1.1 client to node i (0-based) as username
// with userPassword, failing the test unless it is admitted; it returns
// the client and whether the server had a session for clientID.
func (c *cluster) connect(t *testing.T, i int, clientID, username string, clean bool) (*client, bool) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", c.mqtt[i], 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	cl := &client{t: t, conn: conn}
	cl.write(connectPacket(clientID, username, userPassword, clean))
	first, body := cl.read()
	if first != 0x20 || len(body) != 2 || body[1] != 0 {
		t.Fatalf("%s on node %d: CONNACK %#x % x, want accepted", username, i+1, first, body)
	}
	return cl, body[0]&1 == 1
}

// subscriber connects clientID as username to node i and subscribes it
// to filter at QoS 1, failing the test unless QoS 1 is granted.
func (c *cluster) subscriber(t *testing.T, i int, clientID, username, filter string, clean bool) *client {
	t.Helper()
	cl, _ := c.connect(t, i, clientID, username, clean)
	if codes := cl.subscribeQoS(1, filter); codes[0] != 1 {
		t.Fatalf("%s on node %d: SUBACK %#x for %q, want QoS 1 granted", username, i+1, codes[0], filter)
	}
	return cl
}

// subscribeQoS sends one SUBSCRIBE with each filter at qos and returns
// the SUBACK's return codes (the granted QoS, or 0x80 for a refusal).
func (c *client) subscribeQoS(qos byte, filters ...string) []byte {
	c.t.Helper()
	body := []byte{0, 1}
	for _, f := range filters {
		body = append(append(body, mqtttest.String(f)...), qos)
	}
	c.write(mqtttest.Packet(0x82, body))
	first, ack := c.read()
	if first != 0x90 || len(ack) != 2+len(filters) {
		c.t.Fatalf("got %#x % x, want a SUBACK with %d codes", first, ack, len(filters))
	}
	return ack[2:]
}

// message is a PUBLISH a client received.
type message struct {
	topic, payload string
	qos            byte
}

// receive reads the next PUBLISH (acknowledging it at QoS 1), failing the
// test on any other packet or none within the read deadline.
func (c *client) receive() message {
	c.t.Helper()
	first, body := c.read()
	if first>>4 != 3 {
		c.t.Fatalf("got %#x, want a PUBLISH", first)
	}
	n := int(binary.BigEndian.Uint16(body))
	m := message{topic: string(body[2 : 2+n]), qos: first >> 1 & 3}
	rest := body[2+n:]
	if m.qos > 0 {
		c.write(append([]byte{0x40, 2}, rest[:2]...)) // PUBACK
		rest = rest[2:]
	}
	m.payload = string(rest)
	return m
}

// waitClosed reads and drops whatever the server sends until it closes
// the connection, and returns how long that took; it fails the test if
// the connection is still open after d.
func (c *client) waitClosed(d time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	_ = c.conn.SetReadDeadline(start.Add(d))
	for {
		if _, _, err := mqtttest.ReadPacket(c.conn); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.t.Fatalf("still connected after %v", d)
			}
			return time.Since(start)
		}
	}
}

// TestCluster runs MQTT 3.1.1 clients, raw and mosquitto's, against a
// 3-node NATS cluster whose auth callouts two warden responders answer
// from one redis store. The subtests share the cluster (its start-up takes
// seconds, most of them checking bcrypt hashes under -race) but not users,
// topics or client IDs; they run in order, as the last closes a responder.
func TestCluster(t *testing.T) {
	t.Parallel()
	c := newCluster(t)

	// A QoS 1 publish on node 1 reaches a QoS 1 subscriber on node 3.
	t.Run("QoS1AcrossNodes", func(t *testing.T) {
		c.addUser(t, "a-pub", mqtt("a/t", acl.OpWrite))
		c.addUser(t, "a-sub", mqtt("a/t", acl.OpRead))
		sub := c.subscriber(t, 2, "a-sub-1", "a-sub", "a/t", true)
		pub, _ := c.connect(t, 0, "a-pub-1", "a-pub", true)
		pub.publishQoS("a/t", 1, false, 1, "hello from node 1")
		if m := sub.receive(); m != (message{"a/t", "hello from node 1", 1}) {
			t.Fatalf("node 3 got %+v, want the QoS 1 message from node 1", m)
		}
	})

	// A publish to a topic the publisher may not write is acknowledged
	// but never reaches a subscriber who may read it; the permitted one
	// sent after it does, first.
	t.Run("DeniedPublishNeverArrives", func(t *testing.T) {
		c.addUser(t, "b-pub", mqtt("b/ok", acl.OpWrite))
		c.addUser(t, "b-sub", mqtt("b/#", acl.OpRead))
		sub := c.subscriber(t, 2, "b-sub-1", "b-sub", "b/#", true)
		pub, _ := c.connect(t, 1, "b-pub-1", "b-pub", true)
		// One publisher's messages arrive in order: had the denied one
		// passed, it would come first.
		pub.publishQoS("b/secret", 1, false, 1, "denied")
		pub.publishQoS("b/ok", 1, false, 2, "permitted")
		if m := sub.receive(); m.topic != "b/ok" || m.payload != "permitted" {
			t.Fatalf("subscriber got %+v first, want the permitted message", m)
		}
	})

	// One SUBSCRIBE with a permitted and a denied filter: the permitted
	// one gets its QoS, the denied one 0x80.
	t.Run("DeniedSubscribeGets0x80", func(t *testing.T) {
		c.addUser(t, "c-dev", mqtt("c/ok", acl.OpRead))
		cl, _ := c.connect(t, 1, "c-dev-1", "c-dev", true)
		codes := cl.subscribeQoS(1, "c/ok", "c/secret", "c/+")
		if !bytes.Equal(codes, []byte{1, 0x80, 0x80}) {
			t.Fatalf("SUBACK codes % x, want 01 80 80", codes)
		}
	})

	// A persistent session subscribed at QoS 1 leaves node 1; what is
	// published meanwhile waits for it, and it gets it on node 2.
	t.Run("PersistentSessionMovesNodes", func(t *testing.T) {
		c.addUser(t, "d-dev", mqtt("d/t", acl.OpRead))
		c.addUser(t, "d-pub", mqtt("d/t", acl.OpWrite))
		c.subscriber(t, 0, "d-dev-1", "d-dev", "d/t", false).disconnect()
		pub, _ := c.connect(t, 2, "d-pub-1", "d-pub", true)
		for i := range 3 {
			pub.publishQoS("d/t", 1, false, uint16(i+1), "offline "+strconv.Itoa(i))
		}
		cl, present := c.connect(t, 1, "d-dev-1", "d-dev", false)
		if !present {
			t.Fatal("node 2 has no session for the client ID")
		}
		for i := range 3 {
			want := message{"d/t", "offline " + strconv.Itoa(i), 1}
			if m := cl.receive(); m != want {
				t.Fatalf("resumed session got %+v, want %+v", m, want)
			}
		}
	})

	// A client ID connecting on node 3 takes the session over from node 1,
	// which disconnects the first client.
	t.Run("TakeoverDisconnectsOtherNode", func(t *testing.T) {
		c.addUser(t, "f-dev", mqtt("f/t", acl.OpRead))
		first, _ := c.connect(t, 0, "f-dev-1", "f-dev", true)
		first.ping()
		c.connect(t, 2, "f-dev-1", "f-dev", true)
		t.Logf("node 1 closed the first connection %v after node 3 admitted the second", first.waitClosed(10*time.Second))
	})

	t.Run("Mosquitto", func(t *testing.T) { mosquittoAcrossCluster(t, c) })

	// Removing a permission disconnects the user's clients on every node
	// within a second; reconnected, they are refused the old topics.
	t.Run("PermissionRemovedKicksEveryNode", func(t *testing.T) {
		u := c.addUser(t, "g-dev", mqtt("g/#", acl.OpReadWrite))
		on1 := c.subscriber(t, 0, "g-dev-1", "g-dev", "g/#", true)
		on3 := c.subscriber(t, 2, "g-dev-3", "g-dev", "g/#", true)
		if _, err := c.st.UpdateRole(context.Background(), u.Roles[0], func(r *store.Role) error {
			r.Permissions = []acl.Permission{mqtt("g/other", acl.OpRead)}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		t.Logf("kicked on node 1 after %v, on node 3 after %v", on1.waitClosed(time.Second), on3.waitClosed(time.Second))
		again, _ := c.connect(t, 1, "g-dev-1", "g-dev", true)
		if codes := again.subscribeQoS(1, "g/#", "g/other"); !bytes.Equal(codes, []byte{0x80, 1}) {
			t.Fatalf("after the change SUBACK %x, want 80 01 (old filter refused, new one granted)", codes)
		}
	})

	// A client ID belongs to the first user admitted with it, on every node.
	t.Run("ClientIDOwnedAcrossNodes", func(t *testing.T) {
		c.addUser(t, "h-owner", mqtt("h/t", acl.OpRead))
		c.addUser(t, "h-other", mqtt("h/t", acl.OpRead))
		if code, err := tryConnect(c.mqtt[0], "h-shared", "h-owner", userPassword); err != nil || code != 0 {
			t.Fatalf("owner on node 1: CONNACK %d, %v", code, err)
		}
		if code, err := tryConnect(c.mqtt[2], "h-shared", "h-other", userPassword); err != nil || code == 0 {
			t.Fatalf("another user on node 3 with the owner's client ID: CONNACK %d, %v; want refused", code, err)
		}
		if code, err := tryConnect(c.mqtt[1], "h-shared", "h-owner", userPassword); err != nil || code != 0 {
			t.Fatalf("owner on node 2: CONNACK %d, %v", code, err)
		}
	})

	// With one responder closed, every node's connects go to the other.
	t.Run("OneResponderClosed", func(t *testing.T) {
		c.addUser(t, "e-dev", mqtt("e/t", acl.OpRead))
		if err := c.responders[0].Close(); err != nil {
			t.Fatal(err)
		}
		c.waitResponders(t, 1)
		for i := range c.nodes {
			for j := range 3 {
				id := fmt.Sprintf("e-dev-%d-%d", i, j)
				if code, err := tryConnect(c.mqtt[i], id, "e-dev", userPassword); err != nil || code != 0 {
					t.Errorf("node %d, connect %d: CONNACK %d, %v; want accepted", i+1, j+1, code, err)
				}
			}
		}
	})
}
