package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/gorilla/websocket"

	"github.com/warden-mqtt/warden/internal/mqtttest"
)

// TestCleanStopLogsNoWarnings stops the binary with SIGTERM while clients
// are connected on every MQTT listener (raw MQTT 3.1.1 and 5 and paho over
// TCP, paho over TLS, raw MQTT 3.1.1 and 5 over WebSocket, and a socket
// that has not sent CONNECT yet): the server disconnects them itself, which
// is no warning, so nothing in the output is at WARN or ERROR.
func TestCleanStopLogsNoWarnings(t *testing.T) {
	t.Parallel()
	bin := buildWarden(t)
	pw := validPassword(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	p := startWarden(t, bin, "WARDEN_DATA_DIR="+dataDir, "WARDEN_ADMIN_PASSWORD="+pw, "WARDEN_AUDIT_LOG=off",
		"WARDEN_MQTTS_ADDR=127.0.0.1:0", "WARDEN_WS_ADDR=127.0.0.1:0")
	p.waitFor("warden ready")
	out := p.out.String()
	tcpAddr, tlsAddr, wsAddr := listenAddr(t, out, "mqtt"), listenAddr(t, out, "mqtts"), listenAddr(t, out, "ws")

	_, r3 := mqttConnect(t, tcpAddr, 4, "stop-raw-v3", adminUsername, pw)
	_, r5 := mqttConnect(t, tcpAddr, 5, "stop-raw-v5", adminUsername, pw)
	pahoTCP := pahoConnect(t, dialPlain(t, tcpAddr), "stop-paho-tcp", pw)
	pahoTLS := pahoConnect(t, dialCA(t, tlsAddr, filepath.Join(dataDir, caCertFile)), "stop-paho-tls", pw)
	ws3 := wsMQTTConnect(t, wsAddr, 4, "stop-ws-v3", pw)
	ws5 := wsMQTTConnect(t, wsAddr, 5, "stop-ws-v5", pw)
	silent := dialPlain(t, tcpAddr) // no CONNECT: closed by the server at shutdown

	p.signal(syscall.SIGTERM)
	if code := p.exitCode(); code != exitOK {
		t.Fatalf("exit code %d, want 0:\n%s", code, p.out)
	}

	// Every client was cut by the server.
	for name, r := range map[string]*bufio.Reader{"raw v3": r3, "raw v5": r5} {
		if err := readUntilClosed(r); err != nil {
			t.Errorf("%s client: %v", name, err)
		}
	}
	for name, c := range map[string]*paho.Client{"paho tcp": pahoTCP, "paho tls": pahoTLS} {
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Errorf("%s client still connected after warden exited", name)
		}
	}
	for name, ws := range map[string]*websocket.Conn{"ws v3": ws3, "ws v5": ws5} {
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Errorf("%s client still connected after warden exited", name)
				}
				break
			}
		}
	}
	_ = silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); err == nil {
		t.Error("the socket without CONNECT got data")
	}

	for _, line := range strings.Split(strings.TrimSpace(p.out.String()), "\n") {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			t.Errorf("clean stop logged: %s", line)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", p.out)
	}
}

// readUntilClosed reads packets until the connection ends; an error is
// returned only when it is still open after 5 s.
func readUntilClosed(r *bufio.Reader) error {
	for {
		if _, _, err := mqtttest.ReadPacket(r); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return err
			}
			return nil
		}
	}
}

func dialPlain(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// dialCA dials addr over TLS, trusting the CA certificate in caFile.
func dialCA(t *testing.T, addr, caFile string) net.Conn {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: caPool(t, caFile), ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// pahoConnect connects an MQTT 5 paho client as the admin over conn.
func pahoConnect(t *testing.T, conn net.Conn, clientID, password string) *paho.Client {
	t.Helper()
	return pahoConnectAs(t, conn, clientID, adminUsername, password)
}

// pahoConnectAs is pahoConnect as another user.
func pahoConnectAs(t *testing.T, conn net.Conn, clientID, username, password string) *paho.Client {
	t.Helper()
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: clientID, CleanStart: true, KeepAlive: 30,
		Username: username, UsernameFlag: true, Password: []byte(password), PasswordFlag: true})
	if err != nil || ca.ReasonCode != 0 {
		t.Fatalf("paho connect %s: %v %+v", clientID, err, ca)
	}
	return c
}

// wsMQTTConnect connects a raw MQTT client (version 4 = 3.1.1, 5) as the
// admin over WebSocket and fails unless the CONNACK accepts.
func wsMQTTConnect(t *testing.T, addr string, version byte, clientID, password string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
	ws, _, err := d.Dial("ws://"+addr+"/mqtt", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	connect := mqtttest.Connect{Version: version, ClientID: clientID, Username: adminUsername, Password: password, Keepalive: 60}
	if err := ws.WriteMessage(websocket.BinaryMessage, connect.Bytes()); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, msg, err := ws.ReadMessage()
	if err != nil || len(msg) < 4 || msg[0] != 0x20 || msg[3] != 0 {
		t.Fatalf("ws v%d CONNACK: %x %v", version, msg, err)
	}
	return ws
}
