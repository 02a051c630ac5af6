package broker

import (
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/warden-mqtt/warden/internal/mqtttest"
)

// TestSharedSubscriptionDeliveredOncePerGroup (MQTT 5 §4.8.2; patch 17,
// which leaves a publish's shared and inline subscriber maps nil until
// there is one): each message to a topic with a shared group reaches
// exactly one member of the group, and an ordinary subscriber of the
// same topic gets every message.
func TestSharedSubscriptionDeliveredOncePerGroup(t *testing.T) {
	b := startBroker(t, Config{TCPAddr: "127.0.0.1:0"})
	addr := b.Addr("tcp")
	var group, plain atomic.Int64
	join := func(id, filter string, count *atomic.Int64) {
		c, r := rawClient(t, addr, id)
		rawSubscribe(t, c, r, filter, 0)
		go func() {
			for {
				first, _, err := mqtttest.ReadPacket(r)
				if err != nil {
					return
				}
				if first&0xf0 == 0x30 {
					count.Add(1)
				}
			}
		}()
	}
	join("member-1", "$share/g/plant/+/temp", &group)
	join("member-2", "$share/g/plant/+/temp", &group)
	join("watcher", "plant/#", &plain)

	pc, _ := rawClient(t, addr, "publisher")
	const n = 20
	for range n {
		_, _ = pc.Write(mqtttest.Packet(0x30, append(append(mqtttest.String("plant/line1/temp"), 0), "21"...)))
	}
	deadline := time.Now().Add(5 * time.Second)
	for (group.Load() < n || plain.Load() < n) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // a duplicate would arrive by now
	if group.Load() != n || plain.Load() != n {
		t.Errorf("group members got %d messages together, the plain subscriber %d; want %d each", group.Load(), plain.Load(), n)
	}
}

// TestSubscribersOfAPlainTopicAllocateOneMap (patch 17): a topic with one
// ordinary subscriber and no shared or inline ones costs one map, not
// four, and no copies of the empty shared and inline sets.
func TestSubscribersOfAPlainTopicAllocateOneMap(t *testing.T) {
	x := mqtt.NewTopicsIndex()
	x.Subscribe("dev-1", packets.Subscription{Filter: "plant/line1/temp"})
	x.Subscribe("watcher", packets.Subscription{Filter: "plant/#"})
	if n := len(x.Subscribers("plant/line1/temp").Subscriptions); n != 2 {
		t.Fatalf("%d subscribers found, want 2", n)
	}
	if allocs := testing.AllocsPerRun(100, func() { x.Subscribers("plant/line1/temp") }); allocs > 2 {
		t.Errorf("finding a plain topic's 2 subscribers: %.0f allocations, want at most 2 (the Subscribers and its one map)", allocs)
	}
}
