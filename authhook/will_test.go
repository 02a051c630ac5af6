package authhook_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/internal/poll"
	"github.com/warden-mqtt/warden/store"
)

// willDelay is the Will Delay Interval of the tests' wills: long enough
// for a revocation to reach the hook first (it takes milliseconds), short
// enough to keep the test to seconds. Mochi sends delayed wills from a
// one-second ticker, with no clock to inject, so the tests wait for it.
const willDelay = 2

// pahoWillClient connects an MQTT 5 Paho client that leaves a retained,
// delayed will on topic. With clean, it sends no Session Expiry Interval
// (0: the session ends with the connection, so the will is published at
// once); otherwise the session outlives the connection by an hour (a will
// waits for the smaller of its delay and the session expiry). It returns
// the client's network connection, which the test closes to vanish
// without a DISCONNECT.
func pahoWillClient(t *testing.T, n *node, clientID, username, password, topic string, clean bool) net.Conn {
	t.Helper()
	expiry := uint32(3600)
	if clean {
		expiry = 0
	}
	return connectWithWill(t, n, clientID, username, password, topic, expiry, willDelay, true)
}

// TestDelayedWillRespectsRevocation: a device connects with a retained will
// delayed by two seconds and vanishes; before the delay ends, the admin
// suspends or deletes its user, removes its write permission on the will
// topic, revokes the login token it connected with, or changes the password
// it connected with. None of those wills reaches a subscriber, nor is kept
// as a retained message for a later one; the will of a device whose access
// did not change is delivered and retained.
func TestDelayedWillRespectsRevocation(t *testing.T) {
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

	type device struct {
		name    string
		clean   bool // the session ends with the connection
		revoke  func(u store.User)
		control bool
	}
	perms := func(name string) []acl.Permission {
		return []acl.Permission{perm("wills/"+name, acl.OpWrite), perm("data/"+name+"/#", acl.OpReadWrite)}
	}
	devices := []device{
		{name: "suspended", revoke: func(u store.User) {
			if _, err := n.st.UpdateUser(ctx, u.ID, func(u *store.User) error { u.Suspended = true; return nil }); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "deleted", revoke: func(u store.User) {
			if err := n.st.DeleteUser(ctx, u.ID); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "unpermitted", revoke: func(u store.User) {
			if _, err := n.st.UpdateRole(ctx, u.Roles[0], func(r *store.Role) error {
				r.Permissions = []acl.Permission{perm("data/unpermitted/#", acl.OpReadWrite)} // no write on its will topic
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "token", revoke: nil}, // set below: it connects with a login token
		{name: "password", revoke: func(u store.User) {
			h, err := credentialHash("a-new-password-9")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := n.st.UpdateUser(ctx, u.ID, func(u *store.User) error { u.PasswordHash = h; return nil }); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "control", control: true},
		// A session that ends with its connection publishes its will then.
		{name: "clean-control", clean: true, control: true},
	}
	conns := map[string]net.Conn{}
	users := map[string]store.User{}
	for i := range devices {
		d := &devices[i]
		pw := "secret-of-" + d.name
		u := addUser(t, n.st, d.name, pw, perms(d.name), nil)
		users[d.name] = u
		if d.name == "token" {
			tok, rec, err := n.tokens.Issue(ctx, u, "login", "", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			pw = tok
			d.revoke = func(store.User) {
				if err := n.tokens.Revoke(ctx, rec.ID); err != nil {
					t.Fatal(err)
				}
			}
		}
		conns[d.name] = pahoWillClient(t, n, d.name+"-dev", d.name, pw, "wills/"+d.name, d.clean)
	}

	// Every device vanishes; Mochi queues each will for two seconds.
	srv := n.broker.Server()
	for _, d := range devices {
		_ = conns[d.name].Close()
	}
	for _, d := range devices {
		poll.Until(t, 3*time.Second, d.name+" disconnected", func() bool {
			cl, ok := srv.Clients.Get(d.name + "-dev")
			return !ok || cl.Closed()
		})
	}
	start := time.Now()
	for _, d := range devices {
		if !d.control {
			d.revoke(users[d.name])
		}
	}
	if time.Since(start) > time.Second {
		t.Fatalf("revoking took %v: the wills may have been due before it", time.Since(start))
	}

	// The controls' wills arrive once due; the others would have come
	// with them (same second) or within the next tick.
	controls := []string{"wills/control", "wills/clean-control"}
	delivered := collect(got, controls, (willDelay+4)*time.Second)
	// A later subscriber gets the retained control wills and nothing else.
	late, _, lateGot, err := pahoConnect(t, n, "late", "watcher", "watcher-secret1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := late.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "wills/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	retained := collect(lateGot, controls, 3*time.Second)
	for _, d := range devices {
		topic := "wills/" + d.name
		switch {
		case d.control && !delivered[topic]:
			t.Errorf("%s: will not delivered although nothing was revoked", topic)
		case d.control && !retained[topic]:
			t.Errorf("%s: will not retained although nothing was revoked", topic)
		case !d.control && delivered[topic]:
			t.Errorf("%s: will delivered after its client's access was revoked", topic)
		case !d.control && retained[topic]:
			t.Errorf("%s: will retained after its client's access was revoked", topic)
		}
	}
}

// collect gathers the topics of the messages arriving on ch until every
// topic in want has come (or within gives up), then for a second more.
func collect(ch <-chan *paho.Publish, want []string, within time.Duration) map[string]bool {
	seen := map[string]bool{}
	deadline := time.After(within)
	for !hasAll(seen, want) {
		select {
		case p := <-ch:
			seen[p.Topic] = true
		case <-deadline:
			return seen
		}
	}
	more := time.After(2 * time.Second)
	for {
		select {
		case p := <-ch:
			seen[p.Topic] = true
		case <-more:
			return seen
		}
	}
}

func hasAll(seen map[string]bool, want []string) bool {
	for _, w := range want {
		if !seen[w] {
			return false
		}
	}
	return true
}

// TestWillDecidedOnCurrentPermissions: the hook's answer when Mochi asks
// about a will (at disconnect and again when a delayed will is due) follows
// the client's permissions as they are at that moment, whatever happened
// to the pending will itself.
func TestWillDecidedOnCurrentPermissions(t *testing.T) {
	t.Parallel()
	n := startNode(t, nodeOpts{})
	ctx := context.Background()
	u := addUser(t, n.st, "dev", "dev-secret-123", []acl.Permission{perm("wills/dev", acl.OpWrite), perm("data/#", acl.OpWrite)}, nil)
	_ = pahoWillClient(t, n, "dev-1", "dev", "dev-secret-123", "wills/dev", false)
	cl, ok := n.broker.Server().Clients.Get("dev-1")
	if !ok {
		t.Fatal("client not found")
	}
	will := mqtt.Will{TopicName: "wills/dev", Payload: []byte("gone"), Flag: 1, WillDelayInterval: willDelay}
	decide := func() uint32 {
		w, err := n.hook.OnWill(cl, will)
		if err != nil {
			t.Fatal(err)
		}
		return w.Flag
	}
	if decide() != 1 {
		t.Fatal("will refused although permitted")
	}
	if _, err := n.st.UpdateRole(ctx, u.Roles[0], func(r *store.Role) error {
		r.Permissions = []acl.Permission{perm("data/#", acl.OpWrite)}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 3*time.Second, "will refused after the write permission was removed", func() bool { return decide() == 0 })
	if _, err := n.st.UpdateRole(ctx, u.Roles[0], func(r *store.Role) error {
		r.Permissions = []acl.Permission{perm("wills/#", acl.OpWrite)}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 3*time.Second, "will allowed after the permission came back", func() bool { return decide() == 1 })
	if _, err := n.st.UpdateUser(ctx, u.ID, func(u *store.User) error { u.Suspended = true; return nil }); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 3*time.Second, "will refused after the user was suspended", func() bool { return decide() == 0 })
}
