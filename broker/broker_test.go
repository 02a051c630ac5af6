package broker

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/warden-mqtt/warden/internal/mqtttest"
)

const local = "127.0.0.1:0"

// TestRoundTripV5 publishes and receives over every listener with an
// MQTT 5 client (paho), and across listeners.
func TestRoundTripV5(t *testing.T) {
	ca := newTestCA(t)
	srvTLS := ca.serverTLS(t)
	b := startBroker(t, Config{TCPAddr: local, TLSAddr: local, WSAddr: local, TLS: srvTLS})
	bs := startBroker(t, Config{WSAddr: local, WSTLS: true, TLS: srvTLS})

	transports := []struct {
		name string
		dial dialer
	}{
		{"tcp", dialTCP(b.Addr(ListenerTCP))},
		{"tls", dialTLS(b.Addr(ListenerTLS), ca.clientTLS())},
		{"ws", dialWS(b.Addr(ListenerWS), nil)},
		{"wss", dialWS(bs.Addr(ListenerWS), ca.clientTLS())},
	}
	clients := map[string]*mqttClient{}
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			sub := connectPaho(t, tr.dial, tr.name+"-sub", 30)
			pub := connectPaho(t, tr.dial, tr.name+"-pub", 30)
			roundTrip(t, sub, pub, "rt/"+tr.name)
		})
	}
	t.Run("cross-listener", func(t *testing.T) {
		for _, tr := range transports[:3] {
			clients[tr.name] = connectPaho(t, tr.dial, tr.name+"-x", 30)
		}
		roundTrip(t, clients["tcp"], clients["ws"], "rt/ws-to-tcp")
		roundTrip(t, clients["ws"], clients["tls"], "rt/tls-to-ws")
	})
}

// TestRoundTripV311 uses mosquitto_sub/mosquitto_pub with -V mqttv311 over
// TCP and TLS.
func TestRoundTripV311(t *testing.T) {
	for _, bin := range []string{"mosquitto_sub", "mosquitto_pub"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not installed: make deps (or apt-get install -y mosquitto-clients) installs it", bin)
		}
	}
	ca := newTestCA(t)
	b := startBroker(t, Config{TCPAddr: local, TLSAddr: local, TLS: ca.serverTLS(t)})
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		addr  string
		extra []string
	}{
		{"tcp", b.Addr(ListenerTCP), nil},
		{"tls", b.Addr(ListenerTLS), []string{"--cafile", caFile}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host, port, err := net.SplitHostPort(tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			common := append([]string{"-h", host, "-p", port, "-V", "mqttv311", "-q", "1"}, tc.extra...)
			topic := "v311/" + tc.name
			subID := "v311-sub-" + tc.name

			var out, errOut bytes.Buffer
			sub := exec.Command("mosquitto_sub", append(common, "-i", subID, "-t", topic, "-C", "1", "-W", "10")...)
			sub.Stdout, sub.Stderr = &out, &errOut
			if err := sub.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = sub.Process.Kill(); _, _ = sub.Process.Wait() }()

			cl := waitSubscribed(t, b, subID)
			if v := cl.Properties.ProtocolVersion; v != 4 {
				t.Errorf("subscriber protocol version %d, want 4 (3.1.1)", v)
			}
			if cl.Net.Listener != tc.name {
				t.Errorf("subscriber listener %q, want %q", cl.Net.Listener, tc.name)
			}

			pubOut, err := exec.Command("mosquitto_pub", append(common, "-i", "v311-pub-"+tc.name, "-t", topic, "-m", "hello 3.1.1")...).CombinedOutput()
			if err != nil {
				t.Fatalf("mosquitto_pub: %v: %s", err, pubOut)
			}
			done := make(chan error, 1)
			go func() { done <- sub.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("mosquitto_sub: %v: %s", err, errOut.String())
				}
			case <-time.After(10 * time.Second):
				t.Fatal("mosquitto_sub did not exit")
			}
			if got := strings.TrimSpace(out.String()); got != "hello 3.1.1" {
				t.Fatalf("mosquitto_sub printed %q (stderr %q)", got, errOut.String())
			}
		})
	}
}

