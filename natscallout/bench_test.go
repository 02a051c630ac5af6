//go:build unix

package natscallout_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/broker"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/internal/mqtttest"
	"github.com/warden-mqtt/warden/natscallout"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// The benchmarks of issue 17: the same raw MQTT 3.1.1 client connects,
// waits for CONNACK and disconnects, once through a nats-server whose
// auth callout warden answers, once on warden's embedded broker, and, as
// the baseline of the callout's cost, on the nats-server alone. The
// user's password is hashed with the production argon2id parameters and
// its verification is cached before timing, as for a fleet reconnecting.
// docs/benchmarks.md records the figures.

const (
	benchUser     = "bench-device"
	benchPassword = "Bench-device-secret-1"
	// benchClients is how many clients connect at once in the throughput
	// run: enough to keep both brokers busy on a small machine.
	benchClients = 16
)

// benchStores are the stores each benchmark runs on: bbolt (the main
// figure) and Redis (what a cluster of warden nodes shares).
var benchStores = []struct {
	name string
	open func(testing.TB) store.Store
}{
	{"bolt", func(t testing.TB) store.Store { return storetest.OpenBolt(t) }},
	{"redis", func(t testing.TB) store.Store { return storetest.OpenRedis(t) }},
}

// BenchmarkConnectNATSCallout: CONNECTs through a nats-server (JetStream,
// MQTT listener) configured with warden's printed configuration, its auth
// callout answered by a natscallout.Service over an authhook.Hook.
func BenchmarkConnectNATSCallout(b *testing.B) {
	for _, s := range benchStores {
		b.Run("store="+s.name, func(b *testing.B) {
			st := s.open(b)
			srv, addr := startCalloutNode(b, st, benchHook(b, st))
			benchConnects(b, addr, jetStreamProbe(srv))
		})
	}
}

// BenchmarkConnectNATSPlain: the same nats-server without the callout,
// the user configured in the MQTT account with a clear-text password:
// what is left is NATS's own MQTT connect, the baseline of the callout's
// cost.
func BenchmarkConnectNATSPlain(b *testing.B) {
	srv, addr := startBenchNATS(b, "accounts { MQTT { jetstream: enabled, users: [ { user: "+benchUser+", password: "+benchPassword+" } ] } }\n")
	benchConnects(b, addr, jetStreamProbe(srv))
}

// jetStreamProbe reports what the NATS MQTT layer asked of JetStream per
// connect and disconnect: session lookups, writes and deletions.
func jetStreamProbe(srv *server.Server) func(b *testing.B) func(connects int) {
	return func(b *testing.B) func(connects int) {
		before := jetStreamWork(b, srv)
		return func(connects int) {
			after := jetStreamWork(b, srv)
			b.ReportMetric(float64(after.api-before.api)/float64(connects), "js-api/connect")
			b.ReportMetric(float64(after.stored-before.stored)/float64(connects), "js-stored/connect")
		}
	}
}

// BenchmarkConnectEmbedded: the same CONNECTs on warden's embedded broker
// (Mochi with the auth hook) on a TCP listener.
func BenchmarkConnectEmbedded(b *testing.B) {
	for _, s := range benchStores {
		b.Run("store="+s.name, func(b *testing.B) {
			h := benchHook(b, s.open(b))
			br, err := broker.New(broker.Config{TCPAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)}, h)
			if err != nil {
				b.Fatal(err)
			}
			h.Attach(br.Server())
			if err := br.Start(); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = br.Close() })
			benchConnects(b, br.Addr(broker.ListenerTCP), nil)
		})
	}
}

// benchHook is a hook on st as cmd/warden builds it (metrics on, logs
// discarded), with the benchmark's user: its password hashed with the
// production parameters, so only the cache keeps a connect cheap.
func benchHook(b *testing.B, st store.Store) *authhook.Hook {
	b.Helper()
	ctx := context.Background()
	hash, err := credential.Hash(benchPassword, credential.DefaultParams)
	if err != nil {
		b.Fatal(err)
	}
	r, err := st.CreateRole(ctx, store.Role{Name: benchUser + "-role", Permissions: []acl.Permission{perm("devices/{clientId}/#", acl.OpReadWrite)}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.CreateUser(ctx, store.User{Username: benchUser, PasswordHash: hash, Roles: []string{r.ID},
		GrantTypes: []store.GrantType{{Method: store.GrantPassword}}}); err != nil {
		b.Fatal(err)
	}
	m, err := authhook.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	h, err := authhook.New(ctx, authhook.Options{Store: st, Logger: slog.New(slog.DiscardHandler), Metrics: m})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = h.Stop() })
	return h
}

// startCalloutNode runs a nats-server with the configuration warden
// nats-config prints for st's issuer, and a warden responder on it; it
// returns the server and its MQTT address.
func startCalloutNode(b *testing.B, st store.Store, h *authhook.Hook) (*server.Server, string) {
	b.Helper()
	const user, password = "warden", "bench-nats-password"
	issuer, err := natscallout.LoadIssuer(context.Background(), st)
	if err != nil {
		b.Fatal(err)
	}
	pub, err := issuer.PublicKey()
	if err != nil {
		b.Fatal(err)
	}
	var printed bytes.Buffer
	if err := natscallout.WriteServerConfig(&printed, natscallout.ServerConfig{Issuer: pub, User: user, Password: password}); err != nil {
		b.Fatal(err)
	}
	srv, addr := startBenchNATS(b, printed.String())
	svc, err := natscallout.Start(context.Background(), benchCalloutOptions(srv.ClientURL(), user, password, issuer, h, st))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = svc.Close() })
	return srv, addr
}

