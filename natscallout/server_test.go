package natscallout

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/internal/mqtttest"
)

// startServer runs a nats-server with JetStream in a temporary directory
// and an MQTT listener on a free port, with the given users, and returns
// the MQTT address.
func startServer(t *testing.T, users []*server.User) string {
	t.Helper()
	opts := &server.Options{
		ServerName: "warden-subjects-test",
		Host:       "127.0.0.1",
		Port:       -1,
		JetStream:  true,
		StoreDir:   t.TempDir(),
		NoLog:      true,
		NoSigs:     true,
		Users:      users,
		MQTT:       server.MQTTOpts{Host: "127.0.0.1", Port: -1},
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	go s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready in 10 s")
	}
	return net.JoinHostPort(opts.MQTT.Host, strconv.Itoa(opts.MQTT.Port))
}

// serverPermissions is p as server options hold it, the way nats-server
// applies a callout's user JWT.
func serverPermissions(p jwt.Permissions) *server.Permissions {
	side := func(l jwt.Permission) *server.SubjectPermission {
		return &server.SubjectPermission{Allow: l.Allow, Deny: l.Deny}
	}
	return &server.Permissions{Publish: side(p.Pub), Subscribe: side(p.Sub)}
}

// client is an MQTT 3.1.1 connection speaking raw packets.
type client struct {
	t    *testing.T
	conn net.Conn
}

func dial(t *testing.T, addr, username, clientID string) *client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &client{t: t, conn: conn}
	c.write(mqtttest.Connect{Version: 4, ClientID: clientID, Username: username, Password: "pw", Keepalive: 30}.Bytes())
	first, body := c.read()
	if first != 0x20 || len(body) != 2 || body[1] != 0 {
		t.Fatalf("%s: CONNACK %#x %v, want accepted", username, first, body)
	}
	return c
}

func (c *client) write(b []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) read() (byte, []byte) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	return mqtttest.MustReadPacket(c.t, c.conn)
}

// subscribe sends one SUBSCRIBE with every filter at QoS 0 and returns
// whether each was granted.
func (c *client) subscribe(filters []string) []bool {
	c.t.Helper()
	body := []byte{0, 1}
	for _, f := range filters {
		body = append(append(body, mqtttest.String(f)...), 0)
	}
	c.write(mqtttest.Packet(0x82, body))
	first, ack := c.read()
	if first != 0x90 || len(ack) != 2+len(filters) {
		c.t.Fatalf("SUBACK %#x with %d bytes, want %d codes", first, len(ack), len(filters))
	}
	granted := make([]bool, len(filters))
	for i, code := range ack[2:] {
		granted[i] = code != 0x80
	}
	return granted
}

func (c *client) publish(topic string, payload []byte) {
	c.t.Helper()
	c.write(mqtttest.Packet(0x30, append(mqtttest.String(topic), payload...)))
}

// ping returns once the server has answered a PINGREQ, so it has processed
// every packet sent before.
func (c *client) ping() {
	c.t.Helper()
	c.write([]byte{0xc0, 0})
	if first, _ := c.read(); first != 0xd0 {
		c.t.Fatalf("got %#x, want PINGRESP", first)
	}
}

// disconnect sends DISCONNECT and waits for the server to close the
// connection, so the next connection with the same client ID finds the
// session free.
func (c *client) disconnect() {
	c.t.Helper()
	c.write([]byte{0xe0, 0})
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, c.conn); err != nil {
		c.t.Fatalf("waiting for the server to close: %v", err)
	}
	c.conn.Close()
}

// The levels generated topics and filters are built from: empty levels,
// dots, '$', and the test client's username and client ID.
var levels = []string{"a", "b", "", "c.d", "$s", "u1", "c1"}