// waitSubscribed waits until the client with this ID is connected and has a
// subscription.
func waitSubscribed(t *testing.T, b *Broker, id string) *mqtt.Client {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if cl, ok := b.Server().Clients.Get(id); ok && cl.State.Subscriptions.Len() > 0 {
			return cl
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("client %s never subscribed", id)
	return nil
}

// TestHookSeesClientCertificate checks that the auth hook reads the client
// certificate through TLSStater on cl.Net.Conn over TLS and WSS, and the
// zero state over plain WebSocket.
func TestHookSeesClientCertificate(t *testing.T) {
	ca := newTestCA(t)
	hook := newRecordHook()
	b := startBroker(t, Config{TCPAddr: local, TLSAddr: local, WSAddr: local, WSTLS: true, TLS: ca.serverTLS(t)}, hook)
	plainHook := newRecordHook()
	bp := startBroker(t, Config{WSAddr: local}, plainHook)

	dev1 := ca.issue(t, "dev1", false)
	connectPaho(t, dialTLS(b.Addr(ListenerTLS), ca.clientTLS(dev1)), "cert-tls", 30)
	connectPaho(t, dialWS(b.Addr(ListenerWS), ca.clientTLS(dev1)), "cert-wss", 30)
	connectPaho(t, dialTLS(b.Addr(ListenerTLS), ca.clientTLS()), "nocert-tls", 30)
	connectPaho(t, dialWS(b.Addr(ListenerWS), ca.clientTLS()), "nocert-wss", 30)
	connectPaho(t, dialTCP(b.Addr(ListenerTCP)), "plain-tcp", 30)
	connectPaho(t, dialWS(bp.Addr(ListenerWS), nil), "plain-ws", 30)

	for _, want := range []struct {
		id  string
		h   *recordHook
		exp seen
	}{
		{"cert-tls", hook, seen{listener: "tls", stater: true, handshake: true, cn: "dev1", verified: 1}},
		{"cert-wss", hook, seen{listener: "ws", stater: true, handshake: true, cn: "dev1", verified: 1}},
		{"nocert-tls", hook, seen{listener: "tls", stater: true, handshake: true}},
		{"nocert-wss", hook, seen{listener: "ws", stater: true, handshake: true}},
		{"plain-tcp", hook, seen{listener: "tcp"}},
		{"plain-ws", plainHook, seen{listener: "ws", stater: true}},
	} {
		got, ok := want.h.get(want.id)
		if !ok {
			t.Errorf("%s: hook not called", want.id)
			continue
		}
		if got != want.exp {
			t.Errorf("%s: hook saw %+v, want %+v", want.id, got, want.exp)
		}
	}

	// A certificate from another CA fails the handshake: no hook runs.
	other := newTestCA(t)
	mallory := other.issue(t, "dev1", false)
	for _, tc := range []struct {
		name string
		dial func() (net.Conn, error)
	}{
		{"tls", func() (net.Conn, error) {
			return tls.Dial("tcp", b.Addr(ListenerTLS), ca.clientTLS(mallory))
		}},
		{"wss", func() (net.Conn, error) {
			d := websocket.Dialer{TLSClientConfig: ca.clientTLS(mallory), Subprotocols: []string{"mqtt"}}
			ws, _, err := d.Dial("wss://"+b.Addr(ListenerWS)+"/mqtt", nil)
			if err != nil {
				return nil, err
			}
			return &clientWSConn{Conn: ws}, nil
		}},
	} {
		c, err := tc.dial()
		if err != nil {
			continue // refused during the handshake: fine
		}
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		_, _ = c.Write(mqtttest.Connect{Version: 5, ClientID: "mallory-" + tc.name}.Bytes())
		if _, err := c.Read(make([]byte, 16)); err == nil {
			t.Errorf("%s: untrusted client certificate got a reply", tc.name)
		}
		_ = c.Close()
		if _, ok := hook.get("mallory-" + tc.name); ok {
			t.Errorf("%s: hook called for an untrusted client certificate", tc.name)
		}
	}
}

// TestConnectDeadline checks that a connection that does not complete its
// TLS handshake, WebSocket upgrade or CONNECT within ConnectTimeout is
// closed by the server.
func TestConnectDeadline(t *testing.T) {
	const timeout = 300 * time.Millisecond
	ca := newTestCA(t)
	srvTLS := ca.serverTLS(t)
	b := startBroker(t, Config{TCPAddr: local, TLSAddr: local, WSAddr: local, TLS: srvTLS, ConnectTimeout: timeout})
	bs := startBroker(t, Config{WSAddr: local, WSTLS: true, TLS: srvTLS, ConnectTimeout: timeout})

	rawTCP := func(addr string, send []byte) func(t *testing.T) net.Conn {
		return func(t *testing.T) net.Conn {
			c := dialTCP(addr)(t)
			if len(send) > 0 {
				if _, err := c.Write(send); err != nil {
					t.Fatal(err)
				}
			}
			return c
		}
	}
	cases := []struct {
		name string
		open func(t *testing.T) net.Conn
	}{
		{"tcp silent", rawTCP(b.Addr(ListenerTCP), nil)},
		{"tcp partial CONNECT", rawTCP(b.Addr(ListenerTCP), mqtttest.Connect{Version: 5, ClientID: "partial"}.Bytes()[:5])},
		{"tls no handshake", rawTCP(b.Addr(ListenerTLS), nil)},
		{"tls handshake done, no CONNECT", dialTLS(b.Addr(ListenerTLS), ca.clientTLS())},
		{"ws no HTTP request", rawTCP(b.Addr(ListenerWS), nil)},
		{"ws partial HTTP request", rawTCP(b.Addr(ListenerWS), []byte("GET /mqtt HTTP/1.1\r\nHost: x\r\n"))},
		{"ws upgraded, no CONNECT", dialWS(b.Addr(ListenerWS), nil)},
		{"wss no handshake", rawTCP(bs.Addr(ListenerWS), nil)},
		{"wss upgraded, no CONNECT", dialWS(bs.Addr(ListenerWS), ca.clientTLS())},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			c := tc.open(t)
			defer c.Close()
			took := waitClosed(t, c, start, 2*time.Second)
			if took < timeout-50*time.Millisecond {
				t.Errorf("closed after %v, before the %v connect timeout", took, timeout)
			}
			t.Logf("closed after %v", took)
		})
	}
}

