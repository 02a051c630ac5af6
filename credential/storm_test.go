package credential

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"sync"
	"testing"
	"time"
)

// heapSample is the Go runtime's memory as the storm benchmark reads it
// (runtime/metrics).
type heapSample struct {
	objects  uint64 // /memory/classes/heap/objects:bytes: live and not yet swept
	held     uint64 // /memory/classes/total:bytes minus released: what the process keeps mapped
	released uint64 // /memory/classes/heap/released:bytes: returned to the OS (and not reused since)
	goal     uint64 // /gc/heap/goal:bytes
	cycles   uint64 // /gc/cycles/total:gc-cycles
	gcCPU    float64
}

var heapMetrics = []string{
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/total:bytes",
	"/memory/classes/heap/released:bytes",
	"/gc/heap/goal:bytes",
	"/gc/cycles/total:gc-cycles",
	"/cpu/classes/gc/total:cpu-seconds",
}

func readHeap() heapSample {
	s := make([]metrics.Sample, len(heapMetrics))
	for i, n := range heapMetrics {
		s[i].Name = n
	}
	metrics.Read(s)
	return heapSample{
		objects:  s[0].Value.Uint64(),
		held:     s[1].Value.Uint64() - s[2].Value.Uint64(),
		released: s[2].Value.Uint64(),
		goal:     s[3].Value.Uint64(),
		cycles:   s[4].Value.Uint64(),
		gcCPU:    s[5].Value.Float64(),
	}
}

// BenchmarkVerifyStormHeap runs a reconnect storm's worth of argon2id
// verifications (DefaultParams, every one a cache miss, 64 callers
// queueing for the pool) beside a live heap standing for the connected
// clients, and reports the Go heap's peak during the storm and its state
// 5 s after it, with and without a soft memory limit. It is a memory
// measurement, not a speed one: run it alone, with -benchtime=1x:
//
//	go test -run '^$' -bench VerifyStormHeap -benchtime=1x ./credential
//
// limit=off is Go's default (GOGC=100 alone); limit=N MiB is what
// debug.SetMemoryLimit would be given.
func BenchmarkVerifyStormHeap(b *testing.B) {
	const verifications = 120
	mib := uint64(1 << 20)
	workers := DefaultVerifyWorkers()
	for _, c := range []struct {
		liveMiB  int
		limitMiB int // 0: none
	}{
		// 102 MiB: the pool-derived limit (1 worker: 2 × 19 MiB + a
		// 64 MiB base); 460 and 921 MiB: 90% of a 512 MiB and a 1 GiB
		// cgroup.
		{0, 0}, {0, 102}, {256, 0}, {256, 102}, {256, 460}, {768, 0}, {768, 921},
	} {
		limit := "off"
		if c.limitMiB > 0 {
			limit = strconv.Itoa(c.limitMiB) + "MiB"
		}
		b.Run(fmt.Sprintf("workers=%d/live=%dMiB/limit=%s", workers, c.liveMiB, limit), func(b *testing.B) {
			v, err := NewVerifier(VerifierOptions{Workers: workers})
			if err != nil {
				b.Fatal(err)
			}
			h, err := Hash("storm-password-1", DefaultParams)
			if err != nil {
				b.Fatal(err)
			}
			// The connected clients: many small objects with pointers,
			// as sessions are, so marking costs what it would.
			live := make([][]byte, c.liveMiB*256)
			for i := range live {
				live[i] = make([]byte, 4096)
			}
			old := debug.SetMemoryLimit(-1)
			defer debug.SetMemoryLimit(old)
			runtime.GC()
			debug.FreeOSMemory()
			if c.limitMiB > 0 {
				debug.SetMemoryLimit(int64(c.limitMiB) << 20)
			} else {
				debug.SetMemoryLimit(1<<63 - 1)
			}
			before := readHeap()

			for b.Loop() {
				var peak heapSample
				done := make(chan struct{})
				sampled := make(chan struct{})
				go func() { // sample every 2 ms for the peaks
					defer close(sampled)
					t := time.NewTicker(2 * time.Millisecond)
					defer t.Stop()
					for {
						s := readHeap()
						peak.objects = max(peak.objects, s.objects)
						peak.held = max(peak.held, s.held)
						peak.goal = max(peak.goal, s.goal)
						select {
						case <-done:
							return
						case <-t.C:
						}
					}
				}()
				start := time.Now()
				var wg sync.WaitGroup
				next := make(chan int, verifications)
				for i := range verifications {
					next <- i
				}
				close(next)
				for range 64 {
					wg.Go(func() {
						for i := range next {
							if ok, _, err := v.Verify(context.Background(), "user-"+strconv.Itoa(i), "storm-password-1", h, 1); !ok || err != nil {
								b.Errorf("verify %d: %v %v", i, ok, err)
							}
						}
					})
				}
				wg.Wait()
				storm := time.Since(start)
				end := readHeap()
				close(done)
				<-sampled
				time.Sleep(5 * time.Second)
				after := readHeap()

				b.ReportMetric(float64(peak.objects)/float64(mib), "peak-heap-MiB")
				b.ReportMetric(float64(peak.held)/float64(mib), "peak-held-MiB")
				b.ReportMetric(float64(end.objects)/float64(mib), "end-heap-MiB")
				b.ReportMetric(float64(after.objects)/float64(mib), "5s-heap-MiB")
				b.ReportMetric(float64(after.held)/float64(mib), "5s-held-MiB")
				b.ReportMetric(float64(after.released)/float64(mib), "5s-released-MiB")
				b.ReportMetric(float64(after.goal)/float64(mib), "5s-goal-MiB")
				b.ReportMetric(float64(end.cycles-before.cycles), "gc-cycles")
				b.ReportMetric(end.gcCPU-before.gcCPU, "gc-cpu-s")
				b.ReportMetric(storm.Seconds(), "storm-s")
			}
			runtime.KeepAlive(live)
		})
	}
}
