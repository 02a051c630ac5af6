package broker

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/gorilla/websocket"
	mqtt "github.com/mochi-mqtt/server/v2"
	mpackets "github.com/mochi-mqtt/server/v2/packets"
)

// testCA is a tiny self-signed CA issuing a server certificate (localhost,
// 127.0.0.1, ::1) and client certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "warden broker test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{
		cert: cert,
		key:  key,
		pool: pool,
		pem:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}
}

var serial = struct {
	sync.Mutex
	n int64
}{n: 1}

func (ca *testCA) issue(t *testing.T, cn string, server bool) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial.Lock()
	serial.n++
	sn := serial.n
	serial.Unlock()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(sn),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// serverTLS: server certificate from ca; client certificates verified
// against ca when given.
func (ca *testCA) serverTLS(t *testing.T) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{ca.issue(t, "localhost", true)},
		ClientCAs:    ca.pool,
		ClientAuth:   tls.VerifyClientCertIfGiven,
		MinVersion:   tls.VersionTLS12,
	}
}

// clientTLS trusts ca and presents certs (if any).
func (ca *testCA) clientTLS(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: ca.pool, ServerName: "localhost", Certificates: certs}
}

// allowHook is the test stand-in for warden's auth hook: it allows every
// CONNECT and every ACL check. In production only warden's hook is added.
type allowHook struct {
	mqtt.HookBase
}

func (h *allowHook) ID() string { return "test-allow" }

