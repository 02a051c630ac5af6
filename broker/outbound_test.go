package broker

import (
	"bufio"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/internal/mqtttest"
)

// rawV5 connects an MQTT 5 client with raw packets and returns its
// connection and a reader on it, once CONNACK accepted it.
func rawV5(t *testing.T, addr, id string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(mqtttest.Connect{Version: 5, ClientID: id, Keepalive: 60}.Bytes()); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	if first, body := mqtttest.MustReadPacket(t, r); first != 0x20 || len(body) < 2 || body[1] != 0 {
		t.Fatalf("%s: CONNACK % x, want success", id, append([]byte{first}, body...))
	}
	return c, r
}

// TestDeliveriesKeepPublishOrder: QoS 1 messages a client publishes on
// one topic reach a subscriber in the order published, none lost, every
// one going through the subscriber's outbound queue, which grows from
// nothing and is released when it drains (warden patch 20)
// [MQTT-4.6.0-6].
func TestDeliveriesKeepPublishOrder(t *testing.T) {
	t.Parallel()
	b := startBroker(t, Config{TCPAddr: "127.0.0.1:0"})
	addr := b.Addr(ListenerTCP)

	sub, subR := rawV5(t, addr, "order-sub")
	// Packet ID 1, no properties, the filter at QoS 1.
	subscribe := append(append([]byte{0, 1, 0}, mqtttest.String("order/t")...), 1)
	if _, err := sub.Write(mqtttest.Packet(0x82, subscribe)); err != nil {
		t.Fatal(err)
	}
	if first, body := mqtttest.MustReadPacket(t, subR); first != 0x90 || len(body) < 4 || body[3] != 1 {
		t.Fatalf("SUBACK % x, want QoS 1 granted", append([]byte{first}, body...))
	}

	const n = 3000
	received := make(chan []int, 1)
	go func() { // the subscriber reads and acknowledges each delivery
		seqs := make([]int, 0, n)
		defer func() { received <- seqs }()
		for len(seqs) < n {
			first, body, err := mqtttest.ReadPacket(subR)
			if err != nil || first>>4 != 3 {
				return
			}
			topicLen := int(binary.BigEndian.Uint16(body))
			id := body[2+topicLen : 4+topicLen]
			propLen := int(body[4+topicLen]) // short: one byte
			payload := body[5+topicLen+propLen:]
			seqs = append(seqs, int(binary.BigEndian.Uint32(payload)))
			if _, err := sub.Write(mqtttest.Packet(0x40, id)); err != nil {
				return
			}
		}
	}()

	pub, pubR := rawV5(t, addr, "order-pub")
	const window = 64 // publishes awaiting their PUBACK
	for i := range n + window {
		if i < n {
			body := append(mqtttest.String("order/t"), byte((i+1)>>8), byte(i+1), 0) // packet ID, no properties
			body = binary.BigEndian.AppendUint32(body, uint32(i))
			if _, err := pub.Write(mqtttest.Packet(0x32, body)); err != nil {
				t.Fatal(err)
			}
		}
		if i >= window {
			if first, body := mqtttest.MustReadPacket(t, pubR); first != 0x40 || (len(body) > 2 && body[2] >= 0x80) {
				t.Fatalf("PUBACK % x, want success", append([]byte{first}, body...))
			}
		}
	}

	seqs := <-received
	if len(seqs) != n {
		t.Fatalf("subscriber received %d of %d messages", len(seqs), n)
	}
	for i, s := range seqs {
		if s != i {
			t.Fatalf("delivery %d is message %d: out of order", i, s)
		}
	}
}