// generate returns every topic of one to three levels from levels, and
// every filter made from them by putting '+' at any level or ending in '#'.
func generate() (topics, filters []string) {
	var walk func(prefix []string)
	walk = func(prefix []string) {
		// One empty level is the empty topic, which MQTT does not have.
		if topic := strings.Join(prefix, "/"); topic != "" {
			topics = append(topics, topic)
		}
		if len(prefix) == 3 {
			return
		}
		for _, l := range levels {
			walk(append(prefix[:len(prefix):len(prefix)], l))
		}
	}
	walk(nil)
	seen := map[string]bool{}
	add := func(f string) {
		if !seen[f] {
			seen[f] = true
			filters = append(filters, f)
		}
	}
	for _, topic := range topics {
		ls := strings.Split(topic, "/")
		add(topic)
		add(topic + "/#")
		for i := range ls {
			with := append([]string(nil), ls...)
			with[i] = "+"
			add(strings.Join(with, "/"))
			add(strings.Join(with, "/") + "/#")
		}
	}
	add("#")
	return topics, filters
}

// The permission sets compared against the server; each is one user.
var permissionSets = [][]acl.Permission{
	{mqtt("a/#", acl.OpRead), mqtt("a/+/b", acl.OpWrite)},
	{mqtt("{username}/#", acl.OpReadWrite), mqtt("a/b", acl.OpRead), mqtt("b/+", acl.OpRead)},
	{mqtt("c.d/+", acl.OpWrite), mqtt("a/+/c.d", acl.OpRead), mqtt("/a/#", acl.OpReadWrite)},
	{mqtt("$s/#", acl.OpRead), mqtt("$s/a", acl.OpWrite), mqtt("a//#", acl.OpReadWrite)},
	{mqtt("{clientId}/+", acl.OpRead), mqtt("a/{clientId}", acl.OpWrite), mqtt("b/+/+", acl.OpReadWrite)},
	{mqtt("a", acl.OpRead), mqtt("a/b/+", acl.OpRead), mqtt("b/#", acl.OpRead), mqtt("b/+", acl.OpRead)},
	{mqtt("/#", acl.OpReadWrite), mqtt("b/+/#", acl.OpWrite)},
	{mqtt("a", acl.OpWrite)},
}

// TestServerAllowsExactlyWhatACLAllows gives each permission set's
// converted permissions to a user of a real nats-server and checks, for
// every generated filter and topic, that the server grants a subscription
// and carries a publish exactly when warden's acl allows it.
func TestServerAllowsExactlyWhatACLAllows(t *testing.T) {
	t.Parallel()
	const username, clientID = "u1", "c1"
	users := []*server.User{{Username: "observer", Password: "pw"}}
	bounds := make([]*acl.Bound, len(permissionSets))
	for i, perms := range permissionSets {
		p, err := Permissions(perms, username, clientID)
		if err != nil {
			t.Fatalf("set %d: %v", i, err)
		}
		m, err := acl.Compile(acl.ContextMQTT, perms)
		if err != nil {
			t.Fatalf("set %d: %v", i, err)
		}
		bounds[i] = m.Bind(username, clientID)
		users = append(users, &server.User{Username: fmt.Sprintf("set%d", i), Password: "pw", Permissions: serverPermissions(p)})
	}
	addr := startServer(t, users)
	topics, filters := generate()
	t.Logf("%d permission sets, %d topics, %d filters", len(permissionSets), len(topics), len(filters))

	// The observer may do anything; '#' does not match '$' topics, so it
	// subscribes to those explicitly. '#' also brings the end marker
	// zz/end (a second subscription to it would bring it twice).
	observer := dial(t, addr, "observer", "observer")
	for _, ok := range observer.subscribe([]string{"#", "$s/#"}) {
		if !ok {
			t.Fatal("observer refused a subscription")
		}
	}

	for i, b := range bounds {
		name := fmt.Sprintf("set%d", i)
		// The client ID must be c1 for {clientId}; the session is replaced
		// for each set, one after the other.
		sub := dial(t, addr, name, clientID)
		granted := sub.subscribe(filters)
		for j, f := range filters {
			if want := b.Covers(f); granted[j] != want {
				t.Errorf("%s %v: subscribe %q: server %v, acl %v", name, permissionSets[i], f, granted[j], want)
			}
		}
		sub.disconnect()

		pub := dial(t, addr, name, clientID)
		for j, topic := range topics {
			pub.publish(topic, []byte(strconv.Itoa(j)))
		}
		pub.ping()
		pub.disconnect()
		observer.publish("zz/end", nil)
		arrived := map[string]bool{}
		for {
			first, body := observer.read()
			if first&0xf0 != 0x30 {
				t.Fatalf("observer got %#x, want PUBLISH", first)
			}
			n := int(binary.BigEndian.Uint16(body))
			topic, payload := string(body[2:2+n]), body[2+n:]
			if topic == "zz/end" {
				break
			}
			j, err := strconv.Atoi(string(payload))
			if err != nil || topics[j] != topic {
				t.Fatalf("observer got %q on %q", payload, topic)
			}
			if arrived[topic] {
				t.Errorf("%s: %q arrived twice", name, topic)
			}
			arrived[topic] = true
		}
		for _, topic := range topics {
			if want := b.Allows(topic, acl.OpWrite); arrived[topic] != want {
				t.Errorf("%s %v: publish %q: carried %v, acl %v", name, permissionSets[i], topic, arrived[topic], want)
			}
		}
	}
}

