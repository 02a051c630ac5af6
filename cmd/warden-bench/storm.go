package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// stormScenario: --clients clients connect (--concurrency at a time) and
// stay connected; then every connection is cut at once without a
// DISCONNECT, as when a site's network fails, and every client reconnects
// at the same moment, retrying until it is back or --storm-timeout
// passes. It measures the time until all are back, and (with
// --broker-pid) the broker's memory per connected client.
//
// The cut is on the client side: the broker keeps its state (warden its
// verification cache), as it would when the network between a fleet and
// a healthy broker fails.
type stormScenario struct {
	clients      int
	concurrency  int
	stormTimeout time.Duration
	retryDelay   time.Duration
}

func (s *stormScenario) flags(fs *flag.FlagSet) {
	fs.IntVar(&s.clients, "clients", 1000, "number of clients connected, dropped and reconnected")
	fs.IntVar(&s.concurrency, "concurrency", 16, "CONNECTs under way at a time while the clients first connect")
	fs.DurationVar(&s.stormTimeout, "storm-timeout", 60*time.Second, "give up on clients not back after this long")
	fs.DurationVar(&s.retryDelay, "retry-delay", 100*time.Millisecond, "pause before a failed reconnect is retried")
}

func (s *stormScenario) check(*options) error {
	if s.clients < 1 || s.concurrency < 1 {
		return errors.New("--clients and --concurrency must be at least 1")
	}
	if s.stormTimeout <= 0 {
		return errors.New("--storm-timeout must be positive")
	}
	return nil
}

func (s *stormScenario) run(ctx context.Context, b *bench, r *Result) error {
	clients := make([]*client, s.clients)
	defer func() { closeAll(clients) }()

	var before procSample
	if b.opts.brokerPID != 0 {
		before, _ = readProc(b.opts.brokerPID)
	}
	var ramp tally
	b.progress.set(func() string {
		return fmt.Sprintf("connecting: %d/%d, %d refused, %d failed", ramp.ok.Load(), s.clients, ramp.refused.Load(), ramp.errors.Load())
	})
	forEach(ctx, s.clients, s.concurrency, func(_, i int) {
		c, a := b.connect(ctx, b.legit("s", i))
		ramp.count(a)
		clients[i] = c
	})
	if err := ctx.Err(); err != nil {
		return err
	}
	connected := int(ramp.ok.Load())
	if connected == 0 {
		ramp.into(r, "initial connect")
		return errors.New("no client could connect: check --addr, --user-prefix, --password")
	}
	r.add("connected", "", float64(connected))
	if connected < s.clients {
		ramp.into(r, "initial connect")
		r.note("%d of %d clients could not connect at first and are left out of the storm", s.clients-connected, s.clients)
	}
	if b.opts.brokerPID != 0 {
		if after, err := readProc(b.opts.brokerPID); err == nil {
			r.add("broker_rss_connected_mib", "MiB", float64(after.rssKiB)/1024)
			r.add("broker_rss_per_client_kib", "KiB", float64(after.rssKiB-before.rssKiB)/float64(connected))
		}
	}

	// Cut every connection, as fast as we can, then release every
	// reconnect at once.
	broker, self := b.brokerMeter(), startMeter(0)
	forEach(ctx, s.clients, 64, func(_, i int) {
		if c := clients[i]; c != nil {
			c.drop()
		}
	})
	cut := time.Now()

	var back, attempts, failures atomic.Uint64
	var t tally
	times := make([]time.Duration, s.clients) // from the cut until back; 0: never
	var lastBack atomic.Int64
	b.progress.set(func() string {
		return fmt.Sprintf("storm: %d/%d back, %d attempts, %d failed", back.Load(), connected, attempts.Load(), failures.Load())
	})
	stormCtx, cancel := context.WithTimeout(ctx, s.stormTimeout)
	defer cancel()
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i, old := range clients {
		if old == nil {
			continue
		}
		clients[i] = nil
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
			for stormCtx.Err() == nil {
				attempts.Add(1)
				c, a := b.connect(stormCtx, b.legit("s", i))
				t.count(a)
				if c != nil {
					clients[i] = c
					d := time.Since(cut)
					times[i] = d
					back.Add(1)
					for {
						cur := lastBack.Load()
						if int64(d) <= cur || lastBack.CompareAndSwap(cur, int64(d)) {
							break
						}
					}
					return
				}
				failures.Add(1)
				select {
				case <-stormCtx.Done():
				case <-time.After(s.retryDelay):
				}
			}
		}()
	}
	close(release)
	wg.Wait()

	var h histogram
	for _, d := range times {
		if d > 0 {
			h.record(d)
		}
	}
	n := back.Load()
	r.add("back", "", float64(n))
	r.add("not_back", "", float64(uint64(connected)-n))
	r.add("attempts", "", float64(attempts.Load()))
	r.add("failed_attempts", "", float64(failures.Load()))
	r.add("storm_s", "s", time.Duration(lastBack.Load()).Seconds())
	r.add("back_p50_ms", "ms", ms(h.quantile(0.50)))
	r.add("back_p99_ms", "ms", ms(h.quantile(0.99)))
	r.add("reconnects_per_s", "1/s", float64(n)/time.Duration(lastBack.Load()).Seconds())
	b.addUsage(r, broker, self, "reconnect", float64(n))
	t.into(r, "storm")
	if err := ctx.Err(); err != nil {
		return err
	}
	if n < uint64(connected) {
		return fmt.Errorf("%d of %d clients were not back within --storm-timeout %s", uint64(connected)-n, connected, s.stormTimeout)
	}
	return nil
}
