package authhook_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/internal/poll"
)

// connectWithWill connects an MQTT 5 client with a session that outlives
// the connection by expiry seconds (0: none, no Session Expiry Interval
// sent) and a QoS 1 will on topic, retained if retain, delayed by delay
// seconds; the test closes the returned connection to vanish without a
// DISCONNECT.
func connectWithWill(t *testing.T, n *node, clientID, username, password, topic string, expiry, delay uint32, retain bool) net.Conn {
	t.Helper()
	conn := n.dial(t)
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var props *paho.ConnectProperties
	if expiry > 0 {
		props = &paho.ConnectProperties{SessionExpiryInterval: &expiry}
	}
	ca, err := c.Connect(ctx, &paho.Connect{
		ClientID: clientID, KeepAlive: 30, CleanStart: true,
		Username: username, UsernameFlag: true, Password: []byte(password), PasswordFlag: true,
		Properties:     props,
		WillMessage:    &paho.WillMessage{Topic: topic, Payload: []byte(clientID + " gone"), QoS: 1, Retain: retain},
		WillProperties: &paho.WillProperties{WillDelayInterval: &delay},
	})
	if err != nil || ca.ReasonCode != 0 {
		t.Fatalf("%s: connect: %v (%+v)", clientID, err, ca)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// TestWillPublishedWhenItsSessionExpires: devices whose Will Delay
// Interval (an hour) is longer than their session vanish; each will is
// published when its session ends (MQTT 5 §3.1.3.2.2, as upstream Mochi
// does), although Mochi's session-expiry and will tickers fire in the
// same second, in either order: the hook must still know the client when
// the will is put to it. The sessions last 1 to 6 seconds, so the order
// is drawn six times (each tick decides it for every session ending then).
func TestWillPublishedWhenItsSessionExpires(t *testing.T) {
	t.Parallel()
	n := startNode(t, nodeOpts{})
	ctx := context.Background()
	addUser(t, n.st, "watcher", "watcher-secret1", []acl.Permission{perm("wills/#", acl.OpRead)}, nil)
	sub, _, got, err := pahoConnect(t, n, "watcher", "watcher", "watcher-secret1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "wills/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	addUser(t, n.st, "dev", "dev-secret-123", []acl.Permission{perm("wills/#", acl.OpWrite)}, nil)
	var conns []net.Conn
	var topics []string
	for expiry := uint32(1); expiry <= 6; expiry++ {
		for i := range 2 {
			id := fmt.Sprintf("dev-%d-%d", expiry, i)
			topics = append(topics, "wills/"+id)
			conns = append(conns, connectWithWill(t, n, id, "dev", "dev-secret-123", "wills/"+id, expiry, 3600, false))
		}
	}
	for _, c := range conns {
		_ = c.Close()
	}
	seen := collect(got, topics, 12*time.Second)
	var lost []string
	for _, topic := range topics {
		if !seen[topic] {
			lost = append(lost, topic)
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d of %d wills not published when their session expired: %v", len(lost), len(topics), lost)
	}
}

// TestReconnectsDoNotPinGoneClients: a device reconnects 200 times under
// one client ID, each time leaving a will delayed by a day and a session
// of a day. Each reconnect resumes (here: replaces) the session and Mochi
// drops the previous connection's will; the hook must then forget that
// connection instead of keeping it (and its Mochi client) for the day
// the dropped will would have waited. Only the last one stays known.
func TestReconnectsDoNotPinGoneClients(t *testing.T) {
	t.Parallel()
	n := startNode(t, nodeOpts{})
	addUser(t, n.st, "dev", "dev-secret-123", []acl.Permission{perm("wills/#", acl.OpWrite)}, nil)
	srv := n.broker.Server()
	const cycles = 200
	for range cycles {
		_ = connectWithWill(t, n, "flapper", "dev", "dev-secret-123", "wills/flapper", 86400, 86400, false).Close()
		poll.Until(t, 3*time.Second, "flapper disconnected", func() bool {
			cl, ok := srv.Clients.Get("flapper")
			return !ok || cl.Closed()
		})
	}
	// The hook's sweep runs every two seconds.
	poll.Until(t, 10*time.Second, fmt.Sprintf("the hook knows at most one client after %d reconnects", cycles),
		func() bool { return n.hook.KnownClients() <= 1 })
	if got := n.hook.OfflineSessions("dev"); got != 1 {
		t.Errorf("%d offline sessions listed for dev, want 1 (the last)", got)
	}
}