// TestServerGrantsHashThroughPlusBesideParent shows why Permissions refuses
// read "a" beside read "a/+": given those subjects, nats-server grants the
// subscription "a/#", which warden's acl refuses.
func TestServerGrantsHashThroughPlusBesideParent(t *testing.T) {
	t.Parallel()
	perms := []acl.Permission{mqtt("a", acl.OpRead), mqtt("a/+", acl.OpRead)}
	addr := startServer(t, []*server.User{{Username: "u", Password: "pw", Permissions: serverPermissions(jwt.Permissions{
		Pub: list(), Sub: list("a", "a.*"),
	})}})
	granted := dial(t, addr, "u", "c").subscribe([]string{"a/#"})
	m, err := acl.Compile(acl.ContextMQTT, perms)
	if err != nil {
		t.Fatal(err)
	}
	if !granted[0] || m.Bind("u", "c").Covers("a/#") {
		t.Fatalf("server granted a/# %v, acl covers it %v: the refusal is no longer needed, or the test is wrong", granted[0], m.Bind("u", "c").Covers("a/#"))
	}
	if _, err := Permissions(perms, "u", "c"); err == nil {
		t.Fatal("Permissions accepted a set the server would widen")
	}
}

// TestServerLetsLeadingWildcardReachDollarTopics shows why Permissions
// refuses a leading wildcard: NATS's '>' lets the client publish to a '$'
// topic, which MQTT's '#' does not match.
func TestServerLetsLeadingWildcardReachDollarTopics(t *testing.T) {
	t.Parallel()
	addr := startServer(t, []*server.User{
		{Username: "observer", Password: "pw"},
		{Username: "u", Password: "pw", Permissions: serverPermissions(jwt.Permissions{Pub: list(">"), Sub: list()})},
	})
	observer := dial(t, addr, "observer", "observer")
	observer.subscribe([]string{"$s/x"})
	pub := dial(t, addr, "u", "c")
	pub.publish("$s/x", []byte("forged"))
	pub.ping()
	first, body := observer.read()
	if first&0xf0 != 0x30 || !bytes.HasSuffix(body, []byte("forged")) {
		t.Fatalf("observer got %#x %q, want the '$' publish: the refusal may no longer be needed", first, body)
	}
	if _, err := Permissions([]acl.Permission{mqtt("#", acl.OpWrite)}, "u", "c"); err == nil {
		t.Fatal("Permissions accepted a leading '#'")
	}
}

