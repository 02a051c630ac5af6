package broker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/gorilla/websocket"

	"github.com/warden-mqtt/warden/internal/logbuf"
	"github.com/warden-mqtt/warden/internal/mqtttest"
)

// claim256MiB is the largest remaining length MQTT can encode (256 MiB - 1).
const claim256MiB = 268435455

// v5Connack dials addr, sends an MQTT 5 CONNECT (clean start, keepalive ka,
// the will payload if any) built by paho's encoder and returns the
// connection and the CONNACK it got.
func v5Connack(t *testing.T, addr, cid string, ka uint16, will []byte) (net.Conn, *packets.Connack) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	cp := packets.NewControlPacket(packets.CONNECT)
	cn := cp.Content.(*packets.Connect)
	cn.ProtocolName, cn.ProtocolVersion = "MQTT", 5
	cn.ClientID, cn.KeepAlive, cn.CleanStart = cid, ka, true
	if will != nil {
		cn.WillFlag, cn.WillTopic, cn.WillMessage = true, "will/"+cid, will
		cn.WillProperties = &packets.Properties{}
	}
	if _, err := cp.WriteTo(c); err != nil {
		t.Fatal(err)
	}
	got, err := packets.ReadPacket(c)
	if err != nil {
		t.Fatalf("no CONNACK: %v", err)
	}
	ca, ok := got.Content.(*packets.Connack)
	if !ok {
		t.Fatalf("got %T, want a CONNACK", got.Content)
	}
	_ = c.SetDeadline(time.Time{})
	return c, ca
}

// closedWithin reports how the server ended c: it reads until an error and
// fails the test if c is still open after limit. It returns what was read.
func closedWithin(t *testing.T, c net.Conn, limit time.Duration) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(limit))
	var got bytes.Buffer
	_, err := io.Copy(&got, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open %v after the oversized header (read %d bytes)", limit, got.Len())
	}
	return got.Bytes()
}

