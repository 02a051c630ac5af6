package authhook_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/warden-mqtt/warden/internal/mqtttest"
)

// rawClient speaks MQTT 3.1.1 or 5 packet by packet (with Mochi's packet
// codec), so tests see exactly which acks and reason codes a device gets.
type rawClient struct {
	t    testing.TB
	c    net.Conn
	r    *bufio.Reader
	ver  byte
	next uint16
}

type connectOpts struct {
	version   byte // 4 = 3.1.1, 5
	clientID  string
	username  string
	password  string
	clean     bool
	willTopic string
	keepalive uint16
}

// dialRaw connects and sends CONNECT; it returns the client and the CONNACK
// reason code (0 = accepted).
func dialRaw(t testing.TB, conn net.Conn, o connectOpts) (*rawClient, byte) {
	t.Helper()
	if o.version == 0 {
		o.version = 5
	}
	rc := &rawClient{t: t, c: conn, r: bufio.NewReader(conn), ver: o.version, next: 1}
	t.Cleanup(func() { _ = conn.Close() })
	rc.write(connectPacket(t, o))
	ack, err := rc.read(5 * time.Second)
	if err != nil {
		t.Fatalf("no CONNACK: %v", err)
	}
	if ack.FixedHeader.Type != packets.Connack {
		t.Fatalf("got packet type %d, want CONNACK", ack.FixedHeader.Type)
	}
	return rc, ack.ReasonCode
}

// connectPacket encodes o as a CONNECT with Mochi's codec: MQTT 5 and
// keepalive 30 unless o says otherwise (MQTT 3.1's protocol name for
// version 3), with the username, password and will o sets.
func connectPacket(t testing.TB, o connectOpts) []byte {
	t.Helper()
	if o.version == 0 {
		o.version = 5
	}
	if o.keepalive == 0 {
		o.keepalive = 30
	}
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: o.version,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			ClientIdentifier: o.clientID,
			Clean:            o.clean,
			Keepalive:        o.keepalive,
		},
	}
	if o.version == 3 {
		pk.Connect.ProtocolName = []byte("MQIsdp")
	}
	if o.username != "" {
		pk.Connect.UsernameFlag, pk.Connect.Username = true, []byte(o.username)
	}
	if o.password != "" {
		pk.Connect.PasswordFlag, pk.Connect.Password = true, []byte(o.password)
	}
	if o.willTopic != "" {
		pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillPayload = true, o.willTopic, []byte("gone")
	}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (rc *rawClient) write(b []byte) {
	rc.t.Helper()
	_ = rc.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := rc.c.Write(b); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

// read returns the next packet, or an error on timeout or close.
func (rc *rawClient) read(timeout time.Duration) (packets.Packet, error) {
	_ = rc.c.SetReadDeadline(time.Now().Add(timeout))
	var pk packets.Packet
	first, body, err := mqtttest.ReadPacket(rc.r)
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(first); err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = len(body)
	pk.ProtocolVersion = rc.ver
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Pubrec:
		err = pk.PubrecDecode(body)
	case packets.Pubcomp:
		err = pk.PubcompDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	case packets.Pingresp:
	}
	return pk, err
}

// expect reads until a packet of type typ arrives (skipping others).
func (rc *rawClient) expect(typ byte, timeout time.Duration) packets.Packet {
	rc.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		pk, err := rc.read(time.Until(deadline))
		if err != nil {
			rc.t.Fatalf("waiting for packet type %d: %v", typ, err)
		}
		if pk.FixedHeader.Type == typ {
			return pk
		}
	}
}

// subscribe sends SUBSCRIBE and returns the SUBACK reason codes.
func (rc *rawClient) subscribe(filters ...string) []byte {
	rc.t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: rc.ver, PacketID: rc.id()}
	for _, f := range filters {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f, Qos: 1})
	}
	var buf bytes.Buffer
	if err := pk.SubscribeEncode(&buf); err != nil {
		rc.t.Fatal(err)
	}
	rc.write(buf.Bytes())
	return rc.expect(packets.Suback, 5*time.Second).ReasonCodes
}

// publish sends PUBLISH; alias > 0 sets an MQTT 5 topic alias.
func (rc *rawClient) publish(topic string, qos byte, payload string, alias uint16) uint16 {
	rc.t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos}, ProtocolVersion: rc.ver, TopicName: topic, Payload: []byte(payload)}
	if qos > 0 {
		pk.PacketID = rc.id()
	}
	if alias > 0 {
		pk.Properties.TopicAlias, pk.Properties.TopicAliasFlag = alias, true
	}
	var buf bytes.Buffer
	if err := pk.PublishEncode(&buf); err != nil {
		rc.t.Fatal(err)
	}
	rc.write(buf.Bytes())
	return pk.PacketID
}

func (rc *rawClient) id() uint16 { rc.next++; return rc.next }

// ping proves the connection is alive: PINGREQ answered by PINGRESP.
func (rc *rawClient) ping() error {
	rc.write([]byte{0xc0, 0x00})
	deadline := time.Now().Add(3 * time.Second)
	for {
		pk, err := rc.read(time.Until(deadline))
		if err != nil {
			return err
		}
		if pk.FixedHeader.Type == packets.Pingresp {
			return nil
		}
	}
}

// noPublish asserts that no PUBLISH arrives within d (other packets are
// skipped).
func (rc *rawClient) noPublish(d time.Duration) {
	rc.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		pk, err := rc.read(time.Until(deadline))
		if err != nil {
			return
		}
		if pk.FixedHeader.Type == packets.Publish {
			rc.t.Fatalf("unexpected delivery on %q: %q", pk.TopicName, pk.Payload)
		}
	}
}

// closed reports whether the server closed the connection within d.
func (rc *rawClient) closed(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if _, err := rc.read(time.Until(deadline)); err != nil {
			return err == io.EOF || !isTimeout(err)
		}
	}
	return false
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func (rc *rawClient) String() string { return fmt.Sprintf("v%d client", rc.ver) }
