package broker

import (
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/internal/mqtttest"
)

// TestSilentConnectHoldsWhatItSent: 64 unauthenticated sockets each send
// a CONNECT fixed header claiming 64 KiB (the pre-authentication limit),
// then 6 bytes of it, and go silent. The broker reads a CONNECT's body as
// it arrives instead of allocating the claimed size first, so the sockets
// cost about what they sent plus the per-connection state (buffers, the
// outbound queue), not 64 KiB each for the connect timeout. Measured as
// live heap after GC, with a wide margin: under 32 KiB per socket, where
// the claimed bodies alone are 64 KiB each.
func TestSilentConnectHoldsWhatItSent(t *testing.T) {
	b := startBroker(t, Config{TCPAddr: local, ConnectTimeout: time.Minute})
	const sockets = 64
	const header = 4 // type byte + 3 length bytes
	claim := DefaultMaxConnectPacketSize - header
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	var conns []net.Conn
	for range sockets {
		c := dialTCP(b.Addr(ListenerTCP))(t)
		conns = append(conns, c)
		if _, err := c.Write(append(mqtttest.Header(0x10, claim), 0, 4, 'M', 'Q', 'T', 'T')); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	// Every fixed header has passed the size check once the server has
	// counted its bytes; the body is read (and, before, allocated) next.
	deadline := time.Now().Add(10 * time.Second)
	for atomic.LoadInt64(&b.server.Info.BytesReceived) < sockets*header {
		if time.Now().After(deadline) {
			t.Fatalf("the server read %d header bytes of %d", atomic.LoadInt64(&b.server.Info.BytesReceived), sockets*header)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The goroutines reach their body read just after: take the largest
	// of a few samples.
	var grown uint64
	for range 5 {
		if h := heap(); h > before && h-before > grown {
			grown = h - before
		}
		time.Sleep(20 * time.Millisecond)
	}
	per := grown / sockets
	t.Logf("%d sockets claiming a %d KiB CONNECT, 6 bytes of it sent: live heap +%d KiB, %d KiB per socket",
		sockets, DefaultMaxConnectPacketSize>>10, grown>>10, per>>10)
	if per >= 32<<10 {
		t.Errorf("each silent socket holds %d KiB, want well under the %d KiB it claimed", per>>10, claim>>10)
	}
	for _, c := range conns {
		if err := c.SetReadDeadline(time.Now().Add(10 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(make([]byte, 1)); !isTimeoutErr(err) {
			t.Fatalf("a socket that sent part of its CONNECT was closed early: %v", err)
		}
	}
}

func isTimeoutErr(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
