package authhook_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/internal/poll"
	"github.com/warden-mqtt/warden/store"
)

// aliasSubscriber connects an MQTT 5 Paho client that accepts topic
// aliases from the server (Topic Alias Maximum 10), with a session of an
// hour and, with manualAck, QoS 1 messages left unacknowledged.
func aliasSubscriber(t *testing.T, n *node, name string, clean, manualAck bool) (*paho.Client, chan *paho.Publish, *paho.Connack) {
	t.Helper()
	conn := n.dial(t)
	msgs := make(chan *paho.Publish, 16)
	c := paho.NewClient(paho.ClientConfig{
		Conn:                       conn,
		EnableManualAcknowledgment: manualAck,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) { msgs <- pr.Packet; return true, nil },
		},
	})
	expiry, aliases := uint32(3600), uint16(10)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, &paho.Connect{
		ClientID: name, KeepAlive: 30, CleanStart: clean,
		Username: name, UsernameFlag: true, Password: []byte("secret-of-" + name), PasswordFlag: true,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry, TopicAliasMaximum: &aliases},
	})
	if err != nil || ca.ReasonCode != 0 {
		t.Fatalf("%s: connect: %v (%+v)", name, err, ca)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return c, msgs, ca
}

// TestQueuedMessagesSentWithAnAliasSurvive: a subscriber that accepts
// topic aliases gets the second message on a topic with the alias only
// (no topic name). It leaves without acknowledging either. Both are kept
// for its session and resent, with their topic (a new connection has no
// aliases), when it resumes: whether or not its permissions changed (and
// were re-checked against the queued messages) while it was offline.
// Before, the broker stored the aliased copy, whose empty topic no read
// permission allows, so the second message was dropped.
func TestQueuedMessagesSentWithAnAliasSurvive(t *testing.T) {
	t.Parallel()
	n := startNode(t, nodeOpts{})
	ctx := context.Background()
	srv := n.broker.Server()
	addUser(t, n.st, "plc", "plc-secret-123", []acl.Permission{perm("line/#", acl.OpWrite)}, nil)
	users := map[string]store.User{}
	for _, name := range []string{"changed", "unchanged"} {
		users[name] = addUser(t, n.st, name, "secret-of-"+name, []acl.Permission{perm("line/#", acl.OpRead), perm("misc/#", acl.OpRead)}, nil)
	}
	inboxes := map[string]chan *paho.Publish{}
	for name := range users {
		c, msgs, _ := aliasSubscriber(t, n, name, true, true)
		if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "line/#", QoS: 1}, {Topic: "misc/#", QoS: 1}}}); err != nil {
			t.Fatalf("%s: subscribe: %v", name, err)
		}
		inboxes[name] = msgs
	}
	plc, _, _, err := pahoConnect(t, n, "plc", "plc", "plc-secret-123")
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		if _, err := plc.Publish(ctx, &paho.Publish{Topic: "line/a", QoS: 1, Payload: []byte(fmt.Sprint("m", i))}); err != nil {
			t.Fatal(err)
		}
	}
	for name, msgs := range inboxes {
		for i := 1; i <= 2; i++ {
			select {
			case p := <-msgs:
				aliased := p.Properties != nil && p.Properties.TopicAlias != nil
				if !aliased || (i == 1) != (p.Topic == "line/a") {
					t.Fatalf("%s: message %d came with topic %q (alias %v): want the topic and an alias first, then the alias only", name, i, p.Topic, aliased)
				}
			case <-time.After(3 * time.Second):
				t.Fatalf("%s: message %d not delivered", name, i)
			}
		}
	}
	// Both vanish without acknowledging.
	for name := range users {
		cl, _ := srv.Clients.Get(name)
		_ = cl.Net.Conn.Close()
		poll.Until(t, 3*time.Second, name+" disconnected", func() bool { return cl.Closed() })
		if got := cl.State.Inflight.Len(); got != 2 {
			t.Fatalf("%s: %d messages held, want 2", name, got)
		}
	}
	// One loses an unrelated permission while offline: its queue is
	// re-checked against what it may read now.
	if _, err := n.st.UpdateRole(ctx, users["changed"].Roles[0], func(r *store.Role) error {
		r.Permissions = []acl.Permission{perm("line/#", acl.OpRead)}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 3*time.Second, "the permission change applied", func() bool {
		cl, _ := srv.Clients.Get("changed")
		return cl.State.Subscriptions.Len() == 1
	})

	for name := range users {
		_, msgs, ca := aliasSubscriber(t, n, name, false, false)
		if !ca.SessionPresent {
			t.Fatalf("%s: session not resumed", name)
		}
		var got []string
		timeout := time.After(3 * time.Second)
	collect:
		for len(got) < 2 {
			select {
			case p := <-msgs:
				if p.Topic != "line/a" {
					t.Errorf("%s: %q resent with topic %q, want line/a (a new connection knows no alias)", name, p.Payload, p.Topic)
				}
				got = append(got, string(p.Payload))
			case <-timeout:
				break collect
			}
		}
		if len(got) != 2 {
			t.Errorf("%s: resent %q after resuming, want m1 and m2", name, got)
		}
	}
}
