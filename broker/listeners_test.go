package broker

import (
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

func (l *trackingListener) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

func waitTracked(t *testing.T, l *trackingListener, want int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for l.tracked() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections tracked, want %d", l.tracked(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTrackingListener: accepted connections get a deadline, are forgotten
// when closed, and Close closes the rest.
func TestTrackingListener(t *testing.T) {
	raw, err := net.Listen("tcp", local)
	if err != nil {
		t.Fatal(err)
	}
	l := newTrackingListener(raw, 200*time.Millisecond, newConnLimit(100, slog.Default()))
	defer l.Close()

	var clients, servers []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		clients, servers = append(clients, c), append(servers, s)
	}
	waitTracked(t, l, 3)

	// The connect deadline is set on accept.
	start := time.Now()
	if _, err := servers[0].Read(make([]byte, 1)); err == nil {
		t.Fatal("read on a silent connection succeeded")
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("read error %v, want a timeout", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("deadline hit after %v", took)
	}

	_ = servers[0].Close()
	_ = servers[0].Close() // twice is harmless
	waitTracked(t, l, 2)

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, c := range clients[1:] {
		waitClosed(t, c, time.Now(), 2*time.Second)
	}
	if _, err := l.Accept(); err == nil {
		t.Fatal("Accept after Close succeeded")
	}
	_ = servers[1].Close() // after Close: no panic on the cleared set
}

// TestWSListenerForgetsConnections: upgraded and plain HTTP connections
// leave the tracking set when they end, so long-running brokers do not
// accumulate them.
func TestWSListenerForgetsConnections(t *testing.T) {
	b := startBroker(t, Config{WSAddr: local})
	l, ok := b.Server().Listeners.Get(ListenerWS)
	if !ok {
		t.Fatal("no ws listener")
	}
	tl, ok := l.(*wsListener).ln.(*trackingListener)
	if !ok {
		t.Fatalf("plain ws listener is %T, want *trackingListener", l.(*wsListener).ln)
	}

	c := connectPaho(t, dialWS(b.Addr(ListenerWS), nil), "forget-ws", 30)
	roundTrip(t, c, c, "forget/ws")
	waitTracked(t, tl, 1)
	if err := c.Disconnect(&paho.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	waitTracked(t, tl, 0)

	// A plain HTTP request that is not an upgrade: answered 400, closed.
	raw := dialTCP(b.Addr(ListenerWS))(t)
	defer raw.Close()
	if _, err := raw.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 12)
	_ = raw.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := raw.Read(buf); err != nil || string(buf) != "HTTP/1.1 400" {
		t.Fatalf("non-upgrade request: %q, %v", buf, err)
	}
	waitTracked(t, tl, 0)
}
