// SPDX-License-Identifier: MIT

package packets

import "math"

// warden patch 24: Packets (the server's retained message store) keeps its
// packets ordered by the time each may be removed, so the once-a-second
// expiry sweep looks at the expired ones only. Upstream copied the whole
// store into a new map every second (GetAll) and tested every packet.

// expiryBatch bounds how many heap entries one DeleteExpired pass handles
// per hold of the write lock, so publishers are never held up for long.
const expiryBatch = 1024

// expiryEntry is a packet id and the time after which it may be removed.
type expiryEntry struct {
	at int64
	id string
}

// expiryDeadline returns the unix time after which a retained packet is
// removed by the expiry sweep, and false if it never is. It is the earlier
// of the packet's own MQTT 5 expiry and, when maxExpiry is greater than 0,
// its creation time plus maxExpiry (the server's maximum message expiry
// interval, enforced on every retained message).
func expiryDeadline(pk *storedPacket, maxExpiry int64) (int64, bool) {
	at, ok := int64(0), false
	if pk.version == 5 && pk.expiry > 0 { // [MQTT-3.3.2-5]
		at, ok = pk.expiry, true
	}
	if maxExpiry > 0 && pk.created <= math.MaxInt64-maxExpiry {
		if c := pk.created + maxExpiry; !ok || c < at {
			at, ok = c, true
		}
	}
	return at, ok
}

// pushExpiry adds an entry to the expiry heap. The caller holds the write lock.
func (p *Packets) pushExpiry(at int64, id string) {
	p.expiry = append(p.expiry, expiryEntry{at: at, id: id})
	h := p.expiry
	for i := len(h) - 1; i > 0; {
		parent := (i - 1) / 2
		if h[parent].at <= h[i].at {
			break
		}
		h[parent], h[i] = h[i], h[parent]
		i = parent
	}
}

// popExpiry removes the earliest entry of the expiry heap. The caller holds
// the write lock and has checked that the heap is not empty.
func (p *Packets) popExpiry() expiryEntry {
	h := p.expiry
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h[last] = expiryEntry{} // drop the id's reference
	h = h[:last]
	for i := 0; ; {
		small, l, r := i, 2*i+1, 2*i+2
		if l < len(h) && h[l].at < h[small].at {
			small = l
		}
		if r < len(h) && h[r].at < h[small].at {
			small = r
		}
		if small == i {
			break
		}
		h[i], h[small] = h[small], h[i]
		i = small
	}
	p.expiry = h
	return top
}

// rebuildExpiry orders every stored packet again, with maxExpiry. Entries
// of packets deleted or replaced since they were added stay in the heap
// until their time comes; rebuilding drops them. The caller holds the write
// lock.
func (p *Packets) rebuildExpiry(maxExpiry int64) {
	p.expiryMax = maxExpiry
	p.expiry = p.expiry[:0]
	if cap(p.expiry) > 2*len(p.internal)+64 {
		p.expiry = nil
	}
	for id, pk := range p.internal {
		if at, ok := expiryDeadline(&pk, maxExpiry); ok {
			p.pushExpiry(at, id)
		}
	}
}

// compactExpiry rebuilds the heap when stale entries (left by replaced or
// deleted packets) outnumber the stored packets, so that a topic retained
// again and again cannot grow it without bound. The caller holds the write
// lock.
func (p *Packets) compactExpiry() {
	if len(p.expiry) > 2*len(p.internal)+64 {
		p.rebuildExpiry(p.expiryMax)
	}
}

// DeleteExpired deletes the packets whose time has passed at now (unix
// seconds) and returns their ids; nil if none. A packet's time has passed
// when it is an MQTT 5 packet whose Expiry is before now, or when maxExpiry
// is greater than 0 and the packet was created more than maxExpiry seconds
// before now. Only the expired packets are looked at: the packets are kept
// ordered by that time as they are added.
func (p *Packets) DeleteExpired(now, maxExpiry int64) []string {
	var ids []string
	for {
		more := false
		p.Lock()
		if maxExpiry != p.expiryMax {
			p.rebuildExpiry(maxExpiry)
		}
		for n := 0; len(p.expiry) > 0 && p.expiry[0].at < now; n++ {
			if n == expiryBatch {
				more = true
				break
			}
			e := p.popExpiry()
			pk, ok := p.internal[e.id]
			if !ok {
				continue // deleted since
			}
			// The entry may belong to a packet replaced since; the packet
			// stored now decides (a later one has its own entry).
			if at, ok := expiryDeadline(&pk, maxExpiry); ok && at < now {
				delete(p.internal, e.id)
				ids = append(ids, e.id)
			}
		}
		p.Unlock()
		if !more {
			return ids
		}
	}
}
