package main

import (
	"math"
	"math/bits"
	"time"
)

// histogram records durations in logarithmic buckets 1% wide, so a run
// of millions of deliveries keeps a few kilobytes per recorder and its
// percentiles are within 1% of the exact ones. It is not safe for
// concurrent use: give each goroutine its own and merge them at the end.
type histogram struct {
	counts   [histBuckets]uint64
	n        uint64
	min, max time.Duration
	sum      time.Duration
}

const (
	// histGrowth is the ratio between bucket bounds.
	histGrowth = 1.01
	// histBuckets covers 1 ns to about 130 s (1.01^2600 ns).
	histBuckets = 2600
)

var logGrowth = math.Log(histGrowth)

// record adds one observation; negative values (clock steps) count as 0.
func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	i := 0
	if d > 1 {
		i = int(math.Log(float64(d)) / logGrowth)
		if i >= histBuckets {
			i = histBuckets - 1
		}
	}
	h.counts[i]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.n++
	h.sum += d
}

// merge adds o's observations to h.
func (h *histogram) merge(o *histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// quantile returns the q-quantile (0 < q <= 1): the middle of the bucket
// holding the observation of rank ceil(q*n), clamped to the exact min and
// max. It is 0 when nothing was recorded.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			mid := time.Duration(math.Pow(histGrowth, float64(i)+0.5))
			return min(max(mid, h.min), h.max)
		}
	}
	return h.max
}

// mean is the arithmetic mean, 0 when empty.
func (h *histogram) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}

// ms converts a duration to milliseconds for reports.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// seqSet is a growable bitset of sequence numbers, used to find which
// acknowledged messages a subscriber never received. Not safe for
// concurrent use.
type seqSet struct {
	words []uint64
	n     uint64 // distinct members
}

// add inserts seq and reports whether it was new.
func (s *seqSet) add(seq uint64) bool {
	w := seq / 64
	if w >= uint64(len(s.words)) {
		grown := make([]uint64, max(w+1, uint64(2*len(s.words))))
		copy(grown, s.words)
		s.words = grown
	}
	bit := uint64(1) << (seq % 64)
	if s.words[w]&bit != 0 {
		return false
	}
	s.words[w] |= bit
	s.n++
	return true
}

// has reports whether seq is a member.
func (s *seqSet) has(seq uint64) bool {
	w := seq / 64
	return w < uint64(len(s.words)) && s.words[w]&(1<<(seq%64)) != 0
}

// missing counts the members of want that are not in s.
func (s *seqSet) missing(want *seqSet) uint64 {
	var n uint64
	for i, w := range want.words {
		var have uint64
		if i < len(s.words) {
			have = s.words[i]
		}
		n += uint64(bits.OnesCount64(w &^ have))
	}
	return n
}
