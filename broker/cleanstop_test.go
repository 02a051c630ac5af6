package broker

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/internal/logbuf"
	"github.com/warden-mqtt/warden/internal/mqtttest"
)

// waitLogged waits until logs holds n lines containing s, or fails.
func waitLogged(t *testing.T, logs *logbuf.Buffer, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(logs.String(), s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d lines with %q expected within 5 s; log:\n%s", n, s, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestShutdownLogsNoWarningPerClient: the clients Shutdown disconnects
// (MQTT 5 and 3.1.1 over TCP, MQTT 3.1.1 over WebSocket, and an MQTT 5
// client that closes its end as soon as it reads the DISCONNECT, as paho
// does) end with a read on a socket the server closed itself, or with EOF
// when the client was quicker; both are logged at debug, not as one
// warning per client.
func TestShutdownLogsNoWarningPerClient(t *testing.T) {
	var logs logbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := startBroker(t, Config{TCPAddr: local, WSAddr: local, Logger: log})
	connectRaw(t, b.Addr(ListenerTCP), mqtttest.Connect{Version: 5, ClientID: "quiet-v5", Keepalive: 60}.Bytes())
	connectRaw(t, b.Addr(ListenerTCP), mqtttest.Connect{Version: 4, ClientID: "quiet-v3", Keepalive: 60}.Bytes())
	quick, quickR := connectRaw(t, b.Addr(ListenerTCP), mqtttest.Connect{Version: 5, ClientID: "quick-v5", Keepalive: 60}.Bytes())
	go func() {
		_, _, _ = mqtttest.ReadPacket(quickR) // the DISCONNECT
		_ = quick.Close()
	}()
	ws := dialWS(b.Addr(ListenerWS), nil)(t)
	t.Cleanup(func() { _ = ws.Close() })
	_ = ws.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := ws.Write(mqtttest.Connect{Version: 4, ClientID: "quiet-ws", Keepalive: 60}.Bytes()); err != nil {
		t.Fatal(err)
	}
	if typ, body, err := mqtttest.ReadPacket(bufio.NewReader(ws)); err != nil || typ != 0x20 || body[1] != 0 {
		t.Fatalf("ws CONNACK: %#x %x %v", typ, body, err)
	}

	if err := b.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The lines are written by the connection goroutines, after Close.
	waitLogged(t, &logs, "level=DEBUG msg=\"mqtt connection ended\"", 3)
	waitLogged(t, &logs, "level=DEBUG msg=\"websocket connection ended\"", 1)
	if strings.Contains(logs.String(), "level=WARN") || strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("shutdown logged warnings:\n%s", logs.String())
	}
}

// TestClientGoneWithoutDisconnectIsStillAWarning: an error the server did
// not cause itself, here a client closing its socket without DISCONNECT,
// is still a warning, now with a message and the client's address.
func TestClientGoneWithoutDisconnectIsStillAWarning(t *testing.T) {
	var logs logbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := startBroker(t, Config{TCPAddr: local, Logger: log})
	c, _ := connectRaw(t, b.Addr(ListenerTCP), mqtttest.Connect{Version: 5, ClientID: "gone", Keepalive: 60}.Bytes())
	remote := c.LocalAddr().String()
	_ = c.Close()
	waitLogged(t, &logs, "level=WARN msg=\"mqtt connection ended\" listener=tcp remote="+remote+" error=EOF", 1)
}

// TestLogEnded: which errors that end a connection are warnings.
func TestLogEnded(t *testing.T) {
	closed := &net.OpError{Op: "read", Net: "tcp", Err: net.ErrClosed}
	for _, c := range []struct {
		name    string
		err     error
		closing bool
		want    string
	}{
		{"a clean end", nil, false, ""},
		{"a clean end while the broker stops", nil, true, "level=DEBUG"},
		{"a socket the server closed", closed, false, "level=DEBUG"},
		{"a socket the server closed, wrapped", fmt.Errorf("read connection: %w", closed), false, "level=DEBUG"},
		{"EOF while the broker stops", io.EOF, true, "level=DEBUG"},
		{"a reset while the broker stops", syscall.ECONNRESET, true, "level=DEBUG"},
		{"EOF otherwise", io.EOF, false, "level=WARN"},
		{"a refused CONNECT", errors.New("bad username or password"), false, "level=WARN"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logs logbuf.Buffer
			logEnded(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), "mqtt connection ended", "192.0.2.1:1", c.err, c.closing)
			if got := logs.String(); (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
				t.Errorf("logged %q, want a line with %q", got, c.want)
			}
		})
	}
}
