package broker

import (
	"fmt"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/internal/mqtttest"
)

// TestRetainedMessagesBeyondTheWriteQueueAllArrive (MQTT 5 [MQTT-3.8.4-4];
// WARDEN-PATCHES.md patch 23): a subscription matching more retained
// messages than a client's write queue holds gets every one of them; the
// broker waits for room instead of dropping all but the first
// MaxPendingWrites (scripts/bench-compare.sh's retained case lost 71,543 of
// 100,000 at the default of 1,024).
func TestRetainedMessagesBeyondTheWriteQueueAllArrive(t *testing.T) {
	const n, queue = 600, 16
	b := startBroker(t, Config{TCPAddr: "127.0.0.1:0", MaxPendingWrites: queue})
	addr := b.Addr("tcp")
	pub, pr := rawClient(t, addr, "retainer")
	var burst []byte
	for i := range n {
		burst = append(burst, mqtttest.Packet(0x31, append(append(mqtttest.String(fmt.Sprintf("r/%d", i)), 0), "v"...))...)
	}
	// One QoS 1 publish after them: its PUBACK says all are stored.
	burst = append(burst, mqtttest.Packet(0x32, append(append(mqtttest.String("end"), 0, 1, 0), "e"...))...)
	if _, err := pub.Write(burst); err != nil {
		t.Fatal(err)
	}
	if first, _ := mqtttest.MustReadPacket(t, pr); first != 0x40 {
		t.Fatalf("PUBACK expected, got %#x", first)
	}

	c, r := rawClient(t, addr, "late")
	_, _ = c.Write(mqtttest.Packet(0x82, append(append([]byte{0, 1, 0}, mqtttest.String("r/#")...), 0)))
	got := map[string]bool{}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for len(got) < n {
		first, body, err := mqtttest.ReadPacket(r)
		if err != nil {
			t.Fatalf("%d of %d retained messages arrived, then: %v", len(got), n, err)
		}
		if first&0xf0 == 0x30 && first&0x01 == 1 {
			l := int(body[0])<<8 | int(body[1])
			got[string(body[2:2+l])] = true
		}
	}
}
