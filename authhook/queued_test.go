package authhook_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/internal/poll"
	"github.com/warden-mqtt/warden/store"
)

// sessionClient is a Paho MQTT 5 client with a persistent session (Session
// Expiry Interval one hour) whose received messages go to msgs.
type sessionClient struct {
	*paho.Client
	conn    net.Conn
	msgs    chan *paho.Publish
	present bool // CONNACK's session present
}

// sessionOpts: cleanStart begins a new session; manualAck leaves received
// QoS 1 messages unacknowledged until the test calls Ack; receiveMax, when
// set, is the client's Receive Maximum; willTopic, when set, gets a will
// delayed by willDelay seconds.
type sessionOpts struct {
	cleanStart bool
	manualAck  bool
	receiveMax uint16
	willTopic  string
	willDelay  uint32
}

func connectSession(t *testing.T, n *node, clientID, username, password string, o sessionOpts) *sessionClient {
	t.Helper()
	conn := n.dial(t)
	msgs := make(chan *paho.Publish, 64)
	c := paho.NewClient(paho.ClientConfig{
		Conn:                       conn,
		EnableManualAcknowledgment: o.manualAck,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				msgs <- pr.Packet
				return true, nil
			},
		},
	})
	expiry := uint32(3600)
	props := &paho.ConnectProperties{SessionExpiryInterval: &expiry}
	if o.receiveMax > 0 {
		props.ReceiveMaximum = &o.receiveMax
	}
	cp := &paho.Connect{
		ClientID: clientID, KeepAlive: 30, CleanStart: o.cleanStart,
		Username: username, UsernameFlag: true, Password: []byte(password), PasswordFlag: true,
		Properties: props,
	}
	if o.willTopic != "" {
		cp.WillMessage = &paho.WillMessage{Topic: o.willTopic, Payload: []byte("gone"), QoS: 1}
		cp.WillProperties = &paho.WillProperties{WillDelayInterval: &o.willDelay}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, cp)
	if err != nil || ca.ReasonCode != 0 {
		t.Fatalf("%s: connect: %v (%+v)", clientID, err, ca)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &sessionClient{Client: c, conn: conn, msgs: msgs, present: ca.SessionPresent}
}

// received returns the payloads that arrive within d.
func (c *sessionClient) received(d time.Duration) []string {
	var got []string
	deadline := time.After(d)
	for {
		select {
		case p := <-c.msgs:
			got = append(got, string(p.Payload))
		case <-deadline:
			return got
		}
	}
}