// publishQoS sends a PUBLISH at qos 1 or 2 with packet id pid and finishes
// the sender's side of the flow: PUBACK, or PUBREC, PUBREL, PUBCOMP.
func (c *client) publishQoS(topic string, qos byte, retain bool, pid uint16, payload string) {
	c.t.Helper()
	first := 0x30 | qos<<1
	if retain {
		first |= 1
	}
	body := append(append(mqtttest.String(topic), byte(pid>>8), byte(pid)), payload...)
	c.write(mqtttest.Packet(first, body))
	want := byte(0x40)
	if qos == 2 {
		want = 0x50
	}
	if got, ack := c.read(); got != want || binary.BigEndian.Uint16(ack) != pid {
		c.t.Fatalf("%q: got %#x %v, want %#x for packet %d", topic, got, ack, want, pid)
	}
	if qos == 2 {
		c.write([]byte{0x62, 2, byte(pid >> 8), byte(pid)})
		if got, _ := c.read(); got != 0x70 {
			c.t.Fatalf("%q: got %#x, want PUBCOMP", topic, got)
		}
	}
}

// TestServerQoSAndRetainedNeedNoInternalPermissions checks what doc.go
// says about nats-server's internal subjects: with only the subjects
// Permissions compiles (a read-only and a write-only user, each denied
// everything in the other direction), QoS 1 and 2 publishes, a retained
// message and a QoS 2 subscription work, and a denied QoS 1 publish is
// acknowledged but never delivered.
func TestServerQoSAndRetainedNeedNoInternalPermissions(t *testing.T) {
	t.Parallel()
	reader, err := Permissions([]acl.Permission{mqtt("q/#", acl.OpRead)}, "reader", "r")
	if err != nil {
		t.Fatal(err)
	}
	writer, err := Permissions([]acl.Permission{mqtt("q/a", acl.OpWrite), mqtt("q/b", acl.OpWrite), mqtt("q/r", acl.OpWrite)}, "writer", "w")
	if err != nil {
		t.Fatal(err)
	}
	addr := startServer(t, []*server.User{
		{Username: "reader", Password: "pw", Permissions: serverPermissions(reader)},
		{Username: "writer", Password: "pw", Permissions: serverPermissions(writer)},
	})
	w := dial(t, addr, "writer", "w")
	w.publishQoS("q/r", 1, true, 1, "retained")

	r := dial(t, addr, "reader", "r")
	r.write(mqtttest.Packet(0x82, append([]byte{0, 1}, append(mqtttest.String("q/#"), 2)...)))
	if first, ack := r.read(); first != 0x90 || len(ack) != 3 || ack[2] != 2 {
		t.Fatalf("SUBACK %#x %v, want QoS 2 granted", first, ack)
	}

	w.publishQoS("q/denied", 1, false, 2, "denied")
	w.publishQoS("q/a", 1, false, 3, "one")
	w.publishQoS("q/b", 2, false, 4, "two")

	got := map[string]string{}
	for len(got) < 3 {
		first, body := r.read()
		switch first >> 4 {
		case 3: // PUBLISH
			n := int(binary.BigEndian.Uint16(body))
			topic, rest := string(body[2:2+n]), body[2+n:]
			qos := first >> 1 & 3
			if qos > 0 {
				pid := rest[:2]
				rest = rest[2:]
				ack := byte(0x40)
				if qos == 2 {
					ack = 0x50
				}
				r.write(append([]byte{ack, 2}, pid...))
			}
			if topic == "q/denied" {
				t.Fatalf("the denied publish was delivered")
			}
			got[topic] = string(rest)
		case 6: // PUBREL
			r.write(append([]byte{0x70, 2}, body[:2]...))
		default:
			t.Fatalf("reader got %#x", first)
		}
	}
	if got["q/r"] != "retained" || got["q/a"] != "one" || got["q/b"] != "two" {
		t.Fatalf("reader got %q", got)
	}
}
