package broker

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	mpackets "github.com/mochi-mqtt/server/v2/packets"

	"github.com/warden-mqtt/warden/internal/mqtttest"
	"github.com/warden-mqtt/warden/internal/poll"
)

// seeHook allows everything and records the topics and filters its ACL
// check sees: Mochi asks it before any retained store or topic index
// access of a PUBLISH or SUBSCRIBE. veto, when set, makes its OnWill drop
// every will from then on.
type seeHook struct {
	allowHook
	mu    sync.Mutex
	seen  []string
	wills atomic.Int32 // OnWill calls
	veto  atomic.Bool
}

func (h *seeHook) ID() string { return "test-see" }

func (h *seeHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck || b == mqtt.OnWill
}

func (h *seeHook) OnACLCheck(_ *mqtt.Client, topic string, _ bool) bool {
	h.mu.Lock()
	h.seen = append(h.seen, topic)
	h.mu.Unlock()
	return true
}

func (h *seeHook) OnWill(_ *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	h.wills.Add(1)
	if h.veto.Load() {
		return mqtt.Will{}, nil
	}
	return will, nil
}

// longest is the length of the longest topic or filter the ACL saw.
func (h *seeHook) longest() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, s := range h.seen {
		n = max(n, len(s))
	}
	return n
}

// connectV5 connects a Paho client with the given CONNECT (ClientID and
// KeepAlive filled in when zero) and returns it with its CONNACK.
func connectV5(t *testing.T, addr string, cp *paho.Connect) (*mqttClient, *paho.Connack, error) {
	t.Helper()
	conn := dialTCP(addr)(t)
	msgs := make(chan *paho.Publish, 16)
	c := paho.NewClient(paho.ClientConfig{
		Conn: conn,
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
	if cp.KeepAlive == 0 {
		cp.KeepAlive = 30
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, cp)
	t.Cleanup(func() { _ = conn.Close() })
	return &mqttClient{Client: c, msgs: msgs}, ca, err
}

// deepTopic has the given number of levels.
func deepTopic(levels int) string {
	return strings.Repeat("a/", levels-1) + "a"
}

// TestDeepTopicsRefusedBeforeTheIndex: a 16,000-level topic (32 KB, well
// inside any packet size limit) is refused whatever carries it, before
// Mochi's ACL check and so before its retained store and topic index,
// where such a topic costs a node per level and seconds of CPU under the
// index's lock. MQTT 5: PUBACK 0x90 for a QoS 1 retained publish, SUBACK
// and UNSUBACK 0x8F, CONNACK 0x90 for a will; the connection stays and
// the broker keeps serving. The default limit, 128 levels, is accepted.
func TestDeepTopicsRefusedBeforeTheIndex(t *testing.T) {
	h := &seeHook{}
	b := startBroker(t, Config{TCPAddr: local}, h)
	addr := b.Addr(ListenerTCP)
	deep := deepTopic(16_000)
	ctx := context.Background()

	attacker, _, err := connectV5(t, addr, &paho.Connect{ClientID: "attacker", CleanStart: true})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	pr, err := attacker.Publish(ctx, &paho.Publish{Topic: deep, QoS: 1, Retain: true, Payload: []byte("x")})
	t.Logf("16,000-level retained publish answered in %v", time.Since(start))
	if pr == nil || pr.ReasonCode != 0x90 {
		t.Errorf("16,000-level retained publish: PUBACK %+v (%v), want reason 0x90 topic name invalid", pr, err)
	}
	if _, err := attacker.Publish(ctx, &paho.Publish{Topic: deep, QoS: 0, Retain: true, Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	sa, _ := attacker.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: deep, QoS: 1}, {Topic: deep + "/#", QoS: 1}}})
	if sa == nil || !bytes.Equal(sa.Reasons, []byte{0x8f, 0x8f}) {
		t.Errorf("16,000-level SUBSCRIBE: SUBACK %+v, want 8f 8f", sa)
	}
	ua, _ := attacker.Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{deep}})
	if ua == nil || !bytes.Equal(ua.Reasons, []byte{0x8f}) {
		t.Errorf("16,000-level UNSUBSCRIBE: UNSUBACK %+v, want 8f", ua)
	}
	_, ca, _ := connectV5(t, addr, &paho.Connect{ClientID: "will", CleanStart: true,
		WillMessage: &paho.WillMessage{Topic: deep, Payload: []byte("gone"), Retain: true}})
	if ca == nil || ca.ReasonCode != 0x90 {
		t.Errorf("16,000-level will: CONNACK %+v, want 0x90", ca)
	}

	if n := h.longest(); n > len(deepTopic(129)) {
		t.Errorf("the ACL check, which comes before the topic index, saw a %d-byte topic", n)
	}
	if _, ok := b.Server().Topics.Retained.Get(deep); ok {
		t.Error("the 16,000-level retained message was stored")
	}
	select {
	case <-attacker.Done():
		t.Fatal("the MQTT 5 client was disconnected")
	default:
	}

	// The broker still serves, and 128 levels (EMQX's default) pass.
	sub := connectPaho(t, dialTCP(addr), "sub", 30)
	pub := connectPaho(t, dialTCP(addr), "pub", 30)
	roundTrip(t, sub, pub, deepTopic(128))
	sa, _ = sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "$share/g/" + deepTopic(127) + "/#", QoS: 1}}})
	if sa == nil || !bytes.Equal(sa.Reasons, []byte{1}) {
		t.Errorf("shared subscription of 128 levels: SUBACK %+v, want granted QoS 1", sa)
	}
}

