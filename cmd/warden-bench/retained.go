package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"
)

// retainedScenario: one publisher stores --messages retained messages,
// each on its own topic ROOT/r/TAG/G/N (G = n/100, N = n%100: a tree of
// devices with a hundred topics each), then one subscriber subscribes to
// ROOT/r/TAG/# and receives them all. It measures the time to store them,
// the broker's memory after storing them, the time until the subscriber
// has them all, and (with --broker-pid) the broker's CPU time per stored
// and per delivered retained message. At the end the publisher clears
// them (an empty retained message on each topic), so a broker that runs
// several rounds starts each with an empty store.
//
// Both clients are bare sockets (rawmqtt.go). The publisher writes the
// messages at QoS 0 as fast as the socket takes them, then one QoS 1
// PUBLISH (not retained) whose PUBACK marks the end: a broker handles one
// connection's packets in order, so the PUBACK comes after every message
// before it has been stored. The subscription is QoS 0, so what is
// measured is the broker's own cost of walking its store and writing;
// messages it drops on the way (a full per-client write queue) are
// counted as lost. The subscriber waits up to --first-wait for the first
// message (a broker may gather every match before it sends one), then
// gives up once none has come for --drain.
type retainedScenario struct {
	messages  int
	payload   int
	firstWait time.Duration
	drain     time.Duration
	topicRoot string
	keep      bool
}

func (s *retainedScenario) flags(fs *flag.FlagSet) {
	fs.IntVar(&s.messages, "messages", 100000, "number of retained messages stored, each on its own topic")
	fs.IntVar(&s.payload, "payload", 100, "payload size in bytes")
	fs.DurationVar(&s.firstWait, "first-wait", 60*time.Second, "how long the subscriber waits for the first retained message")
	fs.DurationVar(&s.drain, "drain", 5*time.Second, "stop waiting for retained messages after none has come for this long")
	fs.StringVar(&s.topicRoot, "topic-root", "bench", "first topic level: the users need read and write permission on ROOT/#")
	fs.BoolVar(&s.keep, "keep", false, "leave the retained messages on the broker at the end (default: clear them)")
}

func (s *retainedScenario) check(*options) error {
	var errs []error
	if s.messages < 1 {
		errs = append(errs, errors.New("--messages must be at least 1"))
	}
	if s.payload < 1 || s.payload > 1<<16 {
		errs = append(errs, errors.New("--payload must be from 1 to 65536 bytes (an empty retained message deletes one)"))
	}
	if s.drain <= 0 || s.firstWait <= 0 {
		errs = append(errs, errors.New("--drain and --first-wait must be positive"))
	}
	if s.topicRoot == "" {
		errs = append(errs, errors.New("--topic-root is empty"))
	}
	return errors.Join(errs...)
}

// retainedTopic is the topic of message n under prefix (which ends in /).
func retainedTopic(buf []byte, prefix string, n int) []byte {
	buf = append(buf[:0], prefix...)
	buf = strconv.AppendInt(buf, int64(n/100), 10)
	buf = append(buf, '/')
	return strconv.AppendInt(buf, int64(n%100), 10)
}

func (s *retainedScenario) run(ctx context.Context, b *bench, r *Result) error {
	prefix := s.topicRoot + "/r/" + b.runTag + "/"
	pub, a := b.rawConnect(ctx, b.legit("rpub", 0), 60, 4096)
	if pub == nil {
		var t tally
		t.count(a)
		t.into(r, "publisher")
		return fmt.Errorf("the publisher could not connect (CONNACK 0x%02x, %v): check --addr, --user-prefix, --password", a.code, a.err)
	}
	defer pub.close()
	stop := context.AfterFunc(ctx, func() { _ = pub.SetDeadline(time.Now()) })
	defer stop()

	var before procSample
	if b.opts.brokerPID != 0 {
		before, _ = readProc(b.opts.brokerPID)
	}
	payload := bytes.Repeat([]byte{'r'}, s.payload)
	var sent atomic.Int64
	b.progress.set(func() string { return fmt.Sprintf("storing: %d/%d retained messages written", sent.Load(), s.messages) })
	broker, self := b.brokerMeter(), startMeter(0)
	start := time.Now()
	if err := s.publishAll(pub, prefix, payload, &sent); err != nil {
		return fmt.Errorf("storing the retained messages: %w", err)
	}
	store := time.Since(start)
	r.add("messages", "", float64(s.messages))
	r.add("store_s", "s", store.Seconds())
	r.add("stores_per_s", "1/s", float64(s.messages)/store.Seconds())
	b.addUsage(r, broker, self, "store", float64(s.messages))
	if b.opts.brokerPID != 0 {
		if after, err := readProc(b.opts.brokerPID); err == nil {
			r.add("broker_rss_retained_mib", "MiB", float64(after.rssKiB)/1024)
			r.add("broker_rss_per_retained_b", "B", float64(after.rssKiB-before.rssKiB)*1024/float64(s.messages))
		}
	}

	// The subscriber: every retained message under the prefix, at QoS 0.
	sub, a := b.rawConnect(ctx, b.legit("rsub", 1), 60, 64<<10)
	if sub == nil {
		return fmt.Errorf("the subscriber could not connect (CONNACK 0x%02x, %v)", a.code, a.err)
	}
	stopSub := context.AfterFunc(ctx, func() { _ = sub.SetDeadline(time.Now()) })
	defer stopSub()
	subOpen := true
	closeSub := func() {
		if subOpen {
			subOpen = false
			sub.close()
		}
	}
	defer closeSub()
	var received atomic.Int64
	b.progress.set(func() string { return fmt.Sprintf("receiving: %d/%d retained messages", received.Load(), s.messages) })
	broker = b.brokerMeter()
	start = time.Now()
	got, first, last, others, err := s.receiveAll(sub, prefix, &received)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("receiving the retained messages: %w", err)
	}
	receive := last.Sub(start)
	r.add("received", "", float64(got))
	r.add("lost", "", float64(max(s.messages-got, 0)))
	r.add("receive_s", "s", receive.Seconds())
	if got > 0 {
		r.add("first_retained_ms", "ms", ms(first.Sub(start)))
	}
	r.add("retained_per_s", "1/s", float64(got)/receive.Seconds())
	if broker != nil {
		u := broker.stop()
		if u.err == nil && got > 0 {
			// The drain wait after the last message is idle time: the CPU
			// figure is per message received.
			r.add("broker_cpu_us_per_retained", "µs", float64(u.cpu.Microseconds())/float64(got))
		}
	}
	if got < s.messages {
		r.note("the subscriber received %d of %d retained messages (none came for --first-wait %s, or for --drain %s after the last): the broker dropped the rest (a full write queue for the client?)",
			got, s.messages, s.firstWait, s.drain)
	}
	if got > s.messages {
		r.note("the subscriber received %d retained messages for %d topics", got, s.messages)
	}
	if others > 0 {
		r.note("the subscriber also received %d messages that were not retained ones of this run", others)
	}

	// Gone before the clearing, which would otherwise reach it too.
	closeSub()
	if s.keep {
		return ctx.Err()
	}
	b.progress.set(func() string { return fmt.Sprintf("clearing: %d/%d", sent.Load(), s.messages) })
	sent.Store(0)
	start = time.Now()
	if err := s.publishAll(pub, prefix, nil, &sent); err != nil {
		return fmt.Errorf("clearing the retained messages: %w", err)
	}
	r.add("clear_s", "s", time.Since(start).Seconds())
	return ctx.Err()
}

