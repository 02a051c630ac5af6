package main

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/gorilla/websocket"
	mpackets "github.com/mochi-mqtt/server/v2/packets"

	"github.com/warden-mqtt/warden/internal/mqtttest"
)

// connect5 is an MQTT 5 CONNECT for the raw clients of these tests.
type connect5 struct {
	id, user, password string
	keepalive          uint16
	willTopic          string
	willPayload        string
}

func (c connect5) packet() *packets.ControlPacket {
	cp := packets.NewControlPacket(packets.CONNECT)
	cn := cp.Content.(*packets.Connect)
	cn.ProtocolName, cn.ProtocolVersion = "MQTT", 5
	cn.ClientID, cn.KeepAlive, cn.CleanStart = c.id, c.keepalive, true
	if c.user != "" {
		cn.UsernameFlag, cn.Username = true, c.user
	}
	if c.password != "" {
		cn.PasswordFlag, cn.Password = true, []byte(c.password)
	}
	if c.willTopic != "" {
		cn.WillFlag, cn.WillQOS, cn.WillTopic, cn.WillMessage = true, 1, c.willTopic, []byte(c.willPayload)
		cn.WillProperties = &packets.Properties{}
	}
	return cp
}

// dial5 connects to addr with c and returns the connection and the CONNACK.
func dial5(t *testing.T, addr string, c connect5) (net.Conn, *packets.Connack) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.packet().WriteTo(conn); err != nil {
		t.Fatal(err)
	}
	pk, err := packets.ReadPacket(conn)
	if err != nil {
		t.Fatalf("%s: no CONNACK: %v", c.id, err)
	}
	ca, ok := pk.Content.(*packets.Connack)
	if !ok {
		t.Fatalf("%s: got %v, want CONNACK", c.id, pk)
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, ca
}

// loopback turns a logged listen address into one to dial.
func loopback(addr string) string {
	return strings.Replace(strings.Replace(addr, "[::]", "127.0.0.1", 1), "0.0.0.0", "127.0.0.1", 1)
}

// TestOversizedPacketsDoNotExhaustMemory is issue 14's attack 1 against the
// real binary: eight TCP sockets each send a fixed header claiming 256 MiB
// (four as their CONNECT, four as a PUBLISH after an accepted CONNECT), two
// WebSocket sockets do the same inside one binary message, and every
// socket then pushes 32 MiB of body and keeps trickling. The broker must
// close every one of them and its resident memory must grow by less than
// 50 MiB. Run with WARDEN_TEST_BIN=/work/before/warden for the figure
// before the fix.
func TestOversizedPacketsDoNotExhaustMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	const (
		claim    = 268435455 // 256 MiB - 1, the largest MQTT length
		burst    = 32 << 20  // body pushed at once by each socket
		maxGrow  = 50.0      // MiB
		sampling = 2 * time.Second
	)
	bin := buildWarden(t)
	pw := validPassword(t)
	p := startWarden(t, bin, "WARDEN_DATA_DIR="+filepath.Join(t.TempDir(), "data"), "WARDEN_ADMIN_PASSWORD="+pw,
		"WARDEN_WS_ADDR=127.0.0.1:0")
	p.waitFor("warden ready")
	out := p.out.String()
	mqttAddr, wsAddr := loopback(listenAddr(t, out, "mqtt")), loopback(listenAddr(t, out, "ws"))

	type attacker struct {
		name   string
		conn   io.ReadWriteCloser
		header []byte
		closed atomic.Bool
	}
	var attackers []*attacker
	// Four authenticated clients first: their password check (argon2id)
	// must not count as growth.
	for i := range 4 {
		c, ca := dial5(t, mqttAddr, connect5{id: fmt.Sprintf("big-publish-%d", i), user: "admin", password: pw, keepalive: 60})
		if ca.ReasonCode != 0 {
			t.Fatalf("CONNACK %#x for the admin", ca.ReasonCode)
		}
		// PUBLISH QoS 0 on topic "a", then the start of a 256 MiB body.
		attackers = append(attackers, &attacker{name: fmt.Sprintf("PUBLISH after CONNECT %d", i), conn: c,
			header: append(mqtttest.Header(0x30, claim), 0, 1, 'a')})
	}
	for i := range 4 {
		c, err := net.DialTimeout("tcp", mqttAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		attackers = append(attackers, &attacker{name: fmt.Sprintf("CONNECT %d", i), conn: c,
			header: append(mqtttest.Header(0x10, claim), 0, 4, 'M', 'Q', 'T', 'T', 5)})
	}
	for i := range 2 {
		d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
		ws, resp, err := d.Dial("ws://"+wsAddr+"/mqtt", nil)
		if err != nil {
			t.Fatalf("websocket: %v", err)
		}
		_ = resp.Body.Close()
		defer ws.Close()
		attackers = append(attackers, &attacker{name: fmt.Sprintf("WebSocket CONNECT %d", i), conn: &wsStream{ws: ws},
			header: append(mqtttest.Header(0x10, claim), 0, 4, 'M', 'Q', 'T', 'T', 5)})
	}

	time.Sleep(300 * time.Millisecond) // let the connects settle
	before := rssMiB(t, p.pid())
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, a := range attackers {
		wg.Add(2)
		go func() { // reader: notices the close
			defer wg.Done()
			_, _ = io.Copy(io.Discard, a.conn)
			a.closed.Store(true)
		}()
		go func() { // writer: header, burst, then a byte every 100 ms
			defer wg.Done()
			if _, err := a.conn.Write(a.header); err != nil {
				return
			}
			chunk := make([]byte, 64<<10)
			for sent := 0; sent < burst; sent += len(chunk) {
				if _, err := a.conn.Write(chunk); err != nil {
					return
				}
			}
			for {
				select {
				case <-done:
					return
				case <-time.After(100 * time.Millisecond):
					if _, err := a.conn.Write([]byte{0}); err != nil {
						return
					}
				}
			}
		}()
	}
	peak := before
	for end := time.Now().Add(sampling); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		peak = max(peak, rssMiB(t, p.pid()))
	}
	var open []string
	for _, a := range attackers {
		if !a.closed.Load() {
			open = append(open, a.name)
		}
	}
	close(done)
	for _, a := range attackers {
		_ = a.conn.Close()
	}
	wg.Wait()

	t.Logf("warden RSS before the attack %.1f MiB, peak during it %.1f MiB (+%.1f MiB); %d of %d sockets closed by the broker",
		before, peak, peak-before, len(attackers)-len(open), len(attackers))
	if peak-before >= maxGrow {
		t.Errorf("RSS grew by %.1f MiB, want under %.0f MiB", peak-before, maxGrow)
	}
	if len(open) > 0 {
		t.Errorf("still open %v after the oversized header: %q", sampling, open)
	}
}

