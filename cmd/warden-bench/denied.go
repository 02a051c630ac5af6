package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// deniedScenario: legitimate clients connect and disconnect in a loop,
// first alone (the baseline), then while a flood of clients keeps trying
// wrong passwords. It reports the legitimate CONNECT latency in both
// phases and what became of every wrong-password attempt: each must be
// refused.
//
// Legitimate client i uses user i modulo --users; each user connects once
// before the baseline (untimed), so both phases see a warm broker. The
// flood uses other users (--flood-offset onwards), so a per-user lockout,
// if the broker has one, does not lock the legitimate users out: the
// figure is the cost of refusing, not of locking. A per-address lockout
// would (every client comes from one address): switch it off on the
// broker under test (scripts/bench-compare.sh does).
type deniedScenario struct {
	legit         int
	flood         int
	floodUsers    int
	floodOffset   int
	wrongPassword string
	duration      time.Duration
}

func (s *deniedScenario) flags(fs *flag.FlagSet) {
	fs.IntVar(&s.legit, "legit", 4, "legitimate clients connecting at a time")
	fs.IntVar(&s.flood, "flood", 50, "wrong-password clients connecting at a time")
	fs.IntVar(&s.floodUsers, "flood-users", 10, "number of users the flood guesses passwords of")
	fs.IntVar(&s.floodOffset, "flood-offset", -1, "the flood's first user number (default: --users, the first user after the legitimate ones; a user that does not exist is refused too)")
	fs.StringVar(&s.wrongPassword, "wrong-password", "not-the-password-42", "the password the flood tries")
	fs.DurationVar(&s.duration, "duration", 5*time.Second, "length of each phase (baseline, flood)")
}

func (s *deniedScenario) check(o *options) error {
	if s.floodOffset < 0 {
		s.floodOffset = o.users
	}
	var errs []error
	if s.legit < 1 || s.flood < 1 || s.floodUsers < 1 {
		errs = append(errs, errors.New("--legit, --flood and --flood-users must be at least 1"))
	}
	if s.duration <= 0 {
		errs = append(errs, errors.New("--duration must be positive"))
	}
	if s.wrongPassword == o.password {
		errs = append(errs, errors.New("--wrong-password is the users' password"))
	}
	return errors.Join(errs...)
}

// legitLoop connects and disconnects s.legit clients in a loop until
// stop ends and returns their CONNECT latencies.
func (s *deniedScenario) legitLoop(ctx, stop context.Context, b *bench, phase string, t *tally) histogram {
	lat := make([]histogram, s.legit)
	var wg sync.WaitGroup
	for w := range s.legit {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; stop.Err() == nil; i += s.legit {
				c, a := b.connect(ctx, b.legit(phase, i))
				t.count(a)
				if c != nil {
					lat[w].record(a.latency)
					c.close()
				}
			}
		}()
	}
	wg.Wait()
	var h histogram
	for i := range lat {
		h.merge(&lat[i])
	}
	return h
}

func (s *deniedScenario) run(ctx context.Context, b *bench, r *Result) error {
	// Warm-up: every legitimate user once.
	var warm tally
	b.progress.set(func() string { return fmt.Sprintf("warm-up: %d connected", warm.ok.Load()) })
	forEach(ctx, b.opts.users, s.legit, func(_, i int) {
		c, a := b.connect(ctx, b.legit("dw", i))
		warm.count(a)
		if c != nil {
			c.close()
		}
	})
	if err := ctx.Err(); err != nil {
		return err
	}
	if warm.ok.Load() == 0 {
		warm.into(r, "warm-up")
		return errors.New("warm-up: no legitimate user could connect: check --addr, --user-prefix, --password")
	}

	// Baseline.
	var base tally
	b.progress.set(func() string { return fmt.Sprintf("baseline: %d legitimate connects", base.ok.Load()) })
	stop, cancel := context.WithTimeout(ctx, s.duration)
	hb := s.legitLoop(ctx, stop, b, "db", &base)
	cancel()
	if err := ctx.Err(); err != nil {
		return err
	}

	// Flood, and the legitimate clients again once it is under way.
	var flood tally
	var floodAccepted atomic.Uint64
	var legit tally
	floodStop, stopFlood := context.WithCancel(ctx)
	defer stopFlood()
	var wg sync.WaitGroup
	floodStart := time.Now()
	for k := range s.flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := k; floodStop.Err() == nil; i += s.flood {
				o := connOpts{
					clientID: b.clientID("df", i),
					username: b.opts.userPrefix + strconv.Itoa(s.floodOffset+i%s.floodUsers),
					password: s.wrongPassword,
				}
				// ctx, not floodStop: an attempt under way when the
				// flood stops finishes and is counted.
				c, a := b.connect(ctx, o)
				flood.count(a)
				if c != nil {
					floodAccepted.Add(1)
					c.close()
				}
			}
		}()
	}
	b.progress.set(func() string {
		return fmt.Sprintf("flood: %d wrong passwords refused (%.0f/s), %d legitimate connects", flood.refused.Load(),
			float64(flood.refused.Load())/time.Since(floodStart).Seconds(), legit.ok.Load())
	})
	// Let the flood fill the broker's queues before measuring.
	select {
	case <-ctx.Done():
	case <-time.After(min(time.Second, s.duration/4)):
	}
	broker, self := b.brokerMeter(), startMeter(0)
	stop, cancel = context.WithTimeout(ctx, s.duration)
	hf := s.legitLoop(ctx, stop, b, "dl", &legit)
	cancel()
	// Stop the meters with the measured phase; their figures go last in
	// the table.
	var brokerUse procUsage
	if broker != nil {
		brokerUse = broker.stop()
	}
	selfUse := self.stop()
	stopFlood()
	wg.Wait()
	floodWall := time.Since(floodStart)

	attempts := flood.ok.Load() + flood.refused.Load() + flood.errors.Load()
	r.add("baseline_connects", "", float64(base.ok.Load()))
	r.add("baseline_p50_ms", "ms", ms(hb.quantile(0.50)))
	r.add("baseline_p99_ms", "ms", ms(hb.quantile(0.99)))
	r.add("flood_connects", "", float64(legit.ok.Load()))
	r.add("flood_p50_ms", "ms", ms(hf.quantile(0.50)))
	r.add("flood_p99_ms", "ms", ms(hf.quantile(0.99)))
	r.add("p99_flood_over_baseline", "x", ms(hf.quantile(0.99))/ms(hb.quantile(0.99)))
	r.add("legit_refused", "", float64(base.refused.Load()+legit.refused.Load()))
	r.add("legit_failed", "", float64(base.errors.Load()+legit.errors.Load()))
	r.add("wrong_attempts", "", float64(attempts))
	r.add("wrong_refused", "", float64(flood.refused.Load()))
	r.add("wrong_accepted", "", float64(floodAccepted.Load()))
	r.add("wrong_failed", "", float64(flood.errors.Load()))
	r.add("wrong_per_s", "1/s", float64(attempts)/floodWall.Seconds())
	if broker != nil {
		r.addUsage("broker", brokerUse, "", 0)
	}
	r.addUsage("client", selfUse, "", 0)
	flood.into(r, "flood")
	base.into(r, "baseline")
	legit.into(r, "legitimate clients during the flood")
	if n := floodAccepted.Load(); n > 0 {
		r.note("%d wrong-password CONNECTs were ACCEPTED: is the broker checking passwords at all?", n)
	}
	return ctx.Err()
}