// startBenchNATS runs a nats-server with a client port, JetStream and an
// MQTT listener, and conf (accounts and authorization); it returns the
// server and its MQTT address.
func startBenchNATS(b *testing.B, conf string) (*server.Server, string) {
	b.Helper()
	opts := &server.Options{}
	conf = "server_name: bench\nlisten: 127.0.0.1:-1\nmqtt { listen: 127.0.0.1:-1 }\n" +
		"jetstream { store_dir: " + jsonString(filepath.Join(b.TempDir(), "js")) + " }\n" + conf
	if err := opts.ProcessConfigString(conf); err != nil {
		b.Fatal(err)
	}
	opts.NoLog, opts.NoSigs = true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		b.Fatal(err)
	}
	srv.Start()
	b.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		b.Fatal("nats-server not ready within 10 s")
	}
	return srv, net.JoinHostPort(opts.MQTT.Host, strconv.Itoa(opts.MQTT.Port))
}

// benchCalloutOptions are the responder's options, as cmd/warden sets
// them: the one place to add what later versions of Options need.
func benchCalloutOptions(url, user, password string, issuer nkeys.KeyPair, h *authhook.Hook, st store.Store) natscallout.Options {
	return natscallout.Options{
		URL:         url,
		Connect:     []nats.Option{nats.UserInfo(user, password), nats.Timeout(20 * time.Second)},
		System:      []nats.Option{nats.UserInfo(user+natscallout.SystemUserSuffix, password)},
		Decider:     h,
		Store:       st,
		Issuer:      issuer,
		Permissions: natscallout.Permissions,
		Account:     natscallout.MQTTAccount,
	}
}

// jsWork counts a server's JetStream API requests and the messages its
// streams have stored (deleted ones included).
type jsWork struct{ api, stored uint64 }

func jetStreamWork(b *testing.B, srv *server.Server) jsWork {
	b.Helper()
	jsz, err := srv.Jsz(&server.JSzOptions{Accounts: true, Streams: true})
	if err != nil {
		b.Fatal(err)
	}
	w := jsWork{api: jsz.API.Total}
	for _, acc := range jsz.AccountDetails {
		for _, s := range acc.Streams {
			w.stored += s.State.LastSeq
		}
	}
	return w
}

// benchConnects warms the verification cache and the client IDs, then
// runs the connects one after the other (latency) and from benchClients
// clients at once (throughput). Each client reconnects with its own
// client ID, as a device of a fleet does: on the callout its owner is
// known (claims.go) after the warm-up.
// probe, when set, is called before each run and what it returns after
// it, to report more metrics.
func benchConnects(b *testing.B, addr string, probe func(b *testing.B) func(connects int)) {
	id := func(c int) string { return "bench-" + strconv.Itoa(c) }
	for c := range benchClients {
		if _, _, err := connectOnce(addr, id(c)); err != nil {
			b.Fatalf("warm-up connect: %v", err)
		}
	}
	run := func(b *testing.B, clients int) {
		lat := make([][]time.Duration, clients)
		closing := make([][]time.Duration, clients)
		var next atomic.Int64
		var wg sync.WaitGroup
		var failed atomic.Pointer[error]
		var done func(int)
		if probe != nil {
			done = probe(b)
		}
		cpu0 := cpuTime(b)
		b.ResetTimer()
		for c := range clients {
			wg.Go(func() {
				for next.Add(1) <= int64(b.N) && failed.Load() == nil {
					d, cl, err := connectOnce(addr, id(c))
					if err != nil {
						failed.CompareAndSwap(nil, &err)
						return
					}
					lat[c] = append(lat[c], d)
					closing[c] = append(closing[c], cl)
				}
			})
		}
		wg.Wait()
		b.StopTimer()
		// CPU of the whole process (client, broker and warden alike) per
		// connect: less sensitive than the rates to other load on the
		// machine.
		b.ReportMetric(float64((cpuTime(b)-cpu0)/time.Microsecond)/float64(b.N), "cpu-µs/connect")
		if err := failed.Load(); err != nil {
			b.Fatal(*err)
		}
		reportConnects(b, slices.Concat(lat...), slices.Concat(closing...))
		if done != nil {
			done(b.N)
		}
	}
	b.Run("sequential", func(b *testing.B) { run(b, 1) })
	b.Run("clients="+strconv.Itoa(benchClients), func(b *testing.B) { run(b, benchClients) })
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportConnects reports the rate, the percentiles of the connect
// latency and the median time from DISCONNECT to the server's close.
func reportConnects(b *testing.B, lat, closing []time.Duration) {
	b.ReportMetric(float64(len(lat))/b.Elapsed().Seconds(), "connects/s")
	b.ReportMetric(percentile(lat, 0.50), "p50-µs")
	b.ReportMetric(percentile(lat, 0.99), "p99-µs")
	b.ReportMetric(percentile(closing, 0.50), "close-p50-µs")
}

// percentile is the q quantile of ds in microseconds; it sorts ds.
func percentile(ds []time.Duration, q float64) float64 {
	slices.Sort(ds)
	return float64(ds[min(len(ds)-1, int(q*float64(len(ds))))]) / float64(time.Microsecond)
}

// connectOnce is one connect cycle of the benchmark user (MQTT 3.1.1,
// clean session): mqtttest.Cycle.
func connectOnce(addr, clientID string) (latency, closeWait time.Duration, err error) {
	return mqtttest.Cycle(addr, mqtttest.Connect{Version: 4, ClientID: clientID, Username: benchUser, Password: benchPassword, Keepalive: 30})
}
