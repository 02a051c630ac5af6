package authhook_test

import (
	"context"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/warden-mqtt/warden/acl"
)

// pahoConnect dials the node's TCP listener and connects an Eclipse Paho
// MQTT 5 client; received publishes go to the returned channel. It returns
// the CONNACK and Connect's error as Paho reports them.
func pahoConnect(t testing.TB, n *node, clientID, username, password string) (*paho.Client, *paho.Connack, chan *paho.Publish, error) {
	t.Helper()
	recv := make(chan *paho.Publish, 16)
	c := paho.NewClient(paho.ClientConfig{
		Conn: n.dial(t),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				select {
				case recv <- pr.Packet:
				default:
				}
				return true, nil
			},
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, &paho.Connect{
		ClientID:     clientID,
		KeepAlive:    30,
		CleanStart:   true,
		Username:     username,
		UsernameFlag: username != "",
		Password:     []byte(password),
		PasswordFlag: password != "",
	})
	if err == nil {
		t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{ReasonCode: 0}) })
	}
	return c, ca, recv, err
}

// TestPahoV5: the Eclipse Paho Go client sees the documented MQTT 5 reason
// codes: per-filter SUBACK codes, PUBACK 0x87 for a denied QoS 1 publish,
// CONNACK 0x86 for a bad password.
func TestPahoV5(t *testing.T) {
	t.Parallel()
	n := startNode(t, nodeOpts{})
	addUser(t, n.st, "app", "app-secret-123", []acl.Permission{
		perm("app/#", acl.OpReadWrite),
		perm("secret/#", acl.OpWrite),
	}, nil)
	addUser(t, n.st, "reader", "reader-secret1", []acl.Permission{perm("app/#", acl.OpRead)}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	reader, ca, got, err := pahoConnect(t, n, "reader", "reader", "reader-secret1")
	if err != nil {
		t.Fatalf("reader connect: %v", err)
	}
	if ca.ReasonCode != 0 {
		t.Fatalf("reader CONNACK 0x%02x", ca.ReasonCode)
	}
	// One SUBSCRIBE, one allowed and one denied filter.
	sa, err := reader.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: "app/#", QoS: 1},
		{Topic: "secret/#", QoS: 1},
	}})
	if sa == nil {
		t.Fatalf("subscribe: no SUBACK: %v", err)
	}
	if len(sa.Reasons) != 2 || sa.Reasons[0] != 1 || sa.Reasons[1] != 0x87 {
		t.Fatalf("SUBACK reasons %x, want [01 87]", sa.Reasons)
	}
	if err == nil {
		t.Fatal("paho reported no error for a partly denied SUBSCRIBE")
	}

	app, ca, _, err := pahoConnect(t, n, "app", "app", "app-secret-123")
	if err != nil || ca.ReasonCode != 0 {
		t.Fatalf("app connect: %v", err)
	}
	// Denied QoS 1 publish: PUBACK 0x87, and paho returns it with an error.
	pr, err := app.Publish(ctx, &paho.Publish{Topic: "denied/x", QoS: 1, Payload: []byte("no")})
	if pr == nil {
		t.Fatalf("denied publish: no PUBACK: %v", err)
	}
	if pr.ReasonCode != 0x87 || err == nil {
		t.Fatalf("denied publish: PUBACK 0x%02x, err %v; want 0x87 and an error", pr.ReasonCode, err)
	}
	// Permitted to write, but the reader's subscription to it was refused.
	if pr, err := app.Publish(ctx, &paho.Publish{Topic: "secret/x", QoS: 1, Payload: []byte("hidden")}); err != nil || pr.ReasonCode != 0 {
		t.Fatalf("publish secret/x: %v", err)
	}
	// Allowed publish: PUBACK 0, received by the reader.
	pr, err = app.Publish(ctx, &paho.Publish{Topic: "app/state", QoS: 1, Payload: []byte("ready")})
	if err != nil || pr.ReasonCode != 0 {
		t.Fatalf("allowed publish: %v (%+v)", err, pr)
	}
	select {
	case p := <-got:
		if p.Topic != "app/state" || string(p.Payload) != "ready" {
			t.Fatalf("reader received %q %q, want app/state ready", p.Topic, p.Payload)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("reader received nothing")
	}
	select {
	case p := <-got:
		t.Fatalf("reader received an unexpected %q %q", p.Topic, p.Payload)
	case <-time.After(200 * time.Millisecond):
	}
	// Both clients are still connected after the refusals.
	select {
	case <-app.Done():
		t.Fatal("publisher disconnected after a denied publish")
	case <-reader.Done():
		t.Fatal("subscriber disconnected after a denied filter")
	default:
	}

	// Bad password: Connect returns the CONNACK with 0x86 and an error.
	_, ca, _, err = pahoConnect(t, n, "app-bad", "app", "wrong-password")
	if err == nil {
		t.Fatal("connect with a wrong password succeeded")
	}
	if ca == nil || ca.ReasonCode != 0x86 {
		t.Fatalf("wrong password: CONNACK %+v, want reason 0x86", ca)
	}
}