// TestKeepaliveZeroOutlivesConnectTimeout guards the deadline hand-over: a
// client that connected with keepalive 0 (no deadline from Mochi) must not
// be cut off by the connect deadline.
func TestKeepaliveZeroOutlivesConnectTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	ca := newTestCA(t)
	srvTLS := ca.serverTLS(t)
	b := startBroker(t, Config{TCPAddr: local, TLSAddr: local, WSAddr: local, TLS: srvTLS, ConnectTimeout: timeout})
	bs := startBroker(t, Config{WSAddr: local, WSTLS: true, TLS: srvTLS, ConnectTimeout: timeout})

	transports := []struct {
		name string
		dial dialer
	}{
		{"tcp", dialTCP(b.Addr(ListenerTCP))},
		{"tls", dialTLS(b.Addr(ListenerTLS), ca.clientTLS())},
		{"ws", dialWS(b.Addr(ListenerWS), nil)},
		{"wss", dialWS(bs.Addr(ListenerWS), ca.clientTLS())},
	}
	clients := make([]*mqttClient, len(transports))
	for i, tr := range transports {
		clients[i] = connectPaho(t, tr.dial, "ka0-"+tr.name, 0)
	}

	// A raw MQTT 5 client too: nothing at all is sent while we wait.
	raw := dialTCP(b.Addr(ListenerTCP))(t)
	defer raw.Close()
	if _, err := raw.Write(mqtttest.Connect{Version: 5, ClientID: "ka0-raw"}.Bytes()); err != nil {
		t.Fatal(err)
	}
	_ = raw.SetReadDeadline(time.Now().Add(3 * time.Second))
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(raw, hdr); err != nil || hdr[0] != 0x20 {
		t.Fatalf("CONNACK: % x, %v", hdr, err)
	}
	rest := make([]byte, hdr[1])
	if _, err := io.ReadFull(raw, rest); err != nil || rest[1] != 0 {
		t.Fatalf("CONNACK body: % x, %v", rest, err)
	}

	time.Sleep(4 * timeout)

	if _, err := raw.Write([]byte{0xc0, 0x00}); err != nil {
		t.Fatalf("PINGREQ after %v: %v", 4*timeout, err)
	}
	_ = raw.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.ReadFull(raw, hdr); err != nil || !bytes.Equal(hdr, []byte{0xd0, 0x00}) {
		t.Fatalf("PINGRESP after %v: % x, %v", 4*timeout, hdr, err)
	}
	for i, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			roundTrip(t, clients[i], clients[i], "ka0/"+tr.name)
		})
	}
}

