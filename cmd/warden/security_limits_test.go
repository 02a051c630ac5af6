package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/warden-mqtt/warden/internal/mqtttest"
)

// TestBinaryEnforcesConnectionLimitsKeepaliveAndOrigins runs the binary
// with --mqtt-max-connections 3, --mqtt-max-keepalive 60s,
// --mqtt-max-packet-size 2048 and --ws-allowed-origins, and checks each as
// a client sees it: a browser page from another site gets 403 on the
// WebSocket upgrade, the listed one gets through; an MQTT 5 client asking
// for no keepalive is told 60 s and the packet limit in CONNACK; an MQTT
// 3.1.1 client asking for none is refused with return code 2; a fourth
// socket is closed at once while three are open.
func TestBinaryEnforcesConnectionLimitsKeepaliveAndOrigins(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the binary")
	}
	bin := buildWarden(t)
	pw := validPassword(t)
	p := startWarden(t, bin, "WARDEN_DATA_DIR="+filepath.Join(t.TempDir(), "data"), "WARDEN_ADMIN_PASSWORD="+pw,
		"WARDEN_WS_ADDR=127.0.0.1:0", "WARDEN_WS_ALLOWED_ORIGINS=https://ui.example.com",
		"WARDEN_MQTT_MAX_CONNECTIONS=3", "WARDEN_MQTT_MAX_KEEPALIVE=60s", "WARDEN_MQTT_MAX_PACKET_SIZE=2048")
	p.waitFor("warden ready")
	out := p.out.String()
	mqttAddr, wsAddr := loopback(listenAddr(t, out, "mqtt")), loopback(listenAddr(t, out, "ws"))

	for origin, want := range map[string]int{
		"https://evil.example":   http.StatusForbidden,
		"https://ui.example.com": http.StatusSwitchingProtocols,
	} {
		d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
		ws, resp, err := d.Dial("ws://"+wsAddr+"/mqtt", http.Header{"Origin": {origin}})
		if resp == nil {
			t.Fatalf("Origin %s: no HTTP answer: %v", origin, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Origin %s: %d, want %d", origin, resp.StatusCode, want)
		}
		if ws != nil {
			_ = ws.Close()
		}
	}

	held, ca := dial5(t, mqttAddr, connect5{id: "ka0", user: "admin", password: pw})
	if ca.ReasonCode != 0 {
		t.Fatalf("CONNACK %#x", ca.ReasonCode)
	}
	if ca.Properties == nil || ca.Properties.ServerKeepAlive == nil || *ca.Properties.ServerKeepAlive != 60 {
		t.Errorf("MQTT 5 keepalive 0: CONNACK properties %+v, want Server Keep Alive 60", ca.Properties)
	}
	if ca.Properties == nil || ca.Properties.MaximumPacketSize == nil || *ca.Properties.MaximumPacketSize != 2048 {
		t.Errorf("CONNACK properties %+v, want Maximum Packet Size 2048", ca.Properties)
	}
	defer held.Close()

	v3, err := net.DialTimeout("tcp", mqttAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = v3.SetDeadline(time.Now().Add(5 * time.Second))
	// MQTT 3.1.1 CONNECT, clean session, keepalive 0, client ID "v3".
	if _, err := v3.Write(mqtttest.Connect{Version: 4, ClientID: "v3"}.Bytes()); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(bufio.NewReader(v3), ack); err != nil || ack[0] != 0x20 || ack[3] != 2 {
		t.Errorf("MQTT 3.1.1 keepalive 0: CONNACK % x (%v), want return code 2", ack, err)
	}
	_ = v3.Close()

	// Two more silent sockets fill the three slots. The broker accepts them
	// in the background, so dial until a socket is closed at once (one that
	// was accepted in the meantime frees its slot when closed).
	for range 2 {
		c, err := net.DialTimeout("tcp", mqttAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	var refused bool
	for !refused && time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", mqttAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, err = c.Read(make([]byte, 1))
		var ne net.Error
		refused = err != nil && !(errors.As(err, &ne) && ne.Timeout())
		_ = c.Close()
	}
	if !refused {
		t.Fatal("a fourth socket was not closed while three were open")
	}
	p.waitFor("connection limit reached")
	m := regexp.MustCompile(`msg="mqtt limits" max_connections=(\d+)`).FindStringSubmatch(p.out.String())
	if m == nil || m[1] != "3" {
		t.Errorf("limits not logged with max_connections=3: %v", m)
	}
}