// TestOversizedPacketsAreRefusedOnTheFixedHeader: a fixed header claiming
// more than the limit closes the connection at once, before the broker
// waits for (or allocates) the body: a CONNECT over the pre-authentication
// limit (even when it is under the packet limit), any packet over the
// packet limit after CONNECT, and the same through a WebSocket frame that
// claims a terabyte. MQTT 5 clients learn the limit in CONNACK and get
// DISCONNECT 0x95; a packet of exactly the limit passes.
func TestOversizedPacketsAreRefusedOnTheFixedHeader(t *testing.T) {
	const maxPacket = 4096
	b := startBroker(t, Config{TCPAddr: local, WSAddr: local, MaxPacketSize: maxPacket, MaxConnectPacketSize: 1024})
	addr := b.Addr(ListenerTCP)
	const quick = 2 * time.Second // the connect timeout is 10 s

	t.Run("a CONNECT claiming 256 MiB is closed without waiting for its body", func(t *testing.T) {
		c := dialTCP(addr)(t)
		defer c.Close()
		if _, err := c.Write(append(mqtttest.Header(0x10, claim256MiB), 0, 4, 'M', 'Q')); err != nil {
			t.Fatal(err)
		}
		closedWithin(t, c, quick)
	})

	t.Run("a remaining length of more than four bytes is malformed and closes the connection", func(t *testing.T) {
		// 0x80 continuation bytes without end: the length never grows, so
		// no size limit stops it; MQTT allows four bytes at most.
		c := dialTCP(addr)(t)
		defer c.Close()
		if _, err := c.Write([]byte{0x10, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80}); err != nil {
			t.Fatal(err)
		}
		closedWithin(t, c, quick)
	})

	t.Run("a CONNECT over the pre-authentication limit is closed although under the packet limit", func(t *testing.T) {
		c := dialTCP(addr)(t)
		defer c.Close()
		if _, err := c.Write(mqtttest.Header(0x10, 2000)); err != nil {
			t.Fatal(err)
		}
		closedWithin(t, c, quick)
	})

	t.Run("a CONNECT within the pre-authentication limit is accepted and CONNACK gives the packet limit", func(t *testing.T) {
		_, ca := v5Connack(t, addr, "big-will", 30, bytes.Repeat([]byte{'w'}, 900))
		if ca.ReasonCode != 0 {
			t.Fatalf("CONNACK reason %#x", ca.ReasonCode)
		}
		if ca.Properties == nil || ca.Properties.MaximumPacketSize == nil || *ca.Properties.MaximumPacketSize != maxPacket {
			t.Fatalf("CONNACK Maximum Packet Size %v, want %d", ca.Properties, maxPacket)
		}
	})

	t.Run("MQTT 5: a PUBLISH claiming 256 MiB gets DISCONNECT 0x95 and the connection closes", func(t *testing.T) {
		c, _ := v5Connack(t, addr, "v5-too-large", 30, nil)
		if _, err := c.Write(append(mqtttest.Header(0x30, claim256MiB), 0, 1, 'a')); err != nil {
			t.Fatal(err)
		}
		got := closedWithin(t, c, quick)
		pk, err := packets.ReadPacket(bytes.NewReader(got))
		if err != nil {
			t.Fatalf("no DISCONNECT before the close (got % x): %v", got, err)
		}
		d, ok := pk.Content.(*packets.Disconnect)
		if !ok || d.ReasonCode != 0x95 {
			t.Fatalf("got %v, want DISCONNECT 0x95", pk)
		}
	})

	t.Run("MQTT 5: a PUBLISH of exactly the limit passes, one byte more does not", func(t *testing.T) {
		c, _ := v5Connack(t, addr, "v5-at-limit", 30, nil)
		publish := func(size int) {
			t.Helper()
			// QoS 1 PUBLISH: topic "a", packet ID 1, no properties, payload.
			body := []byte{0, 1, 'a', 0, 1, 0}
			rem := size - 1 - 2 // a 2-byte remaining length for sizes here
			head := mqtttest.Header(0x32, rem)
			pk := append(append(head, body...), make([]byte, rem-len(body))...)
			if len(pk) != size {
				t.Fatalf("built %d bytes, want %d", len(pk), size)
			}
			if _, err := c.Write(pk); err != nil {
				t.Fatal(err)
			}
		}
		publish(maxPacket)
		_ = c.SetReadDeadline(time.Now().Add(quick))
		pk, err := packets.ReadPacket(c)
		if err != nil {
			t.Fatalf("no PUBACK for a packet of exactly %d bytes: %v", maxPacket, err)
		}
		if pa, ok := pk.Content.(*packets.Puback); !ok || pa.ReasonCode != 0 {
			t.Fatalf("got %v, want PUBACK 0", pk)
		}
		publish(maxPacket + 1)
		got := closedWithin(t, c, quick)
		if pk, err := packets.ReadPacket(bytes.NewReader(got)); err != nil || pk.Type != packets.DISCONNECT {
			t.Fatalf("after %d bytes: % x, %v; want DISCONNECT 0x95", maxPacket+1, got, err)
		}
	})

	t.Run("MQTT 3.1.1: an oversized SUBSCRIBE closes the connection", func(t *testing.T) {
		c := dialTCP(addr)(t)
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(mqtttest.Connect{Version: 4, ClientID: "v3-too-large", Keepalive: 30}.Bytes()); err != nil {
			t.Fatal(err)
		}
		if typ, body, err := mqtttest.ReadPacket(bufio.NewReader(c)); err != nil || typ != 0x20 || body[1] != 0 {
			t.Fatalf("CONNACK %#x % x %v", typ, body, err)
		}
		if _, err := c.Write(mqtttest.Header(0x82, maxPacket)); err != nil {
			t.Fatal(err)
		}
		if got := closedWithin(t, c, quick); len(got) != 0 {
			t.Errorf("MQTT 3.1.1 client got % x before the close, want nothing", got)
		}
	})

	t.Run("WebSocket: a frame claiming a terabyte carrying a CONNECT claiming 256 MiB is closed", func(t *testing.T) {
		c := dialTCP(b.Addr(ListenerWS))(t)
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		req := "GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
		if _, err := c.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade: %v %v", resp, err)
		}
		// A masked binary frame with a 64-bit length of 2^40, then the
		// first bytes of its payload (masked with a zero key).
		frame := []byte{0x82, 0x80 | 127}
		frame = binary.BigEndian.AppendUint64(frame, 1<<40)
		frame = append(frame, 0, 0, 0, 0)
		frame = append(frame, mqtttest.Header(0x10, claim256MiB)...)
		if _, err := c.Write(frame); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(quick))
		_, err = io.Copy(io.Discard, br)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("WebSocket connection still open after the oversized CONNECT header")
		}
	})
}

