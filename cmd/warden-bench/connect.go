package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"
)

// connectScenario: --clients CONNECTs, --concurrency at a time, each
// followed at once by a DISCONNECT. It measures how fast the broker
// authenticates and sets up sessions.
//
// A warm-up pass first connects each user once, untimed, so the timed
// pass sees the broker as a reconnecting fleet does (warden caches
// successful password verifications; Mosquitto has no such cache and
// verifies every time). The warm-up's own latencies are reported as the
// cold figures.
type connectScenario struct {
	clients     int
	concurrency int
	warmup      bool
}

func (s *connectScenario) flags(fs *flag.FlagSet) {
	fs.IntVar(&s.clients, "clients", 1000, "number of timed CONNECTs")
	fs.IntVar(&s.concurrency, "concurrency", 8, "CONNECTs under way at a time")
	fs.BoolVar(&s.warmup, "warmup", true, "connect each user once, untimed, before the timed pass")
}

func (s *connectScenario) check(*options) error {
	if s.clients < 1 || s.concurrency < 1 {
		return errors.New("--clients and --concurrency must be at least 1")
	}
	return nil
}

func (s *connectScenario) run(ctx context.Context, b *bench, r *Result) error {
	if s.warmup {
		n := min(b.opts.users, s.clients)
		cold := make([]histogram, s.concurrency)
		var t tally
		b.progress.set(func() string {
			return fmt.Sprintf("warm-up: %d/%d users connected, %d refused, %d failed", t.ok.Load(), n, t.refused.Load(), t.errors.Load())
		})
		forEach(ctx, n, s.concurrency, func(w, i int) {
			c, a := b.connect(ctx, b.legit("warm", i))
			t.count(a)
			if c != nil {
				cold[w].record(a.latency)
				c.close()
			}
		})
		if err := ctx.Err(); err != nil {
			return err
		}
		if t.ok.Load() == 0 {
			t.into(r, "warm-up")
			return fmt.Errorf("warm-up: none of %d users could connect (%d refused, %d failed): check --addr, --user-prefix, --password", n, t.refused.Load(), t.errors.Load())
		}
		var h histogram
		for i := range cold {
			h.merge(&cold[i])
		}
		r.add("cold_connect_p50_ms", "ms", ms(h.quantile(0.50)))
		r.add("cold_connect_p99_ms", "ms", ms(h.quantile(0.99)))
	}

	var t tally
	lat := make([]histogram, s.concurrency)
	b.progress.set(func() string {
		return fmt.Sprintf("%d/%d connected, %d refused, %d failed", t.ok.Load(), s.clients, t.refused.Load(), t.errors.Load())
	})
	broker, self := b.brokerMeter(), startMeter(0)
	start := time.Now()
	forEach(ctx, s.clients, s.concurrency, func(w, i int) {
		c, a := b.connect(ctx, b.legit("c", i))
		t.count(a)
		if c != nil {
			lat[w].record(a.latency)
			c.close()
		}
	})
	wall := time.Since(start)
	var h histogram
	for i := range lat {
		h.merge(&lat[i])
	}
	ok := float64(t.ok.Load())
	r.add("connects", "", ok)
	r.add("refused", "", float64(t.refused.Load()))
	r.add("failed", "", float64(t.errors.Load()))
	r.add("connects_per_s", "1/s", ok/wall.Seconds())
	r.add("connect_p50_ms", "ms", ms(h.quantile(0.50)))
	r.add("connect_p99_ms", "ms", ms(h.quantile(0.99)))
	r.add("connect_max_ms", "ms", ms(h.max))
	b.addUsage(r, broker, self, "connect", ok)
	t.into(r, "timed pass")
	return ctx.Err()
}
