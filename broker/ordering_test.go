package broker

import (
	"encoding/binary"
	"log/slog"
	"testing"

	"github.com/warden-mqtt/warden/internal/mqtttest"
)

// TestOrderedTopicAcrossWriters (WARDEN-PATCHES.md patches 20 and 25;
// MQTT 5 [MQTT-4.6.0-5] [MQTT-4.6.0-6]): messages from one publisher reach
// a subscriber in the order they were published, at QoS 0 and 1, through
// single messages (each handed to a writer goroutine that waited for work,
// which ends its turn once the queue is empty) and bursts (queued and
// coalesced into fewer writes), while the subscriber's acknowledgements
// are written in between.
func TestOrderedTopicAcrossWriters(t *testing.T) {
	for _, qos := range []byte{0, 1} {
		t.Run(map[byte]string{0: "qos0", 1: "qos1"}[qos], func(t *testing.T) {
			br := startBroker(t, Config{TCPAddr: local, Logger: slog.New(slog.DiscardHandler)})
			addr := br.Addr("tcp")
			sub, sr := rawClient(t, addr, "sub")
			rawSubscribe(t, sub, sr, "order/t", qos)
			pub, pr := rawClient(t, addr, "pub")

			seq := 0
			publish := func(n int) []byte {
				var out []byte
				for range n {
					seq++
					body := mqtttest.String("order/t")
					if qos == 1 {
						body = binary.BigEndian.AppendUint16(body, uint16(seq%65535+1))
					}
					body = append(body, 0) // no properties
					body = binary.BigEndian.AppendUint32(body, uint32(seq))
					out = append(out, mqtttest.Packet(0x30|qos<<1, body)...)
				}
				return out
			}
			want := 0
			receive := func(n int) {
				t.Helper()
				for range n {
					first, body := mqtttest.MustReadPacket(t, sr)
					if first>>4 != 3 {
						t.Fatalf("packet %#x, want PUBLISH", first)
					}
					at := 2 + len("order/t") + 1 // topic, property length
					if qos == 1 {
						at += 2
						if _, err := sub.Write(mqtttest.Packet(0x40, body[at-3:at-1])); err != nil {
							t.Fatal(err)
						}
					}
					want++
					if got := int(binary.BigEndian.Uint32(body[at:])); got != want {
						t.Fatalf("message %d arrived as number %d: out of order", want, got)
					}
				}
			}
			drainAcks := func(n int) {
				t.Helper()
				for range n {
					if first, _ := mqtttest.MustReadPacket(t, pr); first>>4 != 4 {
						t.Fatalf("packet %#x to the publisher, want PUBACK", first)
					}
				}
			}
			for round := 0; round < 20; round++ {
				for range 5 { // one at a time: each finds the queue empty
					if _, err := pub.Write(publish(1)); err != nil {
						t.Fatal(err)
					}
					receive(1)
				}
				if _, err := pub.Write(publish(100)); err != nil { // a burst, read in one go
					t.Fatal(err)
				}
				if _, err := pub.Write(publish(1)); err != nil { // right behind it
					t.Fatal(err)
				}
				receive(101)
				if qos == 1 {
					drainAcks(106)
				}
			}
		})
	}
}