// TestConnectionLimit: sockets count from accept, across listeners, before
// any CONNECT; one beyond the limit is closed at once, a slot freed by a
// close is usable again, and the refusals are logged once per interval.
func TestConnectionLimit(t *testing.T) {
	var logs logbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	b := startBroker(t, Config{TCPAddr: local, WSAddr: local, MaxConnections: 3, Logger: log})

	// Three silent sockets, on both listeners: they hold every slot.
	var held []net.Conn
	for _, id := range []string{ListenerTCP, ListenerWS, ListenerTCP} {
		c := dialTCP(b.Addr(id))(t)
		defer c.Close()
		held = append(held, c)
	}
	// The listener accepts asynchronously: wait until the three are counted.
	deadline := time.Now().Add(5 * time.Second)
	for b.conns.open.Load() != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d sockets counted, want 3", b.conns.open.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}

	for _, id := range []string{ListenerTCP, ListenerWS, ListenerTCP} {
		c := dialTCP(b.Addr(id))(t)
		_, _ = c.Write(mqtttest.Connect{Version: 5, ClientID: "over-" + id}.Bytes())
		closedWithin(t, c, 2*time.Second) // the connect timeout is 10 s
		_ = c.Close()
	}
	if n := strings.Count(logs.String(), "connection limit reached"); n != 1 {
		t.Errorf("logged the limit %d times for 3 refusals in a row, want once:\n%s", n, logs.String())
	}

	_ = held[0].Close()
	deadline = time.Now().Add(5 * time.Second)
	for b.conns.open.Load() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d sockets counted after a close, want 2", b.conns.open.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, ca := v5Connack(t, b.Addr(ListenerTCP), "after-free", 30, nil); ca.ReasonCode != 0 {
		t.Fatalf("CONNACK reason %#x after a slot was freed", ca.ReasonCode)
	}
	if got := b.server.Options.Capabilities.MaximumClients; got != 3 {
		t.Errorf("Mochi's MaximumClients = %d, want 3", got)
	}
}