// wsStream is a WebSocket client connection as a byte stream: each Write
// is one binary message.
type wsStream struct {
	ws *websocket.Conn
	r  io.Reader
	mu sync.Mutex
}

func (s *wsStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (s *wsStream) Read(p []byte) (int, error) {
	for {
		if s.r == nil {
			_, r, err := s.ws.NextReader()
			if err != nil {
				return 0, err
			}
			s.r = r
		}
		n, err := s.r.Read(p)
		if err == io.EOF {
			s.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (s *wsStream) Close() error { return s.ws.Close() }

// secretForms are the ways a secret could show in a text log: as text, as
// Go prints a []byte inside a struct (%v: decimal bytes), in base64 (JSON)
// and in hex.
func secretForms(s string) []string {
	dec := strings.Trim(fmt.Sprint([]byte(s)), "[]")
	return []string{s, dec, base64.StdEncoding.EncodeToString([]byte(s)), hex.EncodeToString([]byte(s))}
}

// TestLogsNeverHoldPasswordsOrPayloads runs the binary at debug level and
// makes Mochi log packets the way it does on errors: a second CONNECT with
// a password and a will on a live connection (a protocol violation Mochi
// logs with the packet under "pk"), a publish to a wildcard topic (also
// logged under "pk"), a publish the user may not make, a wrong password.
// No password, will or payload may appear in the output, in any encoding.
func TestLogsNeverHoldPasswordsOrPayloads(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the binary")
	}
	bin := buildWarden(t)
	pw := validPassword(t)
	p := startWarden(t, bin, "WARDEN_DATA_DIR="+filepath.Join(t.TempDir(), "data"), "WARDEN_ADMIN_PASSWORD="+pw,
		"WARDEN_LOG_LEVEL=debug")
	p.waitFor("warden ready")
	out := p.out.String()
	mqttAddr, httpAddr := loopback(listenAddr(t, out, "mqtt")), loopback(listenAddr(t, out, "http"))

	// A device that may publish only under dev/allowed.
	var login struct{ Token string }
	apiCall(t, httpAddr, "POST", "/api/login", "", map[string]string{"username": "admin", "password": pw}, &login, 200)
	var role struct{ ID string }
	apiCall(t, httpAddr, "POST", "/api/roles", login.Token, map[string]any{"name": "log-test", "isShared": true,
		"permissions": []map[string]string{{"resource": "dev/allowed", "operation": "write", "context": "mqtt"}}}, &role, 201)
	devPW := validPassword(t)
	apiCall(t, httpAddr, "POST", "/api/users", login.Token, map[string]any{"username": "log-device", "password": devPW,
		"roles": []string{role.ID}}, nil, 201)

	secrets := map[string]string{
		"admin password":           pw,
		"device password":          devPW,
		"second CONNECT password":  "Second-Connect-Pw-7f3a9e",
		"will payload":             "Will-Payload-Secret-91c2d4",
		"wildcard publish payload": "Wildcard-Payload-Secret-5d0e77",
		"denied publish payload":   "Denied-Payload-Secret-c4b8a1",
		"allowed publish payload":  "Allowed-Payload-Secret-0b9f13",
		"wrong password":           "Wrong-Password-Secret-e2a6f0",
	}

	// 1. A live connection with a will sends a second CONNECT with a
	// password: DISCONNECT, the will is published, Mochi logs the packet.
	c, ca := dial5(t, mqttAddr, connect5{id: "twice", user: "admin", password: pw, keepalive: 60,
		willTopic: "dev/will", willPayload: secrets["will payload"]})
	if ca.ReasonCode != 0 {
		t.Fatalf("CONNACK %#x", ca.ReasonCode)
	}
	if _, err := (connect5{id: "twice", user: "admin", password: secrets["second CONNECT password"], keepalive: 60}).packet().WriteTo(c); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.Copy(io.Discard, c)

	// 2. The device publishes to a wildcard topic (malformed: Mochi logs the
	// packet), outside its permission (PUBACK 0x87) and inside it.
	d, ca := dial5(t, mqttAddr, connect5{id: "log-device", user: "log-device", password: devPW, keepalive: 60})
	if ca.ReasonCode != 0 {
		t.Fatalf("device CONNACK %#x", ca.ReasonCode)
	}
	publish := func(conn net.Conn, topic, payload string, id uint16) {
		t.Helper()
		cp := packets.NewControlPacket(packets.PUBLISH)
		pb := cp.Content.(*packets.Publish)
		pb.Topic, pb.Payload, pb.QoS, pb.PacketID = topic, []byte(payload), 1, id
		pb.Properties = &packets.Properties{}
		if _, err := cp.WriteTo(conn); err != nil {
			t.Fatal(err)
		}
	}
	publish(d, "dev/allowed", secrets["allowed publish payload"], 1)
	publish(d, "dev/denied", secrets["denied publish payload"], 2)
	_ = d.SetReadDeadline(time.Now().Add(5 * time.Second))
	for _, want := range []byte{0, 0x87} {
		pk, err := packets.ReadPacket(d)
		if err != nil {
			t.Fatalf("PUBACK: %v", err)
		}
		if pa, ok := pk.Content.(*packets.Puback); !ok || pa.ReasonCode != want {
			t.Fatalf("got %v, want PUBACK %#x", pk, want)
		}
	}
	publish(d, "dev/+/x", secrets["wildcard publish payload"], 3)
	_, _ = io.Copy(io.Discard, d)

	// 3. A wrong password.
	if _, ca := dial5(t, mqttAddr, connect5{id: "wrong", user: "log-device", password: secrets["wrong password"]}); ca.ReasonCode == 0 {
		t.Fatal("a wrong password was accepted")
	}

	// Mochi has logged both malformed exchanges by now.
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(p.out.String(), "error processing packet") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("Mochi did not log the two protocol errors; output:\n%s", p.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	logs := p.out.String()
	for name, s := range secrets {
		for _, form := range secretForms(s) {
			if strings.Contains(logs, form) {
				t.Errorf("the %s is in the log (as %q)", name, form)
			}
		}
	}
	if !strings.Contains(logs, "[redacted]") {
		t.Errorf("no redacted attribute in the log; were the packets logged at all?\n%s", logs)
	}
	if t.Failed() {
		t.Logf("output:\n%s", logs)
	}
}

// TestRedactPacketsByTypeWhateverTheKey: the log filter redacts packets,
// wills and byte slices under any key, and keeps what is not secret
// (errors, including Mochi's reason codes, strings, numbers, addresses).
func TestRedactPacketsByTypeWhateverTheKey(t *testing.T) {
	t.Parallel()
	pk := mpackets.Packet{Connect: mpackets.ConnectParams{Password: []byte("pw-in-packet"), Username: []byte("u")},
		Payload: []byte("payload-in-packet")}
	var buf strings.Builder
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: redactPackets}))
	log.Info("m",
		"some_new_key", pk, "ptr", &pk, "list", []mpackets.Packet{pk},
		"props", pk.Properties, "raw", []byte("raw-bytes"), "nested", [][]byte{[]byte("nested-bytes")},
		slog.Group("grp", "inner", &pk),
		"error", mpackets.ErrPacketTooLarge, "user", "alice", "n", 3, "ip", net.ParseIP("10.0.0.1"),
		"status", http.StatusOK, "password", "string-password")
	got := buf.String()
	for _, secret := range []string{"pw-in-packet", "payload-in-packet", "raw-bytes", "nested-bytes", "string-password"} {
		for _, form := range secretForms(secret) {
			if strings.Contains(got, form) {
				t.Errorf("%q leaked as %q: %s", secret, form, got)
			}
		}
	}
	for _, keep := range []string{"error=\"packet too large\"", "user=alice", "n=3", "ip=10.0.0.1", "status=200",
		"some_new_key=[redacted]", "grp.inner=[redacted]", "props=[redacted]"} {
		if !strings.Contains(got, keep) {
			t.Errorf("log lacks %s: %s", keep, got)
		}
	}
}