// TestAddrAndClose checks bound addresses for port 0, Close idempotence and
// that Close releases the ports.
func TestAddrAndClose(t *testing.T) {
	ca := newTestCA(t)
	b, err := New(Config{TCPAddr: ":0", WSAddr: local, TLS: ca.serverTLS(t), Logger: testLogger(t)}, &allowHook{})
	if err != nil {
		t.Fatal(err)
	}
	tcpAddr, wsAddr := b.Addr(ListenerTCP), b.Addr(ListenerWS)
	for _, a := range []string{tcpAddr, wsAddr} {
		_, port, err := net.SplitHostPort(a)
		if err != nil || port == "0" || port == "" {
			t.Fatalf("Addr = %q, want a resolved port", a)
		}
	}
	if !strings.HasPrefix(wsAddr, "127.0.0.1:") {
		t.Errorf("Addr(ws) = %q, want 127.0.0.1:port", wsAddr)
	}
	if a := b.Addr(ListenerTLS); a != "" {
		t.Errorf("Addr(tls) = %q for a listener that is off", a)
	}
	if a := b.Addr("bogus"); a != "" {
		t.Errorf("Addr(bogus) = %q", a)
	}

	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err == nil {
		t.Error("second Start succeeded")
	}
	// ":0" binds the unspecified address; Addr's value is dialable.
	c := connectPaho(t, dialTCP(tcpAddr), "addr-tcp", 30)
	roundTrip(t, c, c, "addr/tcp")

	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := b.Start(); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close = %v, want ErrClosed", err)
	}
	for _, a := range []string{tcpAddr, wsAddr} {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Errorf("port of %s not released: %v", a, err)
			continue
		}
		_ = ln.Close()
	}
}

type stopHook struct {
	allowHook
	initErr error
	stops   atomic.Int32
}

func (h *stopHook) Init(any) error { return h.initErr }
func (h *stopHook) Stop() error    { h.stops.Add(1); return nil }

// TestCloseBeforeStart: New binds, Close releases and stops hooks, twice is
// fine.
func TestCloseBeforeStart(t *testing.T) {
	h := &stopHook{}
	ca := newTestCA(t)
	b, err := New(Config{TCPAddr: local, TLSAddr: local, WSAddr: local, WSTLS: true, TLS: ca.serverTLS(t), Logger: testLogger(t)}, h)
	if err != nil {
		t.Fatal(err)
	}
	addrs := []string{b.Addr(ListenerTCP), b.Addr(ListenerTLS), b.Addr(ListenerWS)}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if n := h.stops.Load(); n != 1 {
		t.Errorf("hook stopped %d times, want 1", n)
	}
	for _, addr := range addrs {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("port %s not released: %v", addr, err)
		}
		_ = ln.Close()
	}
	if err := b.Start(); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close = %v, want ErrClosed", err)
	}
}

