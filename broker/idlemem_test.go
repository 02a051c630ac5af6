package broker

import (
	"fmt"
	"log/slog"
	"net"
	"testing"

	"github.com/warden-mqtt/warden/internal/mqtttest"
)

// TestIdleClientCost: an idle connected client costs the broker one
// goroutine whose stack shrinks to 4 KiB (Mochi's CONNECT handling and
// its read loop's packet values are off the stack while it waits: warden
// patch 21), no write queue (patch 20) and no read buffer (patch 22);
// upstream it was two goroutines, 20 KiB of stacks, an 8 KiB queue and a
// 2 KiB read buffer. The test's clients are
// bare sockets with no goroutine of their own, so the goroutines and
// stacks counted are the broker's. Not parallel: it reads process-wide
// runtime metrics. BenchmarkIdleClients measures the same at scale.
func TestIdleClientCost(t *testing.T) {
	const n = 200
	b := startBroker(t, Config{TCPAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	addr := b.Addr(ListenerTCP)
	before := readIdleMetrics()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			_ = c.Close()
		}
	})
	for i := range n {
		version := byte(4 + i%2) // MQTT 3.1.1 and 5
		c, err := idleConnect(addr, version, fmt.Sprintf("idle-cost-%d", i), mqtttest.Connect{})
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	waitQuiet(t, b.Server(), n)
	after := readIdleMetrics()
	per := func(i int) float64 { return float64(after[i]-before[i]) / n }
	heap, stacks, goroutines := per(0), per(1)+per(2), per(3)
	t.Logf("per idle client: %.0f B heap, %.0f B stacks, %.2f goroutines", heap, stacks, goroutines)
	if goroutines > 1.05 {
		t.Errorf("%.2f goroutines per idle client; want 1 (the read loop; a writer runs only while packets wait)", goroutines)
	}
	if raceEnabled {
		return // the race detector's stacks and heap are larger
	}
	if stacks > 4096*1.1 {
		t.Errorf("%.0f bytes of goroutine stack per idle client; want 4 KiB (a frame grew on the idle read path?)", stacks)
	}
	if heap > 4*1024 {
		t.Errorf("%.0f bytes of heap per idle client; want under 4 KiB (about 2.8 KiB today)", heap)
	}
}
