package broker

import (
	"log/slog"
	"runtime"
	"testing"

	"github.com/warden-mqtt/warden/internal/mqtttest"
)

// TestPublishReadIntoOneBuffer (WARDEN-PATCHES.md patch 27): a PUBLISH the
// broker receives costs one buffer of its size, not two: Mochi copied
// every packet it had just read into a second buffer before decoding it.
func TestPublishReadIntoOneBuffer(t *testing.T) {
	br := startBroker(t, Config{TCPAddr: local, Logger: slog.New(slog.DiscardHandler)})
	pub, r := rawClient(t, br.Addr("tcp"), "pub")
	const size, n = 256 << 10, 20
	body := append(append(mqtttest.String("big/t"), 0), make([]byte, size)...) // v5: no properties
	msg := mqtttest.Packet(0x30, body)
	ping := func() {
		t.Helper()
		if _, err := pub.Write([]byte{0xc0, 0}); err != nil {
			t.Fatal(err)
		}
		if first, _ := mqtttest.MustReadPacket(t, r); first != 0xd0 {
			t.Fatalf("packet %#x, want PINGRESP", first)
		}
	}
	ping()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		if _, err := pub.Write(msg); err != nil {
			t.Fatal(err)
		}
	}
	ping() // the broker has read every PUBLISH before it answers
	runtime.ReadMemStats(&after)
	per := float64(after.TotalAlloc-before.TotalAlloc) / n
	t.Logf("%.0f bytes allocated per %d-byte PUBLISH received", per, size)
	if per > 1.5*size {
		t.Errorf("%.0f bytes allocated per %d-byte PUBLISH received; want one buffer of its size", per, size)
	}
}
