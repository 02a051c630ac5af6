package authhook_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// benchHook builds a hook on a server that does not serve: the benchmarks
// call the hook methods the way Mochi does, without network noise. Metrics
// are on, as in production.
func benchHook(b testing.TB) (*authhook.Hook, *mqtt.Server, store.Store) {
	st := storetest.OpenBolt(b)
	quiet := slog.New(slog.DiscardHandler)
	m, err := authhook.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	h, err := authhook.New(context.Background(), authhook.Options{Store: st, Logger: quiet, Metrics: m})
	if err != nil {
		b.Fatal(err)
	}
	srv := mqtt.New(&mqtt.Options{Logger: quiet})
	if err := srv.AddHook(h, nil); err != nil {
		b.Fatal(err)
	}
	h.Attach(srv)
	b.Cleanup(func() { _ = h.Stop() })
	return h, srv, st
}

// fakeConnect admits a client through the hook's CONNECT path.
func fakeConnect(b testing.TB, h *authhook.Hook, srv *mqtt.Server, id, user, pw string) *mqtt.Client {
	c1, c2 := net.Pipe()
	b.Cleanup(func() { _ = c1.Close(); _ = c2.Close() })
	cl := srv.NewClient(c1, "tcp", id, false)
	pk := packets.Packet{ProtocolVersion: 5, Connect: packets.ConnectParams{
		ClientIdentifier: id, Clean: true, UsernameFlag: true, Username: []byte(user), PasswordFlag: true, Password: []byte(pw),
	}}
	cl.ParseConnect("tcp", pk)
	if err := h.OnConnect(cl, pk); err != nil || !h.OnConnectAuthenticate(cl, pk) {
		b.Fatalf("connect %s: %v", id, err)
	}
	return cl
}

func BenchmarkOnACLCheck(b *testing.B) {
	h, srv, st := benchHook(b)
	perms := make([]acl.Permission, 0, 1000)
	for i := range 997 {
		perms = append(perms, perm(fmt.Sprintf("site%d/+/line/#", i), acl.OpRead))
	}
	perms = append(perms, perm("plant/{username}/+/+/+/value", acl.OpRead), perm("cmd/{clientId}/#", acl.OpWrite), perm("a/#", acl.OpRead))
	addUser(b, st, "dev", "dev-secret-123", perms, func(u *store.User) {})
	var cl *mqtt.Client
	for i := range 1000 { // other clients in the lookup map
		cl = fakeConnect(b, h, srv, fmt.Sprint("c", i), "dev", "dev-secret-123")
	}
	for _, c := range []struct {
		name, topic string
		write       bool
	}{
		{"delivery-6-levels", "plant/dev/a/b/c/value", false},
		{"publish", "cmd/c999/set/speed", true},
		{"subscribe-filter", "plant/dev/+/b/#", false},
		{"denied", "plant/other/a/b/c/value", false},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				h.OnACLCheck(cl, c.topic, c.write)
			}
		})
	}
}

// BenchmarkConnectAuth: a reconnect of a known device with a cached
// verification, using the default argon2id parameters for the stored hash.
func BenchmarkConnectAuth(b *testing.B) {
	h, srv, st := benchHook(b)
	hash, err := credential.Hash("device-secret-1", credential.DefaultParams)
	if err != nil {
		b.Fatal(err)
	}
	addUser(b, st, "dev", "", []acl.Permission{perm("dev/#", acl.OpReadWrite)}, func(u *store.User) { u.PasswordHash = hash })
	fakeConnect(b, h, srv, "warm", "dev", "device-secret-1") // warms the cache
	c1, c2 := net.Pipe()
	b.Cleanup(func() { _ = c1.Close(); _ = c2.Close() })
	pk := packets.Packet{ProtocolVersion: 5, Connect: packets.ConnectParams{
		ClientIdentifier: "dev-1", Clean: true, UsernameFlag: true, Username: []byte("dev"), PasswordFlag: true, Password: []byte("device-secret-1"),
	}}
	// One Mochi client reused: NewClient's own allocations (a 64 KiB
	// outbound queue) are Mochi's cost, not the auth layer's.
	cl := srv.NewClient(c1, "tcp", "dev-1", false)
	cl.ParseConnect("tcp", pk)
	b.ReportAllocs()
	for b.Loop() {
		if h.OnConnect(cl, pk) != nil {
			b.Fatal("refused")
		}
		h.OnDisconnect(cl, nil, true)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "connects/s")
}
