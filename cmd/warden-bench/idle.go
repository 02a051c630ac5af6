package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// idleScenario: --clients clients connect (--concurrency at a time, MQTT
// 5, keep alive --keepalive) and stay connected without a word for
// --idle; it measures the broker's resident memory per connected client,
// (RSS with all connected - RSS before) / clients, and how long the
// connects took.
//
// A device fleet is mostly idle connections, so this is the figure that
// decides how many devices fit on a machine. The clients are bare
// sockets (rawmqtt.go): a CONNECT, the CONNACK, then nothing but a
// PINGREQ every half keep alive from one goroutine for all of them, so
// 10,000 of them cost this process a few megabytes and the broker
// measured beside it on the same machine is not starved. Each needs a
// file descriptor here and one in the broker: check refuses more clients
// than this process's open-file limit allows (Go raises the soft limit
// to the hard one at start; see openFileLimit).
type idleScenario struct {
	clients     int
	concurrency int
	idle        time.Duration
	keepAlive   time.Duration
}

func (s *idleScenario) flags(fs *flag.FlagSet) {
	fs.IntVar(&s.clients, "clients", 10000, "number of clients connected and left idle")
	fs.IntVar(&s.concurrency, "concurrency", 32, "CONNECTs under way at a time")
	fs.DurationVar(&s.idle, "idle", 5*time.Second, "how long the clients stay idle before the broker's memory is read")
	fs.DurationVar(&s.keepAlive, "keepalive", 60*time.Second, "keep alive the clients announce (whole seconds, up to 65535 s); each sends a PINGREQ every half of it")
}

// fdReserve is the file descriptors kept for everything but the idle
// clients (the Go runtime, stdio, /proc reads).
const fdReserve = 32

func (s *idleScenario) check(*options) error {
	var errs []error
	if s.clients < 1 || s.concurrency < 1 {
		errs = append(errs, errors.New("--clients and --concurrency must be at least 1"))
	}
	if s.idle < 0 {
		errs = append(errs, errors.New("--idle must not be negative"))
	}
	if s.keepAlive < time.Second || s.keepAlive > 65535*time.Second {
		errs = append(errs, errors.New("--keepalive must be from 1s to 65535s"))
	}
	if limit, ok := openFileLimit(); ok && uint64(s.clients)+fdReserve > limit {
		errs = append(errs, fmt.Errorf("--clients %d needs %d open files and the limit is %d: raise it (ulimit -n; the broker needs as many)",
			s.clients, s.clients+fdReserve, limit))
	}
	return errors.Join(errs...)
}

func (s *idleScenario) run(ctx context.Context, b *bench, r *Result) error {
	conns := make([]net.Conn, s.clients)
	defer func() {
		forEach(context.Background(), len(conns), 64, func(_, i int) {
			if c := conns[i]; c != nil {
				_ = c.SetWriteDeadline(time.Now().Add(time.Second))
				_, _ = c.Write(disconnectPacket)
				_ = c.Close()
			}
		})
	}()

	var before procSample
	if b.opts.brokerPID != 0 {
		var err error
		if before, err = readProc(b.opts.brokerPID); err != nil {
			r.note("broker: /proc not readable, memory figures missing: %v", err)
			b.opts.brokerPID = 0
		}
	}
	var t tally
	b.progress.set(func() string {
		return fmt.Sprintf("connecting: %d/%d, %d refused, %d failed", t.ok.Load(), s.clients, t.refused.Load(), t.errors.Load())
	})
	keepAlive := uint16(s.keepAlive / time.Second)
	lat := make([]histogram, s.concurrency)
	broker, self := b.brokerMeter(), startMeter(0)
	start := time.Now()
	forEach(ctx, s.clients, s.concurrency, func(w, i int) {
		// 16 bytes, bufio's least: the CONNACK is read through it and
		// dropped with it, nothing is read after.
		c, a := b.rawConnect(ctx, b.legit("i", i), keepAlive, 16)
		t.count(a)
		if c != nil {
			lat[w].record(a.latency)
			conns[i] = c.Conn
		}
	})
	wall := time.Since(start)
	if err := ctx.Err(); err != nil {
		return err
	}
	connected := int(t.ok.Load())
	var h histogram
	for i := range lat {
		h.merge(&lat[i])
	}
	r.add("clients", "", float64(s.clients))
	r.add("connected", "", float64(connected))
	r.add("refused", "", float64(t.refused.Load()))
	r.add("failed", "", float64(t.errors.Load()))
	r.add("connect_s", "s", wall.Seconds())
	r.add("connects_per_s", "1/s", float64(connected)/wall.Seconds())
	r.add("connect_p50_ms", "ms", ms(h.quantile(0.50)))
	r.add("connect_p99_ms", "ms", ms(h.quantile(0.99)))
	b.addUsage(r, broker, self, "connect", float64(connected))
	t.into(r, "connect")
	if connected == 0 {
		return errors.New("no client could connect: check --addr, --user-prefix, --password")
	}

	// Idle: nothing but keep-alive pings, all from this goroutine.
	b.progress.set(func() string { return fmt.Sprintf("%d clients connected and idle", connected) })
	idleBroker := b.brokerMeter()
	idleSelf := startMeter(0)
	pingEvery := s.keepAlive / 2
	idleEnd := time.After(s.idle)
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
wait:
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-idleEnd:
			break wait
		case <-ping.C:
			forEach(ctx, len(conns), 8, func(_, i int) {
				c := conns[i]
				if c == nil {
					return
				}
				_ = c.SetWriteDeadline(time.Now().Add(b.opts.connectTimeout))
				_, _ = c.Write(pingreqPacket)
			})
		}
	}
	if idleBroker != nil {
		u := idleBroker.stop()
		if u.err == nil {
			r.add("broker_idle_cpu_pct", "%", 100*u.cpu.Seconds()/u.wall.Seconds())
		}
		if after, err := readProc(b.opts.brokerPID); err == nil {
			r.add("broker_rss_idle_mib", "MiB", float64(after.rssKiB)/1024)
			r.add("broker_rss_per_client_kib", "KiB", float64(after.rssKiB-before.rssKiB)/float64(connected))
		}
	}
	if u := idleSelf.stop(); u.err == nil {
		r.add("client_rss_mib", "MiB", float64(u.rssKiB)/1024)
	}
	// Were they all still connected? A PINGREQ each, and its PINGRESP
	// (after any answers to the keep-alive pings, also PINGRESPs).
	b.progress.set(func() string { return "checking that every client is still connected" })
	var alive atomic.Int64
	forEach(ctx, len(conns), 64, func(_, i int) {
		c := conns[i]
		if c == nil {
			return
		}
		_ = c.SetDeadline(time.Now().Add(b.opts.connectTimeout))
		var resp [2]byte
		if _, err := c.Write(pingreqPacket); err == nil {
			if _, err := io.ReadFull(c, resp[:]); err == nil && resp[0]>>4 == pktPingresp {
				alive.Add(1)
			}
		}
		_ = c.SetDeadline(time.Time{})
	})
	r.add("still_connected", "", float64(alive.Load()))
	if n := int64(connected) - alive.Load(); n > 0 {
		r.note("%d of %d clients did not answer a PINGREQ after the idle phase (disconnected by the broker?)", n, connected)
	}
	if connected < s.clients {
		r.note("%d of %d clients could not connect; the memory per client is over the %d that did", s.clients-connected, s.clients, connected)
	}
	return ctx.Err()
}
