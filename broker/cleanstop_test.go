package broker

import (
	"bufio"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// waitLogged waits until logs holds n lines containing s, or fails.
func waitLogged(t *testing.T, logs *syncBuffer, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(logs.String(), s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d lines with %q expected within 5 s; log:\n%s", n, s, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// keepalive60 sets a raw CONNECT's keepalive (from v5Connect or
// v311Connect) to 60 s, so Mochi does not warn about keepalive 0.
func keepalive60(connect []byte) []byte {
	connect[10], connect[11] = 0, 60
	return connect
}

// TestShutdownLogsNoWarningPerClient: the clients Shutdown disconnects
// (MQTT 5 and 3.1.1 over TCP, MQTT 3.1.1 over WebSocket) end with a read on
// a socket the server closed itself; that is logged at debug, not as one
// "use of closed network connection" warning per client.
func TestShutdownLogsNoWarningPerClient(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := startBroker(t, Config{TCPAddr: local, WSAddr: local, Logger: log})
	connectRaw(t, b.Addr(ListenerTCP), keepalive60(v5Connect("quiet-v5")))
	connectRaw(t, b.Addr(ListenerTCP), keepalive60(v311Connect("quiet-v3")))
	ws := dialWS(b.Addr(ListenerWS), nil)(t)
	t.Cleanup(func() { _ = ws.Close() })
	_ = ws.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := ws.Write(keepalive60(v311Connect("quiet-ws"))); err != nil {
		t.Fatal(err)
	}
	if typ, body, err := readPacket(t, bufio.NewReader(ws)); err != nil || typ != 0x20 || body[1] != 0 {
		t.Fatalf("ws CONNACK: %#x %x %v", typ, body, err)
	}

	if err := b.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The lines are written by the connection goroutines, after Close.
	waitLogged(t, &logs, "level=DEBUG msg=\"mqtt connection ended\"", 2)
	waitLogged(t, &logs, "level=DEBUG msg=\"websocket connection ended\"", 1)
	if strings.Contains(logs.String(), "level=WARN") || strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("shutdown logged warnings:\n%s", logs.String())
	}
}

// TestClientGoneWithoutDisconnectIsStillAWarning: an error the server did
// not cause itself, here a client closing its socket without DISCONNECT,
// is still a warning, now with a message and the client's address.
func TestClientGoneWithoutDisconnectIsStillAWarning(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := startBroker(t, Config{TCPAddr: local, Logger: log})
	c, _ := connectRaw(t, b.Addr(ListenerTCP), keepalive60(v5Connect("gone")))
	remote := c.LocalAddr().String()
	_ = c.Close()
	waitLogged(t, &logs, "level=WARN msg=\"mqtt connection ended\" listener=tcp remote="+remote+" error=EOF", 1)
}