// TestCloseDoesNotWaitForConnectDeadline: with the default 10 s connect
// timeout, connections still waiting for CONNECT (or the upgrade) are closed
// by Close at once, and connected clients are disconnected.
func TestCloseDoesNotWaitForConnectDeadline(t *testing.T) {
	ca := newTestCA(t)
	cfg := Config{TCPAddr: local, TLSAddr: local, WSAddr: local, TLS: ca.serverTLS(t), Logger: testLogger(t)}
	b, err := New(cfg, &allowHook{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	conns := []net.Conn{
		dialTCP(b.Addr(ListenerTCP))(t),
		dialTCP(b.Addr(ListenerTLS))(t),
		dialTCP(b.Addr(ListenerWS))(t),
		dialWS(b.Addr(ListenerWS), nil)(t),
	}
	connected := connectPaho(t, dialTCP(b.Addr(ListenerTCP)), "close-connected", 30)
	time.Sleep(100 * time.Millisecond) // let the server accept them

	start := time.Now()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Close took %v", took)
	}
	for _, c := range conns {
		waitClosed(t, c, time.Now(), 2*time.Second)
		_ = c.Close()
	}
	select {
	case <-connected.Done():
	case <-time.After(2 * time.Second):
		t.Error("connected client not disconnected by Close")
	}
}

// TestNewErrors covers configuration errors, and that a failed New leaves
// nothing bound and stops the hooks it initialised.
func TestNewErrors(t *testing.T) {
	allow := &allowHook{}
	aclOnly := &aclHook{}
	cases := []struct {
		name  string
		cfg   Config
		hooks []mqtt.Hook
	}{
		{"no listener", Config{}, []mqtt.Hook{allow}},
		{"tls without config", Config{TLSAddr: local}, []mqtt.Hook{allow}},
		{"wss without config", Config{WSAddr: local, WSTLS: true}, []mqtt.Hook{allow}},
		{"tls without certificate", Config{TLSAddr: local, TLS: &tls.Config{}}, []mqtt.Hook{allow}},
		{"negative timeout", Config{TCPAddr: local, ConnectTimeout: -time.Second}, []mqtt.Hook{allow}},
		{"no hook", Config{TCPAddr: local}, nil},
		{"nil hook", Config{TCPAddr: local}, []mqtt.Hook{allow, nil}},
		{"no authenticating hook", Config{TCPAddr: local}, []mqtt.Hook{aclOnly}},
		{"two authenticating hooks", Config{TCPAddr: local}, []mqtt.Hook{allow, &allowHook{}}},
		{"two ACL hooks", Config{TCPAddr: local}, []mqtt.Hook{allow, aclOnly}},
		{"bad address", Config{TCPAddr: "127.0.0.1:notaport"}, []mqtt.Hook{allow}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Logger = testLogger(t)
			b, err := New(tc.cfg, tc.hooks...)
			if err == nil {
				_ = b.Close()
				t.Fatal("New succeeded")
			}
			t.Log(err)
		})
	}

	t.Run("bind conflict releases earlier listeners", func(t *testing.T) {
		busy, err := net.Listen("tcp", local)
		if err != nil {
			t.Fatal(err)
		}
		defer busy.Close()
		free := freeAddr(t)
		_, err = New(Config{TCPAddr: free, WSAddr: busy.Addr().String(), Logger: testLogger(t)}, allow)
		if err == nil {
			t.Fatal("New succeeded on a busy port")
		}
		ln, err := net.Listen("tcp", free)
		if err != nil {
			t.Fatalf("TCP listener left bound: %v", err)
		}
		_ = ln.Close()
	})

	t.Run("hook Init error releases listeners and stops hooks", func(t *testing.T) {
		first := &stopHook{}
		failing := &failInitHook{}
		free := freeAddr(t)
		_, err := New(Config{TCPAddr: free, Logger: testLogger(t)}, first, failing)
		if err == nil {
			t.Fatal("New succeeded with a failing hook")
		}
		if n := first.stops.Load(); n != 1 {
			t.Errorf("initialised hook stopped %d times, want 1", n)
		}
		ln, err := net.Listen("tcp", free)
		if err != nil {
			t.Fatalf("listener left bound: %v", err)
		}
		_ = ln.Close()
	})
}

// aclHook provides only OnACLCheck.
type aclHook struct{ mqtt.HookBase }

func (h *aclHook) ID() string                                 { return "test-acl" }
func (h *aclHook) Provides(b byte) bool                       { return b == mqtt.OnACLCheck }
func (h *aclHook) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

// failInitHook provides nothing and fails Init.
type failInitHook struct{ mqtt.HookBase }

func (h *failInitHook) ID() string     { return "test-fail-init" }
func (h *failInitHook) Init(any) error { return errors.New("init failed") }

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", local)
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// TestWebSocketFraming checks the stream semantics of the WebSocket
// connection: a packet split over two messages, two packets in one message,
// and a text message closing the connection.
func TestWebSocketFraming(t *testing.T) {
	b := startBroker(t, Config{WSAddr: local})
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+b.Addr(ListenerWS)+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	c := &clientWSConn{Conn: ws}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))

	connect := mqtttest.Connect{Version: 5, ClientID: "framing"}.Bytes()
	for _, part := range [][]byte{connect[:3], connect[3:]} {
		if err := ws.WriteMessage(websocket.BinaryMessage, part); err != nil {
			t.Fatal(err)
		}
	}
	if typ, _ := mqtttest.MustReadPacket(t, c); typ != 0x20 {
		t.Fatalf("got packet type %#x, want CONNACK", typ)
	}

	// SUBSCRIBE (id 1, filter "a", QoS 0, no properties) + PINGREQ in one message.
	both := []byte{0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x00, 0xc0, 0x00}
	if err := ws.WriteMessage(websocket.BinaryMessage, both); err != nil {
		t.Fatal(err)
	}
	if typ, _ := mqtttest.MustReadPacket(t, c); typ != 0x90 {
		t.Fatalf("got packet type %#x, want SUBACK", typ)
	}
	if typ, _ := mqtttest.MustReadPacket(t, c); typ != 0xd0 {
		t.Fatalf("got packet type %#x, want PINGRESP", typ)
	}

	if err := ws.WriteMessage(websocket.TextMessage, []byte{0xc0, 0x00}); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, c, time.Now(), 2*time.Second)
}
