// SPDX-License-Identifier: MIT

package mqtt

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// queueTestClient is a client on one end of a pipe, as the server builds
// it, with at most pending packets queued; the other end is returned for
// the test to read.
func queueTestClient(t *testing.T, pending int32) (*Client, net.Conn) {
	t.Helper()
	opts := &Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	opts.ensureDefaults()
	opts.Capabilities.MaximumClientWritesPending = pending
	s := New(opts)
	server, peer := net.Pipe()
	t.Cleanup(func() { _ = server.Close(); _ = peer.Close() })
	cl := s.NewClient(server, "t", "queue-test", false)
	cl.Properties.ProtocolVersion = 4
	return cl, peer
}

func queuePublish(n int) *packets.Packet {
	return &packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   "q",
		Payload:     []byte{byte(n >> 8), byte(n)},
	}
}

// writing reports whether cl's writer goroutine runs (or is about to).
func writing(cl *Client) bool {
	q := &cl.State.outbound
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.writing
}

// waitNoWriter waits until cl's writer goroutine has stopped: it clears
// writing, under the queue's lock, as the last thing it does.
func waitNoWriter(t *testing.T, cl *Client) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); writing(cl); {
		if time.Now().After(deadline) {
			t.Fatal("the writer goroutine still runs")
		}
		time.Sleep(time.Millisecond)
	}
}

// readPublishes reads n QoS 0 PUBLISH packets from r and returns their
// sequence numbers (the two payload bytes).
func readPublishes(t *testing.T, r *bufio.Reader, n int) []int {
	t.Helper()
	seqs := make([]int, 0, n)
	for i := 0; i < n; i++ {
		first, err := r.ReadByte()
		if err != nil {
			t.Fatal(err)
		}
		length, err := r.ReadByte() // the packets are short: one length byte
		if err != nil || first>>4 != packets.Publish {
			t.Fatalf("packet % x: %v", []byte{first, length}, err)
		}
		body := make([]byte, length)
		if _, err := io.ReadFull(r, body); err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, int(body[len(body)-2])<<8|int(body[len(body)-1]))
	}
	return seqs
}

// TestOutboundQueueIdleHoldsNothing: a client with nothing to write has no
// queue memory and no writer goroutine; a writer runs while packets are
// queued and ends when they are written.
func TestOutboundQueueIdleHoldsNothing(t *testing.T) {
	cl, peer := queueTestClient(t, 1024)
	if cl.State.outbound.ring != nil || writing(cl) {
		t.Fatalf("new client: ring %d slots, writing %v; want neither", len(cl.State.outbound.ring), writing(cl))
	}
	r := bufio.NewReader(peer)
	for round := 0; round < 3; round++ {
		for i := 0; i < 100; i++ {
			if !cl.enqueueOutbound(queuePublish(i)) {
				t.Fatalf("round %d: packet %d refused below the limit", round, i)
			}
		}
		seqs := readPublishes(t, r, 100)
		for i, s := range seqs {
			if s != i {
				t.Fatalf("round %d: packet %d has sequence %d: out of order", round, i, s)
			}
		}
		waitNoWriter(t, cl)
		q := &cl.State.outbound
		q.mu.Lock()
		slots, n, writing := len(q.ring), q.n, q.writing
		q.mu.Unlock()
		if slots != 0 || n != 0 || writing {
			t.Fatalf("round %d, drained: ring %d slots, %d queued, writing %v; want the ring released", round, slots, n, writing)
		}
		if qty := atomic.LoadInt32(&cl.State.outboundQty); qty != 0 {
			t.Fatalf("round %d: outboundQty %d after draining", round, qty)
		}
	}
}

// TestOutboundQueueLimit: packets beyond MaximumClientWritesPending are
// refused while the writer is blocked; the queued ones go out in order.
func TestOutboundQueueLimit(t *testing.T) {
	cl, peer := queueTestClient(t, 10)
	// Nothing reads the pipe yet: the writer blocks on the first packet,
	// so the queue holds the next 10 and refuses the rest.
	accepted := 0
	for i := 0; i < 50; i++ {
		if cl.enqueueOutbound(queuePublish(i)) {
			accepted++
		}
		if i == 0 {
			for cl.State.outbound.queued() != 0 { // the writer took it
				time.Sleep(time.Millisecond)
			}
		}
	}
	if accepted != 11 {
		t.Fatalf("%d packets accepted; want 11 (1 being written, 10 queued)", accepted)
	}
	seqs := readPublishes(t, bufio.NewReader(peer), accepted)
	for i, s := range seqs {
		if s != i {
			t.Fatalf("packet %d has sequence %d; want the first 11 in order", i, s)
		}
	}
	waitNoWriter(t, cl)
}

// TestOutboundQueueDroppedOnClose: packets still queued when the client
// stops are dropped with the writer, which ends.
func TestOutboundQueueDroppedOnClose(t *testing.T) {
	cl, _ := queueTestClient(t, 100)
	for i := 0; i < 20; i++ {
		cl.enqueueOutbound(queuePublish(i))
	}
	cl.Stop(nil)
	waitNoWriter(t, cl)
	q := &cl.State.outbound
	q.mu.Lock()
	slots := len(q.ring)
	q.mu.Unlock()
	if qty := atomic.LoadInt32(&cl.State.outboundQty); slots != 0 || qty != 0 {
		t.Fatalf("stopped: ring %d slots, outboundQty %d; want both empty", slots, qty)
	}
}

// TestWriterGoroutinesAreReused (patch 25): a packet written to an idle
// client is written by a writer goroutine that waited for it, not by a new
// one: after the first, a delivery to an idle client allocates nothing (a
// new goroutine grew its stack on the way through WritePacket), and no
// more writers wait than maxIdleWriters.
func TestWriterGoroutinesAreReused(t *testing.T) {
	cl, peer := queueTestClient(t, 1024)
	template := *queuePublish(7)
	got := make([]byte, 7) // fixed header (2), topic (3), sequence (2)
	deliver := func() {
		pk := getOutboundPacket()
		*pk = template
		if !cl.enqueueOutbound(pk) {
			t.Fatal("refused")
		}
		if _, err := io.ReadFull(peer, got); err != nil {
			t.Fatal(err)
		}
		waitNoWriter(t, cl)
	}
	deliver()
	if allocs := testing.AllocsPerRun(100, deliver); allocs > 0 && !raceEnabled {
		t.Errorf("%.2f allocations per delivery to an idle client; want 0", allocs)
	}

	// A burst to many clients starts many writers; afterwards at most
	// maxIdleWriters of them wait.
	clients := make([]net.Conn, 0, 100)
	for i := 0; i < 100; i++ {
		c, p := queueTestClient(t, 16)
		clients = append(clients, p)
		go func() { _, _ = io.Copy(io.Discard, p) }()
		c.enqueueOutbound(queuePublish(i))
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if n := idleWriters.Load(); n <= maxIdleWriters {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("%d idle writers; want at most %d", n, maxIdleWriters)
		}
	}
}