// TestDeepTopicClosesMQTT3: an MQTT 3.1.1 PUBACK carries no reason, so a
// QoS 1 publish on a too deep topic closes the connection (as Mochi does
// for a publish the ACL denies, and Mosquitto for an invalid topic); at
// QoS 0 it is dropped and the connection stays.
func TestDeepTopicClosesMQTT3(t *testing.T) {
	h := &seeHook{}
	b := startBroker(t, Config{TCPAddr: local}, h)
	deep := deepTopic(16_000)
	for _, qos := range []byte{0, 1} {
		c := dialTCP(b.Addr(ListenerTCP))(t)
		t.Cleanup(func() { _ = c.Close() })
		r := bufio.NewReader(c)
		writePacket(t, c, mpackets.Packet{FixedHeader: mpackets.FixedHeader{Type: mpackets.Connect}, ProtocolVersion: 4,
			Connect: mpackets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: "v3", Clean: true, Keepalive: 30}})
		if typ, _ := mqtttest.MustReadPacket(t, r); typ>>4 != mpackets.Connack {
			t.Fatalf("got packet type %d, want CONNACK", typ>>4)
		}
		writePacket(t, c, mpackets.Packet{FixedHeader: mpackets.FixedHeader{Type: mpackets.Publish, Qos: qos, Retain: true}, ProtocolVersion: 4,
			TopicName: deep, PacketID: 7, Payload: []byte("x")})
		writePacket(t, c, mpackets.Packet{FixedHeader: mpackets.FixedHeader{Type: mpackets.Pingreq}, ProtocolVersion: 4})
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var types []byte
		for {
			hb, err := r.ReadByte()
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("QoS %d: no answer within 5 s", qos)
				}
				if qos == 0 {
					t.Fatalf("QoS 0: connection closed (%v), want it kept", err)
				}
				break // closed (EOF, or a reset: the PINGREQ was left unread)
			}
			types = append(types, hb>>4)
			if hb>>4 == mpackets.Pingresp {
				break
			}
			n, _ := r.ReadByte()
			_, _ = r.Discard(int(n))
		}
		switch {
		case qos == 0 && (len(types) != 1 || types[0] != mpackets.Pingresp):
			t.Errorf("QoS 0: got packet types %v, want only PINGRESP", types)
		case qos == 1 && bytes.Contains(types, []byte{mpackets.Puback}):
			t.Errorf("QoS 1: got packet types %v, want no PUBACK", types)
		}
		_ = c.Close()
	}
	if n := h.longest(); n > 1000 {
		t.Errorf("the ACL check saw a %d-byte topic", n)
	}
}

func writePacket(t *testing.T, w io.Writer, pk mpackets.Packet) {
	t.Helper()
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case mpackets.Connect:
		err = pk.ConnectEncode(&buf)
	case mpackets.Publish:
		err = pk.PublishEncode(&buf)
	case mpackets.Pingreq:
		err = pk.PingreqEncode(&buf)
	case mpackets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
}

