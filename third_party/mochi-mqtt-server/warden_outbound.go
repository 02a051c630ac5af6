// SPDX-License-Identifier: MIT

package mqtt

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// outboundKeep is the most slots an emptied outbound queue keeps for the
// next burst (warden patch): 16 pointers, 128 bytes. A larger ring is
// released once it drains, so a client that once had a backlog goes back
// to holding nothing.
const outboundKeep = 16

// outboundQueue holds the packets waiting to be written to a client, in
// order, and runs the goroutine that writes them (warden patch).
//
// Upstream gave every client a channel of MaximumClientWritesPending slots,
// made at connect (8 bytes a slot: 64 KiB with the default 8,192), and a
// WriteLoop goroutine waiting on it for the connection's life: an idle
// client held both. The queue is a ring that starts empty and doubles as
// packets arrive, up to the same limit, and a writer goroutine runs only
// while there is something to write: it starts when a packet is queued
// with none running and ends when the queue is empty.
type outboundQueue struct {
	mu      sync.Mutex
	ring    []*packets.Packet // length a power of two, or nil
	head    int               // index of the oldest packet
	n       int               // packets queued
	writing bool              // a writer goroutine is running
}

// enqueueOutbound queues pk to be written to cl by a writer goroutine,
// starting one if none runs. It reports false, queueing nothing, when
// MaximumClientWritesPending packets (at least one) are queued already.
func (cl *Client) enqueueOutbound(pk *packets.Packet) bool {
	q := &cl.State.outbound
	limit := max(int(cl.ops.options.Capabilities.MaximumClientWritesPending), 1)
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n >= limit {
		return false
	}
	if q.n == len(q.ring) {
		q.grow()
	}
	q.ring[(q.head+q.n)&(len(q.ring)-1)] = pk
	q.n++
	atomic.AddInt32(&cl.State.outboundQty, 1)
	if !q.writing {
		q.writing = true
		cl.startWriter()
	}
	return true
}

// Writer goroutines are reused (warden patch 25): one started per burst of
// writes, as patch 20 made them, begins on a small stack and grows it
// (twice, copying it each time) on its way through WritePacket; below
// saturation, where every delivery finds its client's queue empty, that
// growth was 9% of the broker's CPU and the goroutine's start 2% more. A
// writer that has emptied a queue waits for the next client to write for,
// unless maxIdleWriters already wait.
var (
	// writerJobs hands a client to a waiting writer. Unbuffered: a send
	// succeeds only when a writer waits for it.
	writerJobs = make(chan *Client)
	// idleWriters counts the writers waiting on writerJobs, or about to.
	idleWriters atomic.Int32
	// maxIdleWriters bounds idleWriters: a burst to many clients starts
	// many writers, and all but these end once it is written.
	maxIdleWriters = int32(max(4, 4*runtime.GOMAXPROCS(0)))
)

// startWriter runs writeOutbound for cl on a waiting writer goroutine, or
// on a new one when none waits.
func (cl *Client) startWriter() {
	select {
	case writerJobs <- cl:
	default:
		go writer(cl)
	}
}

// writer writes cl's queue, then waits for the next client to write for
// (startWriter), or ends when enough writers wait already.
func writer(cl *Client) {
	for {
		cl.writeOutbound()
		if idleWriters.Add(1) > maxIdleWriters {
			idleWriters.Add(-1)
			return
		}
		cl = <-writerJobs
		idleWriters.Add(-1)
	}
}

// grow doubles the ring (4 slots at first), keeping the packets in order.
// It is called on a full ring only, with fewer packets than the limit, so
// the ring never exceeds the power of two that holds the limit.
func (q *outboundQueue) grow() {
	ring := make([]*packets.Packet, max(4, 2*len(q.ring)))
	for i := 0; i < q.n; i++ {
		ring[i] = q.ring[(q.head+i)&(len(q.ring)-1)]
	}
	q.ring, q.head = ring, 0
}

// next takes the oldest packet from the queue. On an empty queue, or when
// drop is set (the client is closed: the packets still queued are
// discarded, uncounted in qty), it marks the writer stopped, releases a
// large ring and returns nil: the caller, the writer, must then return.
func (q *outboundQueue) next(drop bool, qty *int32) *packets.Packet {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 || drop {
		q.writing = false
		if q.n > 0 {
			atomic.AddInt32(qty, -int32(q.n))
		}
		if drop || len(q.ring) > outboundKeep {
			q.ring, q.n = nil, 0
		}
		q.head = 0
		return nil
	}
	pk := q.ring[q.head]
	q.ring[q.head] = nil
	q.head = (q.head + 1) & (len(q.ring) - 1)
	q.n--
	return pk
}

// waitOutboundRoom waits until the client's write queue has room for one
// more packet, and reports whether it has: false when the client closed
// or wait passed first. Retained messages sent at SUBSCRIBE use it
// (publishRetainedToClient): a subscription may match far more of them
// than the queue holds, and they are sent from the subscriber's own read
// loop, so waiting for its writer to drain slows only that client, where
// a full queue dropped all but the first MaximumClientWritesPending.
func (cl *Client) waitOutboundRoom(wait time.Duration) bool {
	limit := max(int(cl.ops.options.Capabilities.MaximumClientWritesPending), 1)
	var deadline time.Time
	for cl.State.outbound.queued() >= limit {
		if cl.Closed() {
			return false
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(wait)
		} else if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// queued is the number of packets waiting behind the one being written.
func (q *outboundQueue) queued() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// writeOutbound writes the queued packets to the client in order and
// returns once the queue is empty. When the client is closed, the packets
// still queued are dropped, as the upstream WriteLoop left them in the
// channel when it stopped.
func (cl *Client) writeOutbound() {
	for {
		pk := cl.State.outbound.next(cl.Closed(), &cl.State.outboundQty)
		if pk == nil {
			return
		}
		if err := cl.WritePacket(*pk); err != nil {
			cl.ops.log.Debug("failed publishing packet", "error", err, "client", cl.ID, "packet", pk)
		}
		putOutboundPacket(pk) // from publishToClient's pool
		atomic.AddInt32(&cl.State.outboundQty, -1)
	}
}
