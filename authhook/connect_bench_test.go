//go:build unix

package authhook_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/broker"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/internal/mqtttest"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// BenchmarkConnectLoopback is issue 21's connect figure in process:
// devices' CONNECT and DISCONNECT over loopback TCP (mqtttest.Cycle, the
// natscallout benchmarks' client), alternately on two embedded brokers
// built by broker.New: one with the hook as cmd/warden builds it (bbolt,
// metrics, a logger at info level, a node ID so the roster runs), one
// with Mochi's allow-all hook as --insecure-no-auth. The user's password
// has the production argon2id parameters and was verified once before
// the timer (a warm cache).
//
// Each iteration is one round on each broker, the order alternating: a
// round is one cycle from each of the clients at once (each with its own
// client ID, as a fleet's devices). Rounds that alternate share the
// machine's noise, so the ratio is steadier than two runs'. It reports
// each side's connects/s, process CPU µs per connect (client, Mochi and
// hook: the figure least disturbed by other load) and heap allocations
// per connect (the whole process, from runtime/metrics around each
// round, so approximate by what a server goroutine does after its client
// saw the close), and on/off for the rate and the CPU.
func BenchmarkConnectLoopback(b *testing.B) {
	for _, c := range []struct {
		version byte
		clients int
	}{{4, 1}, {5, 1}, {4, 8}} {
		b.Run(fmt.Sprintf("v%d/clients=%d", c.version, c.clients), func(b *testing.B) { benchConnectLoopback(b, c.version, c.clients) })
	}
}

func benchConnectLoopback(b *testing.B, version byte, clients int) {
	const user, password = "bench-device", "Bench-device-secret-1"
	st := storetest.OpenBolt(b)
	hash, err := credential.Hash(password, credential.DefaultParams)
	if err != nil {
		b.Fatal(err)
	}
	addUser(b, st, user, "", []acl.Permission{perm("devices/{clientId}/#", acl.OpReadWrite)}, func(u *store.User) { u.PasswordHash = hash })
	m, err := authhook.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	infoLog := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h, err := authhook.New(context.Background(), authhook.Options{Store: st, Logger: infoLog, Metrics: m, NodeID: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = h.Stop() })
	on := startBenchBroker(b, h)
	h.Attach(on.Server())
	off := startBenchBroker(b, new(auth.AllowHook))
	sides := [2]struct {
		addr         string
		took, cpu    time.Duration
		allocs, runs uint64
	}{{addr: off.Addr(broker.ListenerTCP)}, {addr: on.Addr(broker.ListenerTCP)}}

	pks := make([]mqtttest.Connect, clients)
	for c := range pks {
		pks[c] = mqtttest.Connect{Version: version, ClientID: fmt.Sprint("bench-", c), Username: user, Password: password, Keepalive: 30}
		for _, s := range sides {
			if _, _, err := mqtttest.Cycle(s.addr, pks[c]); err != nil { // warms the cache (auth on)
				b.Fatal(err)
			}
		}
	}
	sample := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}
	allocs := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	var failed atomic.Pointer[error]
	round := func(side int) {
		s := &sides[side]
		a0, c0, t0 := allocs(), processCPU(b), time.Now()
		var wg sync.WaitGroup
		for _, pk := range pks {
			wg.Go(func() {
				if _, _, err := mqtttest.Cycle(s.addr, pk); err != nil {
					failed.CompareAndSwap(nil, &err)
				}
			})
		}
		wg.Wait()
		s.took += time.Since(t0)
		s.cpu += processCPU(b) - c0
		s.allocs += allocs() - a0
		s.runs += uint64(clients)
	}
	first := 0
	for b.Loop() {
		round(first)
		round(1 - first)
		first = 1 - first
	}
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	rate := func(side int) float64 { return float64(sides[side].runs) / sides[side].took.Seconds() }
	cpu := func(side int) float64 {
		return float64(sides[side].cpu) / float64(time.Microsecond) / float64(sides[side].runs)
	}
	b.ReportMetric(rate(1), "on-connects/s")
	b.ReportMetric(rate(0), "off-connects/s")
	b.ReportMetric(rate(1)/rate(0), "on/off")
	b.ReportMetric(cpu(1), "on-cpu-µs/connect")
	b.ReportMetric(cpu(0), "off-cpu-µs/connect")
	b.ReportMetric(cpu(1)/cpu(0), "cpu-on/off")
	b.ReportMetric(float64(sides[1].allocs)/float64(sides[1].runs), "on-allocs/connect")
	b.ReportMetric(float64(sides[0].allocs)/float64(sides[0].runs), "off-allocs/connect")
}

// processCPU is the user and system CPU time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startBenchBroker starts an embedded broker with hook on a loopback
// port, logging nothing.
func startBenchBroker(b *testing.B, hook mqtt.Hook) *broker.Broker {
	br, err := broker.New(broker.Config{TCPAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)}, hook)
	if err != nil {
		b.Fatal(err)
	}
	if err := br.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = br.Close() })
	return br
}