// TestQueuedMessagesRespectRevokedReadPermission: QoS 1 messages the broker
// holds for a subscriber when the admin withdraws its read permission are
// never delivered afterwards: neither those queued while it was offline
// (delivered when it resumes its session), nor those sent but not yet
// acknowledged (resent when it resumes its session), nor those waiting
// behind its Receive Maximum (sent when it acknowledges the one before).
// The same messages reach subscribers whose permission was left alone.
func TestQueuedMessagesRespectRevokedReadPermission(t *testing.T) {
	t.Parallel()
	n := startNode(t, nodeOpts{})
	ctx := context.Background()
	addUser(t, n.st, "plc", "plc-secret-123", []acl.Permission{perm("line/#", acl.OpWrite)}, nil)
	srv := n.broker.Server()

	users := map[string]store.User{}
	subscriber := func(name string, o sessionOpts) *sessionClient {
		users[name] = addUser(t, n.st, name, "secret-of-"+name, []acl.Permission{perm("line/#", acl.OpRead)}, nil)
		o.cleanStart = true
		c := connectSession(t, n, name, name, "secret-of-"+name, o)
		if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "line/#", QoS: 1}}}); err != nil {
			t.Fatalf("%s: subscribe: %v", name, err)
		}
		return c
	}
	revoke := func(name string) {
		if _, err := n.st.UpdateRole(ctx, users[name].Roles[0], func(r *store.Role) error {
			r.Permissions = []acl.Permission{perm("other/#", acl.OpRead)}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		// The hook has applied it once it removed the subscription.
		poll.Until(t, 3*time.Second, name+": subscription removed", func() bool {
			cl, ok := srv.Clients.Get(name)
			return ok && cl.State.Subscriptions.Len() == 0
		})
	}
	waitClosed := func(name string) {
		poll.Until(t, 3*time.Second, name+" disconnected", func() bool {
			cl, ok := srv.Clients.Get(name)
			return ok && cl.Closed()
		})
	}

	// Offline: the subscribers leave with DISCONNECT; their sessions stay.
	for _, name := range []string{"offline-revoked", "offline-control"} {
		c := subscriber(name, sessionOpts{})
		_ = c.Disconnect(&paho.Disconnect{})
		waitClosed(name)
	}
	// In flight: they receive the messages but do not acknowledge them.
	inflight := map[string]*sessionClient{}
	for _, name := range []string{"inflight-revoked", "inflight-control"} {
		inflight[name] = subscriber(name, sessionOpts{manualAck: true})
	}
	// Queued: with Receive Maximum 1, one message is sent, the rest wait
	// for its acknowledgement.
	queued := map[string]*sessionClient{}
	for _, name := range []string{"queued-revoked", "queued-control"} {
		queued[name] = subscriber(name, sessionOpts{manualAck: true, receiveMax: 1})
	}

	plc, _, _, err := pahoConnect(t, n, "plc", "plc", "plc-secret-123")
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if _, err := plc.Publish(ctx, &paho.Publish{Topic: "line/1", QoS: 1, Payload: []byte(fmt.Sprint("m", i))}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"offline-revoked", "offline-control"} {
		poll.Until(t, 3*time.Second, name+": messages queued", func() bool {
			cl, _ := srv.Clients.Get(name)
			return cl.State.Inflight.Len() == 3
		})
	}
	for name, c := range inflight {
		for i := range 3 {
			select {
			case <-c.msgs:
			case <-time.After(3 * time.Second):
				t.Fatalf("%s received %d messages before the revocation, want 3", name, i)
			}
		}
	}
	firsts := map[string]*paho.Publish{}
	for name, c := range queued {
		select {
		case p := <-c.msgs:
			firsts[name] = p
		case <-time.After(3 * time.Second):
			t.Fatalf("%s received nothing", name)
		}
		if got := c.received(300 * time.Millisecond); len(got) != 0 {
			t.Fatalf("%s received %v beyond its Receive Maximum", name, got)
		}
	}

	// The admin withdraws the read permission of the "-revoked" users.
	for _, name := range []string{"offline-revoked", "inflight-revoked", "queued-revoked"} {
		revoke(name)
	}
	// The offline session's messages are dropped at once, not kept until it
	// comes back.
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		cl, _ := srv.Clients.Get("offline-revoked")
		if n := cl.State.Inflight.Len(); n == 0 {
			break
		} else if time.Now().After(deadline) {
			t.Errorf("offline-revoked: %d queued messages kept after the revocation", n)
			break
		}
	}

	// The queued subscribers acknowledge their first message: the next one
	// would be sent now.
	for name, c := range queued {
		if err := c.Ack(firsts[name]); err != nil {
			t.Fatalf("%s: ack: %v", name, err)
		}
	}
	// The in-flight subscribers vanish without acknowledging, then resume.
	for name, c := range inflight {
		_ = c.conn.Close()
		waitClosed(name)
	}
	resumed := map[string]*sessionClient{}
	for _, name := range []string{"offline-revoked", "offline-control", "inflight-revoked", "inflight-control"} {
		resumed[name] = connectSession(t, n, name, name, "secret-of-"+name, sessionOpts{})
		if !resumed[name].present {
			t.Fatalf("%s: session not present on reconnect", name)
		}
	}

	final := map[string]*sessionClient{
		"offline-revoked": resumed["offline-revoked"], "offline-control": resumed["offline-control"],
		"inflight-revoked": resumed["inflight-revoked"], "inflight-control": resumed["inflight-control"],
		"queued-revoked": queued["queued-revoked"], "queued-control": queued["queued-control"],
	}
	// Gather until every control has its messages, then a second more for
	// anything the revoked ones would get.
	got := map[string][]string{}
	drain := func() {
		for name, c := range final {
			for len(c.msgs) > 0 {
				got[name] = append(got[name], string((<-c.msgs).Payload))
			}
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(got["offline-control"]) < 3 || len(got["inflight-control"]) < 3 || len(got["queued-control"]) < 1 {
		if time.Now().After(deadline) {
			break
		}
		drain()
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second)
	drain()
	for name := range final {
		switch revoked := strings.HasSuffix(name, "-revoked"); {
		case revoked && len(got[name]) > 0:
			t.Errorf("%s: %v delivered after its read permission was withdrawn", name, got[name])
		case !revoked && len(got[name]) == 0:
			t.Errorf("%s: nothing delivered although its permission was left alone", name)
		}
	}
}
