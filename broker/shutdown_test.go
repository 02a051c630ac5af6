package broker

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/internal/mqtttest"
)

// connectRaw opens a raw connection, sends connect and checks the CONNACK.
// Keepalive 0: Mochi sets no deadline on such a connection, the case
// where Shutdown's write deadline matters.
func connectRaw(t *testing.T, addr string, connect []byte) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(connect); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	typ, body, err := mqtttest.ReadPacket(r)
	if err != nil || typ != 0x20 || len(body) < 2 || body[1] != 0 {
		t.Fatalf("CONNACK: type %#x body %x err %v", typ, body, err)
	}
	return c, r
}

// TestShutdownTellsClientsTheServerIsShuttingDown: an MQTT 5 client gets
// DISCONNECT 0x8B before its connection closes, an MQTT 3.1.1 client sees
// its connection close, Shutdown returns at once with both gone, and no
// listener accepts any more.
func TestShutdownTellsClientsTheServerIsShuttingDown(t *testing.T) {
	// No keepalive ceiling: both clients keep keepalive 0, so Mochi sets
	// no deadline on their connections.
	b := startBroker(t, Config{TCPAddr: local, WSAddr: local, MaxKeepalive: -1})
	_, r5 := connectRaw(t, b.Addr(ListenerTCP), mqtttest.Connect{Version: 5, ClientID: "shutdown-v5"}.Bytes())
	c3, r3 := connectRaw(t, b.Addr(ListenerTCP), mqtttest.Connect{Version: 4, ClientID: "shutdown-v3"}.Bytes())

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Shutdown took %v with two idle clients", took)
	}

	typ, body, err := mqtttest.ReadPacket(r5)
	if err != nil {
		t.Fatalf("v5 client: no DISCONNECT: %v", err)
	}
	if typ != 0xe0 || len(body) < 1 || body[0] != 0x8b {
		t.Fatalf("v5 client got packet %#x body %x, want DISCONNECT with reason 0x8b", typ, body)
	}
	if _, _, err := mqtttest.ReadPacket(r5); !errors.Is(err, io.EOF) {
		t.Errorf("v5 connection after DISCONNECT: %v, want EOF", err)
	}

	// 3.1.1 defines no server DISCONNECT; Mochi writes a bare e0 00, which
	// clients treat as the close it precedes.
	for {
		typ, _, err := mqtttest.ReadPacket(r3)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("v3 connection still open after Shutdown")
			}
			break
		}
		if typ != 0xe0 {
			t.Errorf("v3 client got packet %#x during shutdown", typ)
		}
	}
	_ = c3.Close()

	for _, id := range []string{ListenerTCP, ListenerWS} {
		if _, err := net.DialTimeout("tcp", b.Addr(id), time.Second); err == nil {
			t.Errorf("the %s listener still accepts after Shutdown", id)
		}
	}
}

// TestShutdownGivesUpWhenTheContextEnds: a done context returns its error
// rather than waiting; the broker still closes.
func TestShutdownGivesUpWhenTheContextEnds(t *testing.T) {
	b := startBroker(t, Config{TCPAddr: local})
	connectRaw(t, b.Addr(ListenerTCP), mqtttest.Connect{Version: 5, ClientID: "shutdown-expired"}.Bytes())
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := b.Shutdown(ctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown = %v, want nil or context.Canceled", err)
	}
	if err := b.Close(); err != nil { // waits for the background close
		t.Fatalf("Close after Shutdown: %v", err)
	}
}

// TestShutdownStopsAcceptingBeforeDisconnecting: by the time a connected
// client reads its DISCONNECT, a new connection is refused, so no client
// can slip in while Mochi disconnects the others and be cut without one.
func TestShutdownStopsAcceptingBeforeDisconnecting(t *testing.T) {
	b := startBroker(t, Config{TCPAddr: local})
	_, r := connectRaw(t, b.Addr(ListenerTCP), mqtttest.Connect{Version: 5, ClientID: "stop-accepting"}.Bytes())
	done := make(chan error, 1)
	go func() { done <- b.Shutdown(t.Context()) }()
	if typ, _, err := mqtttest.ReadPacket(r); err != nil || typ != 0xe0 {
		t.Fatalf("no DISCONNECT: %#x %v", typ, err)
	}
	if c, err := net.DialTimeout("tcp", b.Addr(ListenerTCP), time.Second); err == nil {
		_ = c.Close()
		t.Error("a new connection was accepted while clients were being disconnected")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