// publishAll writes one retained message (an empty one clears it) on each
// topic at QoS 0, through a buffer, then a QoS 1 PUBLISH on
// PREFIX/end (not retained) and waits for its PUBACK.
func (s *retainedScenario) publishAll(c *rawConn, prefix string, payload []byte, sent *atomic.Int64) error {
	w := bufio.NewWriterSize(c, 64<<10)
	var topic, pkt []byte
	for n := range s.messages {
		topic = retainedTopic(topic, prefix, n)
		pkt = appendPublish(pkt[:0], string(topic), payload, 0, true, 0)
		if _, err := w.Write(pkt); err != nil {
			return err
		}
		sent.Add(1)
	}
	const endID = 1
	if _, err := w.Write(appendPublish(pkt[:0], prefix+"end", []byte("end"), 1, false, endID)); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	var buf []byte
	for {
		first, body, err := readPacket(c.r, buf)
		if err != nil {
			return fmt.Errorf("waiting for the PUBACK of the last message: %w", err)
		}
		buf = body
		if first>>4 != pktPuback || len(body) < 2 || int(body[0])<<8|int(body[1]) != endID {
			continue
		}
		if code, _ := ackReason(pktPuback, body); code >= 0x80 {
			return fmt.Errorf("the broker refused a publish on %send (PUBACK 0x%02x): the users need write permission on %s/#", prefix, code, s.topicRoot)
		}
		return nil
	}
}

// receiveAll subscribes to PREFIX# and counts the retained messages under
// the prefix until it has s.messages of them, or none comes for
// s.firstWait (the first) or s.drain (the others). It returns how many
// it counted, when the first and the last came, and how many other
// messages it saw.
func (s *retainedScenario) receiveAll(c *rawConn, prefix string, received *atomic.Int64) (got int, first, last time.Time, others int, err error) {
	filter := prefix + "#"
	if _, err := c.Write(subscribePacket(1, filter, 0)); err != nil {
		return 0, first, last, 0, err
	}
	last = time.Now()
	pfx := []byte(prefix)
	var buf []byte
	defer func() { _ = c.SetReadDeadline(time.Time{}) }()
	for got < s.messages {
		wait := s.drain
		if got == 0 {
			wait = s.firstWait
		}
		_ = c.SetReadDeadline(time.Now().Add(wait))
		b0, body, err := readPacket(c.r, buf)
		if err != nil {
			if isTimeout(err) {
				return got, first, last, others, nil
			}
			return got, first, last, others, err
		}
		buf = body
		switch b0 >> 4 {
		case pktSuback:
			code, err := ackReason(pktSuback, body)
			if err != nil {
				return got, first, last, others, err
			}
			if code >= 0x80 {
				return got, first, last, others, fmt.Errorf("subscription to %s refused (SUBACK 0x%02x): the users need read permission on %s/#", filter, code, s.topicRoot)
			}
		case pktPublish:
			topic, err := publishTopic(body)
			if err != nil {
				return got, first, last, others, err
			}
			if b0&0x01 == 0 || !bytes.HasPrefix(topic, pfx) {
				others++
				continue
			}
			got++
			received.Store(int64(got))
			last = time.Now()
			if got == 1 {
				first = last
			}
		}
	}
	return got, first, last, others, nil
}
