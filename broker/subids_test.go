package broker

import (
	"bufio"
	"slices"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/warden-mqtt/warden/internal/mqtttest"
)

// TestSubscriptionIdentifiersDelivered (MQTT 5 §3.3.4, [MQTT-3.3.4-3],
// [MQTT-3.3.4-4]; WARDEN-PATCHES.md patch 15): a publish carries the
// identifiers of every matching subscription of the receiver, one
// matching subscription with an identifier gives that one, and a
// subscription without one gives none. Patch 15 stopped building the
// identifiers map for every delivery; the identifiers sent must not
// change.
func TestSubscriptionIdentifiersDelivered(t *testing.T) {
	b := startBroker(t, Config{TCPAddr: "127.0.0.1:0"})
	addr := b.Addr("tcp")
	subscribe := func(id string, subs ...[2]any) *bufio.Reader {
		c, r := rawClient(t, addr, id)
		for _, s := range subs {
			var props []byte
			if sid := s[1].(int); sid > 0 {
				props = []byte{0x0b, byte(sid)} // subscription identifier (< 128: one byte)
			}
			rawSubscribe(t, c, r, s[0].(string), 0, props...)
		}
		return r
	}
	both := subscribe("both", [2]any{"plant/+/temp", 1}, [2]any{"plant/#", 2})
	one := subscribe("one", [2]any{"plant/line1/temp", 7})
	none := subscribe("none", [2]any{"plant/line1/temp", 0})

	pc, _ := rawClient(t, addr, "publisher")
	_, _ = pc.Write(mqtttest.Packet(0x30, append(append(mqtttest.String("plant/line1/temp"), 0), "21"...)))
	for _, c := range []struct {
		name string
		r    *bufio.Reader
		want []int
	}{{"both", both, []int{1, 2}}, {"one", one, []int{7}}, {"none", none, nil}} {
		if got := publishSubIDs(t, c.r); !slices.Equal(got, c.want) {
			t.Errorf("%s: subscription identifiers %v, want %v", c.name, got, c.want)
		}
	}
}

// publishSubIDs reads one PUBLISH (QoS 0, MQTT 5) and returns its
// subscription identifiers, sorted.
func publishSubIDs(t *testing.T, r *bufio.Reader) []int {
	t.Helper()
	done := make(chan struct{})
	var first byte
	var body []byte
	go func() { first, body = mqtttest.MustReadPacket(t, r); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("no PUBLISH within 5 s")
	}
	if first&0xf0 != 0x30 {
		t.Fatalf("PUBLISH expected, got %#x", first)
	}
	n := int(body[0])<<8 | int(body[1])
	props := body[2+n:]
	plen, i := int(props[0]), 1 // property lengths here are under 128
	var ids []int
	for i < 1+plen {
		if props[i] != 0x0b {
			t.Fatalf("unexpected property %#x in % x", props[i], props[:1+plen])
		}
		ids = append(ids, int(props[i+1]))
		i += 2
	}
	slices.Sort(ids)
	return ids
}

// TestSubscribersLookupAllocations (patch 15): finding the 50
// subscribers of a topic no longer copies the particle's subscriptions
// or makes an identifiers map per subscriber.
func TestSubscribersLookupAllocations(t *testing.T) {
	x := mqtt.NewTopicsIndex()
	for i := range 50 {
		x.Subscribe("client-"+string(rune('a'+i%26))+string(rune('a'+i/26)), packets.Subscription{Filter: "bench/d"})
	}
	if n := len(x.Subscribers("bench/d").Subscriptions); n != 50 {
		t.Fatalf("%d subscribers found, want 50", n)
	}
	allocs := testing.AllocsPerRun(100, func() { x.Subscribers("bench/d") })
	t.Logf("%.0f allocations", allocs)
	if allocs > 20 {
		t.Errorf("finding 50 subscribers: %.0f allocations, want at most 20 (no copy of the subscriptions, no map per subscriber)", allocs)
	}
}
