package authhook_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/internal/poll"
	"github.com/warden-mqtt/warden/store/storetest"
)

// TestResumedSessionsLeaveTheOfflineList: a user's offline sessions are
// listed (for --mqtt-max-offline-sessions) while offline only: resuming
// one takes it off the list at once, and going offline again lists it
// once, so the list never holds sessions Mochi no longer keeps offline.
func TestResumedSessionsLeaveTheOfflineList(t *testing.T) {
	t.Parallel()
	n := startNode(t, nodeOpts{})
	addUser(t, n.st, "fleet", "fleet-secret-1", []acl.Permission{perm("fleet/#", acl.OpReadWrite)}, nil)
	srv := n.broker.Server()
	const sessions = 3
	leave := func(c *sessionClient, id string) {
		_ = c.Disconnect(&paho.Disconnect{})
		poll.Until(t, 3*time.Second, id+" disconnected", func() bool {
			cl, ok := srv.Clients.Get(id)
			return ok && cl.Closed()
		})
	}
	for i := range sessions {
		id := fmt.Sprint("fleet-", i)
		leave(connectSession(t, n, id, "fleet", "fleet-secret-1", sessionOpts{cleanStart: true}), id)
	}
	if got := n.hook.OfflineSessions("fleet"); got != sessions {
		t.Fatalf("%d offline sessions listed, want %d", got, sessions)
	}
	var resumed []*sessionClient
	for i := range sessions {
		c := connectSession(t, n, fmt.Sprint("fleet-", i), "fleet", "fleet-secret-1", sessionOpts{})
		if !c.present {
			t.Fatalf("fleet-%d: session not resumed", i)
		}
		resumed = append(resumed, c)
	}
	if got := n.hook.OfflineSessions("fleet"); got != 0 {
		t.Errorf("%d offline sessions listed while every session is connected again, want 0", got)
	}
	for i, c := range resumed {
		leave(c, fmt.Sprint("fleet-", i))
	}
	if got := n.hook.OfflineSessions("fleet"); got != sessions {
		t.Errorf("%d offline sessions listed after they went offline again, want %d", got, sessions)
	}
}

// BenchmarkOfflineSessionChurn: one session of a user that holds 5,000
// other sessions offline (a shared user with a raised
// --mqtt-max-offline-sessions) connects, goes offline and expires. Going
// offline and leaving the list cost the same whatever the list's length.
func BenchmarkOfflineSessionChurn(b *testing.B) {
	st := storetest.OpenBolt(b)
	quiet := slog.New(slog.DiscardHandler)
	h, err := authhook.New(context.Background(), authhook.Options{Store: st, Logger: quiet, MaxOfflineSessions: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	srv := mqtt.New(&mqtt.Options{Logger: quiet})
	if err := srv.AddHook(h, nil); err != nil {
		b.Fatal(err)
	}
	h.Attach(srv)
	b.Cleanup(func() { _ = h.Stop() })
	addUser(b, st, "fleet", "fleet-secret-1", []acl.Permission{perm("fleet/#", acl.OpReadWrite)}, nil)
	const offline = 5000
	for i := range offline {
		cl := fakeConnect(b, h, srv, fmt.Sprint("fleet-", i), "fleet", "fleet-secret-1")
		srv.Clients.Add(cl)
		h.OnDisconnect(cl, nil, false)
	}
	c1, c2 := net.Pipe()
	b.Cleanup(func() { _ = c1.Close(); _ = c2.Close() })
	pk := packets.Packet{ProtocolVersion: 5, Connect: packets.ConnectParams{
		ClientIdentifier: "churn", UsernameFlag: true, Username: []byte("fleet"), PasswordFlag: true, Password: []byte("fleet-secret-1"),
	}}
	cl := srv.NewClient(c1, "tcp", "churn", false)
	cl.ParseConnect("tcp", pk)
	b.ReportAllocs()
	for b.Loop() {
		if err := h.OnConnect(cl, pk); err != nil {
			b.Fatal(err)
		}
		h.OnDisconnect(cl, nil, false)
		h.OnClientExpired(cl)
	}
}
