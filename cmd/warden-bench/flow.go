package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// flowScenario is both pubsub and fanout: publishers send sequenced,
// timestamped messages for --duration; subscribers check every one.
//
//	pubsub: publisher i sends on ROOT/TAG/p/i; each subscriber subscribes
//	        to ROOT/TAG/p/+, so it receives every publisher's messages.
//	fanout: one publisher sends on ROOT/TAG/f/a/b/c; each subscriber
//	        subscribes to ROOT/TAG/f/#.
//
// TAG is the run's random tag, so runs never see each other's messages.
// Every payload starts with a header (run magic, publisher number,
// sequence number, send time), so a subscriber measures the end-to-end
// latency and records which sequence numbers it received. At QoS 1 a
// message counts as lost when the broker acknowledged it (PUBACK below
// 0x80) and a subscriber never received it; at QoS 0, when it was sent
// and not received.
type flowScenario struct {
	fanout      bool
	publishers  int
	subscribers int
	qos         int
	payload     int
	duration    time.Duration
	rate        float64
	inflight    int
	drain       time.Duration
	topicRoot   string
}

// headerLen is the size of the payload header: magic (4), publisher
// (4), sequence (8), send time in Unix nanoseconds (8).
const headerLen = 24

func (s *flowScenario) flags(fs *flag.FlagSet) {
	if !s.fanout {
		fs.IntVar(&s.publishers, "publishers", 4, "number of publishing clients")
		fs.IntVar(&s.subscribers, "subscribers", 4, "number of subscribing clients (each receives every publisher's messages)")
	} else {
		fs.IntVar(&s.subscribers, "subscribers", 50, "number of subscribing clients, each on a wildcard subscription")
	}
	fs.IntVar(&s.qos, "qos", 0, "QoS of publishes and subscriptions: 0 or 1")
	fs.IntVar(&s.payload, "payload", 100, "payload size in bytes (at least 24: the header with sequence number and timestamp)")
	fs.DurationVar(&s.duration, "duration", 10*time.Second, "how long the publishers publish")
	fs.Float64Var(&s.rate, "rate", 0, "messages per second per publisher (0: as fast as the broker takes them)")
	fs.IntVar(&s.inflight, "inflight", 16, "QoS 1 publishes awaiting their PUBACK per publisher (also capped by the broker's Receive Maximum)")
	fs.DurationVar(&s.drain, "drain", 10*time.Second, "after publishing, wait at most this long for messages still on their way")
	fs.StringVar(&s.topicRoot, "topic-root", "bench", "first topic level: the users need read and write permission on ROOT/#")
}

func (s *flowScenario) check(*options) error {
	if s.fanout {
		s.publishers = 1
	}
	var errs []error
	if s.publishers < 1 || s.subscribers < 1 {
		errs = append(errs, errors.New("--publishers and --subscribers must be at least 1"))
	}
	if s.qos != 0 && s.qos != 1 {
		errs = append(errs, errors.New("--qos must be 0 or 1"))
	}
	if s.payload < headerLen {
		errs = append(errs, fmt.Errorf("--payload must be at least %d bytes", headerLen))
	}
	if s.duration <= 0 || s.drain < 0 || s.rate < 0 || s.inflight < 1 {
		errs = append(errs, errors.New("--duration and --inflight must be positive, --drain and --rate not negative"))
	}
	return errors.Join(errs...)
}

// subscriber is one receiving client and what it saw.
type subscriber struct {
	c *client

	delivered atomic.Uint64 // distinct messages of this run received
	lastAt    atomic.Int64  // Unix nanoseconds of the last one

	mu      sync.Mutex // the receive handler vs the final count
	lat     histogram
	got     []seqSet // per publisher
	dups    uint64
	foreign uint64 // not from this run, or too short to carry a header
}

// receive handles one message; paho calls it on the client's routing
// goroutine, one at a time.
func (sub *subscriber) receive(magic uint32, p *paho.Publish) {
	now := time.Now()
	sub.mu.Lock()
	defer sub.mu.Unlock()
	b := p.Payload
	if len(b) < headerLen || binary.LittleEndian.Uint32(b) != magic {
		sub.foreign++
		return
	}
	pub := binary.LittleEndian.Uint32(b[4:])
	seq := binary.LittleEndian.Uint64(b[8:])
	sent := int64(binary.LittleEndian.Uint64(b[16:]))
	if int(pub) >= len(sub.got) {
		sub.foreign++
		return
	}
	if !sub.got[pub].add(seq) {
		sub.dups++
		return
	}
	sub.lat.record(now.Sub(time.Unix(0, sent)))
	sub.delivered.Add(1)
	sub.lastAt.Store(now.UnixNano())
}