// TestTopicLengthLimit: Config.MaxTopicLength bounds topics in bytes.
func TestTopicLengthLimit(t *testing.T) {
	h := &seeHook{}
	b := startBroker(t, Config{TCPAddr: local, MaxTopicLength: 64, MaxTopicLevels: 4}, h)
	c, _, err := connectV5(t, b.Addr(ListenerTCP), &paho.Connect{ClientID: "c", CleanStart: true})
	if err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]byte{
		strings.Repeat("x", 64): 0, strings.Repeat("x", 65): 0x90,
		"a/b/c/d": 0, "a/b/c/d/e": 0x90,
	} {
		pr, _ := c.Publish(context.Background(), &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("x")})
		if pr == nil || pr.ReasonCode != want {
			t.Errorf("publish on %d bytes, %d levels: PUBACK %+v, want 0x%02x", len(topic), strings.Count(topic, "/")+1, pr, want)
		}
	}
}

// TestSessionExpiryCapped: the broker's maximum session expiry holds for an
// MQTT 5 client asking for more at CONNECT (CONNACK says so) and at
// DISCONNECT (where Mochi took any value), and for MQTT 3.1.1 persistent
// sessions, which Mochi otherwise keeps for 136 years.
func TestSessionExpiryCapped(t *testing.T) {
	b := startBroker(t, Config{TCPAddr: local, MaxSessionExpiry: time.Hour})
	addr := b.Addr(ListenerTCP)
	forever := uint32(0xFFFFFFFF)
	_, ca, err := connectV5(t, addr, &paho.Connect{ClientID: "greedy", CleanStart: true,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &forever}})
	if err != nil {
		t.Fatal(err)
	}
	if ca.Properties == nil || ca.Properties.SessionExpiryInterval == nil || *ca.Properties.SessionExpiryInterval != 3600 {
		t.Errorf("CONNACK session expiry %+v, want 3600", ca.Properties)
	}
	short := uint32(10)
	c, _, err := connectV5(t, addr, &paho.Connect{ClientID: "raiser", CleanStart: true,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &short}})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Disconnect(&paho.Disconnect{Properties: &paho.DisconnectProperties{SessionExpiryInterval: &forever}})
	var cl *mqtt.Client
	deadline := time.Now().Add(3 * time.Second)
	for {
		var ok bool
		if cl, ok = b.Server().Clients.Get("raiser"); ok && cl.Closed() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("client not disconnected")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := cl.Properties.Props.SessionExpiryInterval; got != 3600 {
		t.Errorf("session expiry raised at DISCONNECT to %d, want it cut to 3600", got)
	}
	if got := b.Server().Options.Capabilities.MaximumSessionExpiryInterval; got != 3600 {
		t.Errorf("maximum session expiry %d, want 3600 (it also ends MQTT 3.1.1 sessions)", got)
	}
}

// TestMQTT3SessionsExpire: an MQTT 3.1.1 session with clean session 0 has
// no expiry of its own; Mochi ends it after the maximum session expiry
// (Config.MaxSessionExpiry, where Mochi's default is 136 years).
func TestMQTT3SessionsExpire(t *testing.T) {
	t.Parallel()
	b := startBroker(t, Config{TCPAddr: local, MaxSessionExpiry: time.Second})
	c := dialTCP(b.Addr(ListenerTCP))(t)
	defer c.Close()
	r := bufio.NewReader(c)
	writePacket(t, c, mpackets.Packet{FixedHeader: mpackets.FixedHeader{Type: mpackets.Connect}, ProtocolVersion: 4,
		Connect: mpackets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: "v3-persistent", Keepalive: 30}})
	if typ, _ := mqtttest.MustReadPacket(t, r); typ>>4 != mpackets.Connack {
		t.Fatalf("got packet type %d, want CONNACK", typ>>4)
	}
	writePacket(t, c, mpackets.Packet{FixedHeader: mpackets.FixedHeader{Type: mpackets.Subscribe, Qos: 1}, ProtocolVersion: 4, PacketID: 1,
		Filters: mpackets.Subscriptions{{Filter: "v3/#", Qos: 1}}})
	if typ, _ := mqtttest.MustReadPacket(t, r); typ>>4 != mpackets.Suback {
		t.Fatalf("got packet type %d, want SUBACK", typ>>4)
	}
	_ = c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := b.Server().Clients.Get("v3-persistent"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the MQTT 3.1.1 session did not expire")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := b.Server().Topics.Subscribers("v3/x").Subscriptions; len(got) != 0 {
		t.Errorf("the expired session's subscription stays in the topic index: %v", got)
	}
}

