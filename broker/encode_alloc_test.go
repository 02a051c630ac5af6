package broker

import (
	"bytes"
	"log/slog"
	"net"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// discardConn is a connection that accepts every write, keeping the
// last one.
type discardConn struct {
	net.Conn
	last *[]byte
}

func (c discardConn) Write(p []byte) (int, error) {
	*c.last = append((*c.last)[:0], p...)
	return len(p), nil
}
func (discardConn) SetWriteDeadline(time.Time) error { return nil }
func (discardConn) Close() error                     { return nil }
func (discardConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

// TestWritePacketReusesItsEncodingBuffer (WARDEN-PATCHES.md, the pooled
// encoding buffer): writing a publish to a client allocates no encoding
// buffer of its own: no allocation at all, where a bytes.Buffer made and
// grown for each packet cost two for this one.
func TestWritePacketReusesItsEncodingBuffer(t *testing.T) {
	srv := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler), InlineClient: false})
	if err := srv.AddHook(&allowHook{}, nil); err != nil {
		t.Fatal(err)
	}
	var last []byte
	cl := srv.NewClient(discardConn{last: &last}, "t", "enc", false)
	cl.Properties.ProtocolVersion = 5
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "plant1/line1/temp", Payload: make([]byte, 200)}
	var want bytes.Buffer
	wp := pk
	wp.ProtocolVersion = 5
	if err := wp.PublishEncode(&want); err != nil {
		t.Fatal(err)
	}
	// A reused buffer carries nothing of the packet before.
	big := pk
	big.Payload = bytes.Repeat([]byte{0xee}, 5000)
	for _, p := range []packets.Packet{big, pk, big, pk} {
		if err := cl.WritePacket(p); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(last, want.Bytes()) {
		t.Fatalf("wrote % x\nwant % x", last, want.Bytes())
	}
	allocs := testing.AllocsPerRun(200, func() {
		if err := cl.WritePacket(pk); err != nil {
			t.Fatal(err)
		}
	})
	if raceEnabled {
		return // sync.Pool drops items at random under the race detector
	}
	if allocs != 0 {
		t.Errorf("WritePacket of a 200-byte publish: %.0f allocations, want none (the encoding buffer is pooled)", allocs)
	}
}

// TestInflightReusesItsPacketStorage (WARDEN-PATCHES.md patch 19): a
// message set inflight and acknowledged allocates nothing once warm (a
// map of 800-byte Packets allocated one per message), and what comes back
// out is what went in, also after its storage was reused.
func TestInflightReusesItsPacketStorage(t *testing.T) {
	in := mqtt.NewInflights()
	a := packets.Packet{PacketID: 7, TopicName: "a/b", Payload: []byte("first"), FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}}
	b := packets.Packet{PacketID: 8, TopicName: "c/d", Payload: []byte("second"), FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}}
	if !in.Set(a) || in.Set(a) {
		t.Fatal("Set: true for a new packet ID, false for a known one")
	}
	in.Delete(7)
	in.Set(b)
	if got, ok := in.Get(8); !ok || got.TopicName != "c/d" || string(got.Payload) != "second" {
		t.Fatalf("Get(8) = %+v, %v", got, ok)
	}
	if _, ok := in.Get(7); ok {
		t.Fatal("a deleted packet is still inflight")
	}
	c := in.Clone()
	in.Delete(8)
	if got, ok := c.Get(8); !ok || got.TopicName != "c/d" {
		t.Fatalf("a clone lost its packet when the original's was deleted: %+v, %v", got, ok)
	}
	allocs := testing.AllocsPerRun(200, func() {
		in.Set(a)
		in.Delete(7)
	})
	if raceEnabled {
		return // sync.Pool drops items at random under the race detector
	}
	if allocs != 0 {
		t.Errorf("setting and deleting an inflight message: %.0f allocations, want none", allocs)
	}
}