// TestKeepaliveCeiling follows Mosquitto's max_keepalive: MQTT 5 clients
// asking for 0 or more than the ceiling are given the ceiling as Server
// Keep Alive, MQTT 3.1.1 clients are refused with return code 2, and the
// ceiling is enforced on a silent connection.
func TestKeepaliveCeiling(t *testing.T) {
	b := startBroker(t, Config{TCPAddr: local, MaxKeepalive: 60 * time.Second})
	addr := b.Addr(ListenerTCP)

	for _, tc := range []struct {
		ka   uint16
		want uint16 // 0: no Server Keep Alive
	}{{0, 60}, {61, 60}, {65535, 60}, {60, 0}, {30, 0}} {
		_, ca := v5Connack(t, addr, "v5-ka", tc.ka, nil)
		if ca.ReasonCode != 0 {
			t.Fatalf("MQTT 5 keepalive %d: CONNACK %#x", tc.ka, ca.ReasonCode)
		}
		var got uint16
		if ca.Properties != nil && ca.Properties.ServerKeepAlive != nil {
			got = *ca.Properties.ServerKeepAlive
		}
		if got != tc.want {
			t.Errorf("MQTT 5 keepalive %d: Server Keep Alive %d, want %d", tc.ka, got, tc.want)
		}
	}

	for _, tc := range []struct {
		ka   uint16
		want byte
	}{{0, 2}, {61, 2}, {60, 0}, {30, 0}} {
		c := dialTCP(addr)(t)
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(mqtttest.Connect{Version: 4, ClientID: "v3-ka", Keepalive: tc.ka}.Bytes()); err != nil {
			t.Fatal(err)
		}
		typ, body, err := mqtttest.ReadPacket(bufio.NewReader(c))
		if err != nil || typ != 0x20 || len(body) != 2 {
			t.Fatalf("MQTT 3.1.1 keepalive %d: %#x % x %v", tc.ka, typ, body, err)
		}
		if body[1] != tc.want {
			t.Errorf("MQTT 3.1.1 keepalive %d: return code %d, want %d", tc.ka, body[1], tc.want)
		}
		_ = c.Close()
	}

	// Mochi's deadline is keepalive + keepalive/2 whole seconds: 1 s here.
	t.Run("a silent MQTT 5 client that asked for no keepalive is dropped on the ceiling's deadline", func(t *testing.T) {
		b := startBroker(t, Config{TCPAddr: local, MaxKeepalive: time.Second})
		c, ca := v5Connack(t, b.Addr(ListenerTCP), "silent", 0, nil)
		if ca.Properties == nil || ca.Properties.ServerKeepAlive == nil || *ca.Properties.ServerKeepAlive != 1 {
			t.Fatalf("CONNACK properties %+v, want Server Keep Alive 1", ca.Properties)
		}
		start := time.Now()
		closedWithin(t, c, 5*time.Second)
		if took := time.Since(start); took < time.Second {
			t.Errorf("dropped after %v, before the keepalive deadline", took)
		}
	})
}

// TestWebSocketOrigin: a browser (Origin header) from a listed origin may
// upgrade, from any other origin it gets 403 before the upgrade; a client
// without Origin (a device) always may. With no list, every browser is
// refused.
func TestWebSocketOrigin(t *testing.T) {
	b := startBroker(t, Config{WSAddr: local, WSAllowedOrigins: []string{"https://ui.example.com", "http://LOCALHOST:3000/"}})
	none := startBroker(t, Config{WSAddr: local})

	dial := func(addr, origin string) (*websocket.Conn, int, error) {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
		ws, resp, err := d.Dial("ws://"+addr+"/mqtt", h)
		status := 0
		if resp != nil {
			status = resp.StatusCode
			_ = resp.Body.Close()
		}
		return ws, status, err
	}
	for _, tc := range []struct {
		name, addr, origin string
		want               int
	}{
		{"a listed origin", b.Addr(ListenerWS), "https://ui.example.com", http.StatusSwitchingProtocols},
		{"a listed origin written differently", b.Addr(ListenerWS), "http://localhost:3000", http.StatusSwitchingProtocols},
		{"no Origin header (not a browser)", b.Addr(ListenerWS), "", http.StatusSwitchingProtocols},
		{"another site", b.Addr(ListenerWS), "https://evil.example", http.StatusForbidden},
		{"a listed host with another scheme", b.Addr(ListenerWS), "http://ui.example.com", http.StatusForbidden},
		{"a listed host with another port", b.Addr(ListenerWS), "https://ui.example.com:8443", http.StatusForbidden},
		{"the literal null origin", b.Addr(ListenerWS), "null", http.StatusForbidden},
		{"any browser when no origin is listed", none.Addr(ListenerWS), "https://ui.example.com", http.StatusForbidden},
		{"no Origin when no origin is listed", none.Addr(ListenerWS), "", http.StatusSwitchingProtocols},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws, status, err := dial(tc.addr, tc.origin)
			if status != tc.want {
				t.Fatalf("status %d (%v), want %d", status, err, tc.want)
			}
			if ws == nil {
				return
			}
			defer ws.Close()
			c := &clientWSConn{Conn: ws}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write(mqtttest.Connect{Version: 5, ClientID: "origin"}.Bytes()); err != nil {
				t.Fatal(err)
			}
			if typ, _ := mqtttest.MustReadPacket(t, c); typ != 0x20 {
				t.Fatalf("got packet type %#x, want CONNACK", typ)
			}
		})
	}
}