// publisher is one sending client and what the broker acknowledged.
type publisher struct {
	c     *client
	topic string
	next  atomic.Uint64 // the next sequence number

	sent   atomic.Uint64 // publishes written (QoS 0) or acknowledged or refused (QoS 1)
	errors atomic.Uint64 // QoS 1 publishes without a PUBACK (timeout, connection lost); QoS 0: the connection failed
	nacked atomic.Uint64 // QoS 1 PUBACKs with a reason code of 0x80 or more

	mu    sync.Mutex
	acked seqSet // QoS 0: every sequence number sent; QoS 1: those acknowledged
}

func (s *flowScenario) run(ctx context.Context, b *bench, r *Result) error {
	kind, filter := "p", s.topicRoot+"/"+b.runTag+"/p/+"
	if s.fanout {
		kind, filter = "f", s.topicRoot+"/"+b.runTag+"/f/#"
	}
	magic := binary.LittleEndian.Uint32([]byte(b.runTag + "\x00\x00\x00\x00"))

	// Subscribers first, each with its SUBACK, so no message is sent
	// before every subscription is in place.
	subs := make([]*subscriber, s.subscribers)
	pubs := make([]*publisher, s.publishers)
	defer func() {
		var cs []*client
		for _, p := range pubs {
			if p != nil {
				cs = append(cs, p.c)
			}
		}
		for _, sub := range subs {
			if sub != nil {
				cs = append(cs, sub.c)
			}
		}
		closeAll(cs)
	}()
	var setup tally
	b.progress.set(func() string {
		return fmt.Sprintf("connecting: %d/%d clients", setup.ok.Load(), s.subscribers+s.publishers)
	})
	var setupErr error
	var errOnce sync.Once
	fail := func(err error) { errOnce.Do(func() { setupErr = err }) }
	forEach(ctx, s.subscribers, 16, func(_, j int) {
		sub := &subscriber{got: make([]seqSet, s.publishers)}
		o := b.legit(kind+"sub", j)
		// Receive Maximum 65535 (MQTT's largest): the subscriber never
		// throttles the broker's QoS 1 deliveries.
		o.receiveMax = 65535
		o.onPublish = func(p *paho.Publish) { sub.receive(magic, p) }
		c, a := b.connect(ctx, o)
		setup.count(a)
		if c == nil {
			fail(fmt.Errorf("subscriber %d could not connect: CONNACK 0x%02x, %v", j, a.code, a.err))
			return
		}
		sub.c = c
		subs[j] = sub
		sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: byte(s.qos)}}})
		switch {
		case err != nil && sa == nil:
			fail(fmt.Errorf("subscriber %d: subscribe %s: %v", j, filter, err))
		case len(sa.Reasons) != 1 || sa.Reasons[0] >= 0x80:
			fail(fmt.Errorf("subscriber %d: subscription to %s refused (SUBACK %x): the users need read permission on %s/#", j, filter, sa.Reasons, s.topicRoot))
		}
	})
	forEach(ctx, s.publishers, 16, func(_, i int) {
		topic := s.topicRoot + "/" + b.runTag + "/p/" + strconv.Itoa(i)
		if s.fanout {
			topic = s.topicRoot + "/" + b.runTag + "/f/a/b/c"
		}
		// Publishers use the users after the subscribers', so with
		// enough users no two clients share one.
		c, a := b.connect(ctx, b.legit(kind+"pub", s.subscribers+i))
		setup.count(a)
		if c == nil {
			fail(fmt.Errorf("publisher %d could not connect: CONNACK 0x%02x, %v", i, a.code, a.err))
			return
		}
		pubs[i] = &publisher{c: c, topic: topic}
	})
	if err := ctx.Err(); err != nil {
		return err
	}
	if setupErr != nil {
		setup.into(r, "setup")
		return setupErr
	}

	broker, self := b.brokerMeter(), startMeter(0)
	start := time.Now()
	delivered := func() uint64 {
		var n uint64
		for _, sub := range subs {
			n += sub.delivered.Load()
		}
		return n
	}
	sentTotal := func() uint64 {
		var n uint64
		for _, p := range pubs {
			n += p.sent.Load()
		}
		return n
	}
	b.progress.set(func() string {
		el := time.Since(start).Seconds()
		d := delivered()
		return fmt.Sprintf("publishing: sent %d (%.0f/s), delivered %d (%.0f/s)", sentTotal(), float64(sentTotal())/el, d, float64(d)/el)
	})

	pubCtx, stopPublishing := context.WithTimeout(ctx, s.duration)
	defer stopPublishing()
	var wg sync.WaitGroup
	for i, p := range pubs {
		workers := 1
		if s.qos == 1 {
			workers = s.inflight
		}
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.publish(ctx, pubCtx, p, uint32(i), magic, start)
			}()
		}
	}
	wg.Wait()
	pubEnd := time.Since(start)

	// Drain: stop as soon as every expected message is in; otherwise
	// when nothing arrived for a second, or at --drain.
	var want uint64
	for _, p := range pubs {
		p.mu.Lock()
		want += p.acked.n * uint64(s.subscribers)
		p.mu.Unlock()
	}
	b.progress.set(func() string {
		return fmt.Sprintf("draining: delivered %d of %d expected", delivered(), want)
	})
	deadline := time.Now().Add(s.drain)
	lastN, lastChange := delivered(), time.Now()
	for ctx.Err() == nil && time.Now().Before(deadline) {
		n := delivered()
		if n >= want {
			break
		}
		if n != lastN {
			lastN, lastChange = n, time.Now()
		} else if time.Since(lastChange) > time.Second {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The figures. Lock each subscriber: paho may still be calling it.
	var lat histogram
	var got, dups, foreign, lost, lastAt uint64
	for _, sub := range subs {
		sub.mu.Lock()
		lat.merge(&sub.lat)
		dups += sub.dups
		foreign += sub.foreign
		for i, p := range pubs {
			p.mu.Lock()
			lost += sub.got[i].missing(&p.acked)
			p.mu.Unlock()
			got += sub.got[i].n
		}
		sub.mu.Unlock()
		lastAt = max(lastAt, uint64(sub.lastAt.Load()))
	}
	// Throughput runs from the first publish to the last delivery, so a
	// broker that queues and delivers late is not credited for it.
	span := pubEnd
	if lastAt > 0 {
		span = max(span, time.Unix(0, int64(lastAt)).Sub(start))
	}
	var sent, perrs, nacked, acked uint64
	for _, p := range pubs {
		sent += p.sent.Load()
		perrs += p.errors.Load()
		nacked += p.nacked.Load()
		acked += p.acked.n
	}
	r.add("sent", "msg", float64(sent))
	if s.qos == 1 {
		r.add("acked", "msg", float64(acked))
		r.add("publish_refused", "msg", float64(nacked))
	}
	r.add("publish_failed", "msg", float64(perrs))
	r.add("expected", "msg", float64(want))
	r.add("delivered", "msg", float64(got))
	r.add("lost", "msg", float64(lost))
	r.add("duplicates", "msg", float64(dups))
	r.add("published_per_s", "msg/s", float64(sent)/pubEnd.Seconds())
	r.add("delivered_per_s", "msg/s", float64(got)/span.Seconds())
	r.add("latency_p50_ms", "ms", ms(lat.quantile(0.50)))
	r.add("latency_p99_ms", "ms", ms(lat.quantile(0.99)))
	r.add("latency_max_ms", "ms", ms(lat.max))
	b.addUsage(r, broker, self, "delivery", float64(got))
	if foreign > 0 {
		r.note("%d messages received that this run did not send", foreign)
	}
	if s.qos == 0 && lost > 0 {
		r.note("QoS 0: %d messages sent but not delivered (the broker may drop QoS 0 messages under load)", lost)
	}
	switch {
	case perrs > 0 && s.qos == 1:
		r.note("QoS 1: %d publishes got no PUBACK within --connect-timeout %s: the broker stalled or a connection failed", perrs, b.opts.connectTimeout)
	case perrs > 0:
		r.note("%d publishers lost their connection while publishing", perrs)
	}
	if s.qos == 1 && lost > 0 {
		r.note("QoS 1: %d messages acknowledged by the broker were never delivered", lost)
	}
	return ctx.Err()
}

// publish sends p's messages until pubCtx ends; at QoS 1 several run per
// publisher, each waiting for its own PUBACK. ctx bounds a publish under
// way, so one that is waiting for its PUBACK when the duration ends still
// counts.
func (s *flowScenario) publish(ctx, pubCtx context.Context, p *publisher, index, magic uint32, start time.Time) {
	for pubCtx.Err() == nil {
		seq := p.next.Add(1) - 1
		if s.rate > 0 {
			due := start.Add(time.Duration(float64(seq) / s.rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-pubCtx.Done():
					return
				case <-time.After(d):
				}
			}
		}
		payload := make([]byte, s.payload)
		binary.LittleEndian.PutUint32(payload, magic)
		binary.LittleEndian.PutUint32(payload[4:], index)
		binary.LittleEndian.PutUint64(payload[8:], seq)
		binary.LittleEndian.PutUint64(payload[16:], uint64(time.Now().UnixNano()))
		pr, err := p.c.Publish(ctx, &paho.Publish{Topic: p.topic, QoS: byte(s.qos), Payload: payload})
		switch {
		case s.qos == 0 && err != nil:
			// The connection failed; nothing more can be sent on it.
			p.errors.Add(1)
			return
		case s.qos == 0:
			p.sent.Add(1)
			p.mu.Lock()
			p.acked.add(seq)
			p.mu.Unlock()
		case pr != nil && pr.ReasonCode >= 0x80:
			p.sent.Add(1)
			p.nacked.Add(1)
		case err != nil:
			p.errors.Add(1)
			select {
			case <-p.c.Done():
				return
			default:
			}
		default:
			p.sent.Add(1)
			p.mu.Lock()
			p.acked.add(seq)
			p.mu.Unlock()
		}
	}
}
