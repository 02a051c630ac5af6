package authhook_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/internal/poll"
)

// TestOfflineSessionsPerUserCapped: one user leaves more persistent
// sessions offline than DefaultMaxOfflineSessions; the oldest end (their
// subscriptions and queued messages with them), the newest stay and can be
// resumed, and another user's offline session is untouched.
func TestOfflineSessionsPerUserCapped(t *testing.T) {
	t.Parallel()
	n := startNode(t, nodeOpts{})
	ctx := context.Background()
	perms := []acl.Permission{perm("fleet/#", acl.OpReadWrite)}
	addUser(t, n.st, "fleet", "fleet-secret-1", perms, nil)
	addUser(t, n.st, "other", "other-secret-1", perms, nil)
	srv := n.broker.Server()
	const total = authhook.DefaultMaxOfflineSessions + 5

	leave := func(id, user, pw string) {
		c := connectSession(t, n, id, user, pw, sessionOpts{cleanStart: true})
		if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "fleet/" + id, QoS: 1}}}); err != nil {
			t.Fatal(err)
		}
		_ = c.Disconnect(&paho.Disconnect{})
		poll.Until(t, 3*time.Second, id+" disconnected", func() bool {
			cl, ok := srv.Clients.Get(id)
			return !ok || cl.Closed()
		})
	}
	leave("other-1", "other", "other-secret-1")
	// The first session leaves a will delayed by an hour: when the session
	// is ended, the will is due at once, not kept for the hour.
	addUser(t, n.st, "watcher", "watcher-secret1", []acl.Permission{perm("fleet/#", acl.OpRead)}, nil)
	watcher, _, wills, err := pahoConnect(t, n, "watcher", "watcher", "watcher-secret1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watcher.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "fleet/will/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	withWill := connectSession(t, n, "fleet-will", "fleet", "fleet-secret-1", sessionOpts{cleanStart: true, willTopic: "fleet/will/gone", willDelay: 3600})
	_ = withWill.Disconnect(&paho.Disconnect{ReasonCode: 0x04}) // "disconnect with will message"
	poll.Until(t, 3*time.Second, "fleet-will disconnected", func() bool {
		cl, ok := srv.Clients.Get("fleet-will")
		return ok && cl.Closed()
	})
	for i := range total {
		leave(fmt.Sprint("fleet-", i), "fleet", "fleet-secret-1")
	}
	// leave waits until the client is closed; Mochi marks it closed before
	// it calls OnDisconnect, which lists the session and ends the oldest,
	// so the last eviction may still be under way: wait for it.
	lastEnded := fmt.Sprint("fleet-", total-authhook.DefaultMaxOfflineSessions-1)
	poll.Until(t, 5*time.Second, lastEnded+"'s session ended", func() bool {
		_, kept := srv.Clients.Get(lastEnded)
		return !kept
	})

	for i := range total {
		id := fmt.Sprint("fleet-", i)
		_, kept := srv.Clients.Get(id)
		subscribed := len(srv.Topics.Subscribers("fleet/"+id).Subscriptions) > 0
		want := i >= total-authhook.DefaultMaxOfflineSessions
		if kept != want || subscribed != want {
			t.Errorf("%s (offline #%d): session kept %v, subscribed %v; want %v", id, i+1, kept, subscribed, want)
		}
	}
	if _, ok := srv.Clients.Get("other-1"); !ok {
		t.Error("another user's offline session was ended")
	}
	select {
	case p := <-wills:
		if p.Topic != "fleet/will/gone" {
			t.Errorf("got %s, want the ended session's will", p.Topic)
		}
	case <-time.After(5 * time.Second):
		t.Error("the ended session's will was not published")
	}
	// The newest resumes with its session.
	if c := connectSession(t, n, fmt.Sprint("fleet-", total-1), "fleet", "fleet-secret-1", sessionOpts{}); !c.present {
		t.Error("the newest offline session could not be resumed")
	}
}