func (h *allowHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (h *allowHook) OnConnectAuthenticate(*mqtt.Client, mpackets.Packet) bool { return true }

func (h *allowHook) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

// seen is what recordHook saw of one client in OnConnectAuthenticate.
type seen struct {
	listener  string
	stater    bool // cl.Net.Conn implements TLSStater
	handshake bool // ConnectionState().HandshakeComplete
	cn        string
	verified  int // len(VerifiedChains)
}

// recordHook allows everything and records, per client ID, the listener and
// the client certificate seen through TLSStater.
type recordHook struct {
	allowHook
	mu   sync.Mutex
	seen map[string]seen
}

func newRecordHook() *recordHook { return &recordHook{seen: map[string]seen{}} }

func (h *recordHook) ID() string { return "test-record" }

func (h *recordHook) OnConnectAuthenticate(cl *mqtt.Client, _ mpackets.Packet) bool {
	s := seen{listener: cl.Net.Listener}
	if st, ok := cl.Net.Conn.(TLSStater); ok {
		s.stater = true
		cs := st.ConnectionState()
		s.handshake = cs.HandshakeComplete
		if len(cs.PeerCertificates) > 0 {
			s.cn = cs.PeerCertificates[0].Subject.CommonName
		}
		s.verified = len(cs.VerifiedChains)
	}
	h.mu.Lock()
	h.seen[cl.ID] = s
	h.mu.Unlock()
	return true
}

func (h *recordHook) get(id string) (seen, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.seen[id]
	return s, ok
}

// testLogger writes to the test log, at Debug level when -v is set. Lines
// logged after the test ends (Mochi logs from connection goroutines that
// Close does not wait for) are dropped.
func testLogger(t *testing.T) *slog.Logger {
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelDebug
	}
	w := &tWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type tWriter struct {
	t    *testing.T
	mu   sync.Mutex
	done bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

// startBroker creates and starts a broker, closed at test end.
func startBroker(t *testing.T, cfg Config, hooks ...mqtt.Hook) *Broker {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	if len(hooks) == 0 {
		hooks = []mqtt.Hook{&allowHook{}}
	}
	b, err := New(cfg, hooks...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := b.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return b
}

// dialer opens a transport connection to the broker.
type dialer func(t *testing.T) net.Conn

func dialTCP(addr string) dialer {
	return func(t *testing.T) net.Conn {
		t.Helper()
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial tcp %s: %v", addr, err)
		}
		return c
	}
}

func dialTLS(addr string, cfg *tls.Config) dialer {
	return func(t *testing.T) net.Conn {
		t.Helper()
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial tls %s: %v", addr, err)
		}
		return c
	}
}

// dialWS dials ws:// (cfg nil) or wss:// with the "mqtt" subprotocol.
func dialWS(addr string, cfg *tls.Config) dialer {
	return func(t *testing.T) net.Conn {
		t.Helper()
		u := url.URL{Scheme: "ws", Host: addr, Path: "/mqtt"}
		if cfg != nil {
			u.Scheme = "wss"
		}
		d := websocket.Dialer{
			Subprotocols:     []string{"mqtt"},
			TLSClientConfig:  cfg,
			HandshakeTimeout: 5 * time.Second,
		}
		ws, resp, err := d.Dial(u.String(), nil)
		if err != nil {
			t.Fatalf("dial %s: %v", u.String(), err)
		}
		_ = resp.Body.Close()
		if ws.Subprotocol() != "mqtt" {
			t.Errorf("negotiated subprotocol %q, want mqtt", ws.Subprotocol())
		}
		return &clientWSConn{Conn: ws}
	}
}

// clientWSConn is a minimal client-side net.Conn over a WebSocket, written
// independently of the server's wsConn.
type clientWSConn struct {
	*websocket.Conn
	r   io.Reader
	wmu sync.Mutex
}

func (c *clientWSConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			_, r, err := c.NextReader()
			if err != nil {
				return 0, err
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if err == io.EOF {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *clientWSConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *clientWSConn) SetDeadline(t time.Time) error {
	return c.UnderlyingConn().SetDeadline(t)
}

// mqttClient is a connected paho (MQTT 5) client with a channel of received
// messages.
type mqttClient struct {
	*paho.Client
	msgs chan *paho.Publish
}

func connectPaho(t *testing.T, dial dialer, clientID string, keepalive uint16) *mqttClient {
	t.Helper()
	conn := packets.NewThreadSafeConn(dial(t))
	msgs := make(chan *paho.Publish, 16)
	c := paho.NewClient(paho.ClientConfig{
		Conn:          conn,
		PacketTimeout: 5 * time.Second,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				select {
				case msgs <- pr.Packet:
				default:
				}
				return true, nil
			},
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: clientID, KeepAlive: keepalive, CleanStart: true})
	if err != nil {
		_ = conn.Close()
		t.Fatalf("connect %s: %v", clientID, err)
	}
	if ca.ReasonCode != 0 {
		t.Fatalf("connect %s: reason 0x%02x", clientID, ca.ReasonCode)
	}
	t.Cleanup(func() {
		_ = c.Disconnect(&paho.Disconnect{})
		select {
		case <-c.Done():
		case <-time.After(2 * time.Second):
		}
		_ = conn.Close()
	})
	return &mqttClient{Client: c, msgs: msgs}
}

func (c *mqttClient) subscribe(t *testing.T, filter string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	if err != nil {
		t.Fatalf("subscribe %s: %v", filter, err)
	}
	if len(sa.Reasons) != 1 || sa.Reasons[0] != 1 {
		t.Fatalf("subscribe %s: reasons %v, want [1]", filter, sa.Reasons)
	}
}

func (c *mqttClient) publish(t *testing.T, topic, payload string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pr, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)})
	if err != nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
	if pr.ReasonCode != 0 {
		t.Fatalf("publish %s: PUBACK reason 0x%02x", topic, pr.ReasonCode)
	}
}

func (c *mqttClient) expect(t *testing.T, topic, payload string) {
	t.Helper()
	select {
	case m := <-c.msgs:
		if m.Topic != topic || string(m.Payload) != payload {
			t.Fatalf("received %s %q, want %s %q", m.Topic, m.Payload, topic, payload)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no message on %s", topic)
	}
}

// roundTrip subscribes sub to topic, publishes from pub and checks delivery.
func roundTrip(t *testing.T, sub, pub *mqttClient, topic string) {
	t.Helper()
	sub.subscribe(t, topic)
	payload := "hello " + topic
	pub.publish(t, topic, payload)
	sub.expect(t, topic, payload)
}

// waitClosed reads from c until it fails and returns how long that took
// from start; it fails the test if c is still open after limit.
func waitClosed(t *testing.T, c net.Conn, start time.Time, limit time.Duration) time.Duration {
	t.Helper()
	_ = c.SetReadDeadline(start.Add(limit))
	buf := make([]byte, 512)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue // e.g. a TLS alert or HTTP error body before the close
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("connection still open after %v", limit)
		}
		return time.Since(start)
	}
}
