package main

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Returning freed heap to the OS after a burst.
//
// Go frees the memory of a burst (the buffers and goroutine stacks of
// 10,000 clients that left, argon2id's 19 MiB working sets) at its next
// collection, and its scavenger then returns what the new heap goal no
// longer needs, gradually. But a collection only runs when allocation
// reaches the goal the last one set, or every two minutes: an idle warden
// after a burst keeps the burst's pages that long (10,000 clients gone:
// 322 MiB resident a minute later, 29 MiB before they came). On a machine
// without a memory limit (memlimit.go) nothing else returns them, and a
// process that holds ten times its working size after its clients left
// looks like a leak to anyone watching RSS.
//
// heapReturn reads runtime/metrics every period and, when the heap holds
// far more than the last collection's goal and the program has gone
// quiet, calls debug.FreeOSMemory: one collection, then every free page
// back to the OS (75-90 ms for that case, once).

const (
	// returnFloor: with less than this to gain (held beyond the live
	// heap), a forced collection and the page faults of taking the
	// memory back are not worth it; warden itself runs in about 30 MiB.
	returnFloor = 64 << 20
	// returnQuietShare: a period that allocated more than the gain over
	// this is not quiet: the runtime is reusing the free pages itself.
	returnQuietShare = 4
)

// heapSample is what heapReturn reads from runtime/metrics.
type heapSample struct {
	held   uint64 // heap memory mapped and not returned: objects, unused parts of spans, free spans
	live   uint64 // heap marked live by the last collection
	goal   uint64 // heap goal the last collection set (GOGC, the memory limit)
	allocs uint64 // bytes allocated since the process started
}

// heapMetrics are the runtime/metrics names heapSample is read from, in
// the order readHeap fills it.
var heapMetrics = []string{
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/free:bytes",
	"/gc/heap/live:bytes",
	"/gc/heap/goal:bytes",
	"/gc/heap/allocs:bytes",
}

// readHeap reads a heapSample; s is reused across calls.
func readHeap(s []metrics.Sample) heapSample {
	metrics.Read(s)
	u := func(i int) uint64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[i].Value.Uint64()
	}
	return heapSample{held: u(0) + u(1) + u(2), live: u(3), goal: u(4), allocs: u(5)}
}

// heapHoldsTooMuch decides, from the sample now and the bytes allocated
// since the previous one, whether to return the free heap to the OS, and
// how much there is to gain (held beyond the live heap).
//
// Return it when all three hold:
//   - at least returnFloor to gain;
//   - the heap holds more than 1.5 times the goal the last collection
//     set (the goal is twice the live heap plus stacks at GOGC=100, less
//     under a memory limit): in a steady state the heap grows to the goal
//     before each collection and the scavenger keeps a tenth above it, so
//     only a heap that shrank since its peak holds more, and a steady
//     heap is never touched;
//   - the last period allocated less than a quarter of the gain: during
//     a burst the runtime reuses the free pages itself, and a forced
//     collection there would only cost CPU.
//
// With GOGC=off and no memory limit the goal is unbounded and nothing is
// returned.
func heapHoldsTooMuch(now heapSample, allocated uint64) (gain uint64, ok bool) {
	if now.held <= now.live {
		return 0, false
	}
	gain = now.held - now.live
	return gain, gain >= returnFloor && now.held/3 > now.goal/2 && allocated < gain/returnQuietShare
}

// heapReturn is the loop; returns counts its calls of FreeOSMemory
// (warden_memory_returns_total) and returnedBytes what they gave back
// (warden_memory_returned_bytes_total).
type heapReturn struct {
	period        time.Duration
	log           *slog.Logger
	returns       prometheus.Counter
	returnedBytes prometheus.Counter
}

// newHeapReturn builds the loop and registers its metrics on reg.
func newHeapReturn(period time.Duration, log *slog.Logger, reg prometheus.Registerer) (*heapReturn, error) {
	h := &heapReturn{
		period: period,
		log:    log,
		returns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "warden_memory_returns_total",
			Help: "Times warden returned the free heap to the OS after a burst (debug.FreeOSMemory, --memory-return-interval).",
		}),
		returnedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "warden_memory_returned_bytes_total",
			Help: "Bytes of heap returned to the OS after bursts (what the heap held before each return less what it held after).",
		}),
	}
	for _, c := range []prometheus.Collector{h.returns, h.returnedBytes} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// startHeapReturn runs the loop every period until ctx is done (period 0:
// not at all), with its metrics on reg.
func startHeapReturn(ctx context.Context, period time.Duration, log *slog.Logger, reg prometheus.Registerer) error {
	if period <= 0 {
		return nil
	}
	h, err := newHeapReturn(period, log, reg)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	log.Debug("returning free heap to the OS after bursts", "interval", period)
	go h.run(ctx)
	return nil
}

// run checks the heap every period until ctx is done.
func (h *heapReturn) run(ctx context.Context) {
	s := make([]metrics.Sample, len(heapMetrics))
	for i, name := range heapMetrics {
		s[i].Name = name
	}
	prev := readHeap(s)
	t := time.NewTicker(h.period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := readHeap(s)
		gain, ok := heapHoldsTooMuch(now, now.allocs-prev.allocs)
		prev = now
		if !ok {
			continue
		}
		start := time.Now()
		debug.FreeOSMemory()
		after := readHeap(s)
		prev = after
		h.returns.Inc()
		h.returnedBytes.Add(float64(now.held - min(now.held, after.held)))
		h.log.Debug("returned free heap to the OS",
			"held_mib", now.held>>20, "live_mib", now.live>>20, "gain_mib", gain>>20,
			"held_after_mib", after.held>>20, "took", time.Since(start).Round(time.Millisecond))
	}
}
