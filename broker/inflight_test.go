package broker

import (
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	mpackets "github.com/mochi-mqtt/server/v2/packets"
)

// TestQoS1ReceiveMaximumNoDeadlock guards the patch in
// third_party/mochi-mqtt-server (WARDEN-PATCHES.md): Mochi frees a
// client's receive quota with Inflight.NextImmediate while other clients'
// publishes add to the same inflight. Upstream v2.7.9 took the read lock
// twice there, which deadlocks as soon as a writer queues in between; under
// QoS 1 load it froze subscribers within a second. Readers and writers
// hammer one inflight here; the deadlock, when present, shows within
// milliseconds.
func TestQoS1ReceiveMaximumNoDeadlock(t *testing.T) {
	in := mqtt.NewInflights()
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(2)
		go func() { // another client's publishes queue for this client
			defer wg.Done()
			for i := range 20_000 {
				id := uint16(w*20_000 + i%20_000)
				in.Set(mpackets.Packet{PacketID: id, Expiry: -1, Created: int64(i)})
				in.Delete(id)
			}
		}()
		go func() { // the client's PUBACKs free quota
			defer wg.Done()
			for range 20_000 {
				in.NextImmediate()
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("inflight readers and writers deadlocked (recursive read lock in Inflight.NextImmediate)")
	}
}