// TestPubackCarriesNoUserProperties: Mochi echoes a publish's user
// properties in its PUBACK unless NoInheritedPropertiesOnAck is set (and
// then writes an invalid reason code 0x01 with them); the broker sets it,
// so an MQTT 5 QoS 1 publish with user properties gets a bare PUBACK.
func TestPubackCarriesNoUserProperties(t *testing.T) {
	b := startBroker(t, Config{TCPAddr: local})
	c := connectPaho(t, dialTCP(b.Addr(ListenerTCP)), "user-props", 30)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	pr, err := c.Publish(ctx, &paho.Publish{Topic: "props/a", QoS: 1, Payload: []byte("x"),
		Properties: &paho.PublishProperties{User: paho.UserProperties{{Key: "trace-id", Value: "abc123"}, {Key: "origin", Value: "line-4"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if pr.Properties != nil && len(pr.Properties.User) > 0 {
		t.Errorf("PUBACK carries the publish's user properties %v", pr.Properties.User)
	}
	// With the properties Mochi also writes its internal "granted QoS 1"
	// (0x01), not a PUBACK reason code, which strict clients reject.
	if pr.ReasonCode != 0 {
		t.Errorf("PUBACK reason %#x, want 0 (success)", pr.ReasonCode)
	}
}

// TestNewRefusesBadLimits: limits out of MQTT's range are configuration
// errors, not silently clamped.
func TestNewRefusesBadLimits(t *testing.T) {
	for name, cfg := range map[string]Config{
		"a negative packet size":            {MaxPacketSize: -1},
		"a packet size MQTT cannot express": {MaxPacketSize: MaxPacketSizeLimit + 1},
		"a negative connect packet size":    {MaxConnectPacketSize: -1},
		"negative connections":              {MaxConnections: -1},
		"a keepalive over 65535 s":          {MaxKeepalive: 65536 * time.Second},
		"a keepalive in milliseconds":       {MaxKeepalive: 1500 * time.Millisecond},
		"an origin with a path":             {WSAllowedOrigins: []string{"https://ui.example.com/app"}},
		"an origin without a scheme":        {WSAllowedOrigins: []string{"ui.example.com"}},
		"a negative session expiry":         {MaxSessionExpiry: -time.Second},
		"a session expiry under a second":   {MaxSessionExpiry: 500 * time.Millisecond},
		"a session expiry past 2^32-1 s":    {MaxSessionExpiry: (1 << 32) * time.Second},
		"negative queued messages":          {MaxQueuedMessages: -1},
		"more queued messages than IDs":     {MaxQueuedMessages: 65536},
		"negative topic levels":             {MaxTopicLevels: -1},
		"a negative topic length":           {MaxTopicLength: -1},
		"a topic longer than MQTT allows":   {MaxTopicLength: 65536},
	} {
		t.Run(name, func(t *testing.T) {
			cfg.TCPAddr = local
			if b, err := New(cfg, &allowHook{}); err == nil {
				_ = b.Close()
				t.Fatalf("New accepted %+v", cfg)
			}
		})
	}
}

// TestDefaultMaxConnectionsFollowsTheOpenFileLimit: 90% of this process's
// soft open-file limit, as /proc reports it.
func TestDefaultMaxConnectionsFollowsTheOpenFileLimit(t *testing.T) {
	b, err := os.ReadFile("/proc/self/limits")
	if err != nil {
		t.Fatalf("read /proc/self/limits: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "Max open files")
		if !ok {
			continue
		}
		want := math.MaxInt32 // "unlimited"
		if f := strings.Fields(rest)[0]; f != "unlimited" {
			soft, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("soft limit %q", rest)
			}
			want = soft * 9 / 10
		}
		if got := DefaultMaxConnections(); got != want {
			t.Fatalf("DefaultMaxConnections() = %d, want 90%% of the soft limit in %q = %d", got, rest, want)
		}
		return
	}
	t.Fatal("no open-file limit in /proc/self/limits")
}