// TestExpiredSessionLeavesNothingBehind: when a persistent session expires,
// its subscriptions leave the topic index too (Mochi only forgot the
// client, so every expired session's subscriptions stayed for good).
func TestExpiredSessionLeavesNothingBehind(t *testing.T) {
	t.Parallel()
	b := startBroker(t, Config{TCPAddr: local})
	one := uint32(1)
	c, _, err := connectV5(t, b.Addr(ListenerTCP), &paho.Connect{ClientID: "brief", CleanStart: true,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &one}})
	if err != nil {
		t.Fatal(err)
	}
	c.subscribe(t, "expiring/#")
	if got := b.Server().Topics.Subscribers("expiring/x").Subscriptions; len(got) != 1 {
		t.Fatalf("subscribers %v, want the client", got)
	}
	_ = c.Disconnect(&paho.Disconnect{})
	// Mochi's expiry sweep runs every second: the session is gone after two
	// or three.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := b.Server().Clients.Get("brief"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("session did not expire")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := b.Server().Topics.Subscribers("expiring/x").Subscriptions; len(got) != 0 {
		t.Errorf("the expired session's subscription stays in the topic index: %v", got)
	}
}

// TestDelayedWillAskedAgainWhenDue: a delayed will is put to the hooks
// again when due, and one they refuse then is neither published nor
// retained; one they accept is published and retained.
func TestDelayedWillAskedAgainWhenDue(t *testing.T) {
	t.Parallel()
	h := &seeHook{}
	b := startBroker(t, Config{TCPAddr: local}, h)
	addr := b.Addr(ListenerTCP)
	sub := connectPaho(t, dialTCP(addr), "sub", 30)
	sub.subscribe(t, "wills/#")

	delay, expiry := uint32(1), uint32(3600)
	vanish := func(id string, props *paho.ConnectProperties) {
		c, _, err := connectV5(t, addr, &paho.Connect{ClientID: id, CleanStart: true, Properties: props,
			WillMessage:    &paho.WillMessage{Topic: "wills/" + id, Payload: []byte("gone"), QoS: 1, Retain: true},
			WillProperties: &paho.WillProperties{WillDelayInterval: &delay}})
		if err != nil {
			t.Fatal(err)
		}
		calls := h.wills.Load()
		_ = c.Client.Disconnect(&paho.Disconnect{ReasonCode: 0x04}) // "disconnect with will message"
		poll.Until(t, 3*time.Second, id+": OnWill called at disconnect", func() bool { return h.wills.Load() != calls })
	}
	// Accepted at disconnect, refused when due.
	vanish("refused", &paho.ConnectProperties{SessionExpiryInterval: &expiry})
	h.veto.Store(true)
	select {
	case m := <-sub.msgs:
		t.Fatalf("will on %s published although the hook refused it when due", m.Topic)
	case <-time.After(3 * time.Second):
	}
	if _, ok := b.Server().Topics.Retained.Get("wills/refused"); ok {
		t.Error("the refused will was retained")
	}
	// Accepted both times.
	h.veto.Store(false)
	calls := h.wills.Load()
	vanish("accepted", &paho.ConnectProperties{SessionExpiryInterval: &expiry})
	sub.expect(t, "wills/accepted", "gone")
	if n := h.wills.Load() - calls; n != 2 {
		t.Errorf("OnWill called %d times for the accepted will, want 2 (at disconnect, when due)", n)
	}
	poll.Until(t, 2*time.Second, "the accepted will retained", func() bool {
		_, ok := b.Server().Topics.Retained.Get("wills/accepted")
		return ok
	})
}

// TestWillOfEndedSessionNotDelayed: a client whose session ends with its
// connection (no Session Expiry Interval) but asks for a long Will Delay
// Interval has its will published when it vanishes, as MQTT 5 says (the
// will goes out when the delay passes or the session ends, whichever is
// first). Mochi kept such wills for the whole delay, up to 2^32 seconds,
// one per client ID: memory any client could fill.
func TestWillOfEndedSessionNotDelayed(t *testing.T) {
	b := startBroker(t, Config{TCPAddr: local})
	addr := b.Addr(ListenerTCP)
	sub := connectPaho(t, dialTCP(addr), "sub", 30)
	sub.subscribe(t, "wills/#")
	delay := uint32(0xFFFFFFFF)
	c, _, err := connectV5(t, addr, &paho.Connect{ClientID: "vanisher", CleanStart: true,
		WillMessage:    &paho.WillMessage{Topic: "wills/vanisher", Payload: []byte("gone"), QoS: 1},
		WillProperties: &paho.WillProperties{WillDelayInterval: &delay}})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Client.Disconnect(&paho.Disconnect{ReasonCode: 0x04}) // "disconnect with will message"
	sub.expect(t, "wills/vanisher", "gone")
}
