package broker

import (
	"bufio"
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/internal/mqtttest"
)

// BenchmarkDeliveryQoS0 measures what the embedded broker (Mochi with the
// allow-all hook: the broker's own cost, not warden's auth) spends per
// delivered QoS 0 message: one publisher, subs subscribers on the topic,
// raw loopback TCP clients that parse only fixed headers (so the client
// side allocates nothing). b.N messages are published in batches; a batch
// is sent only when every subscriber has the previous one, so no message
// is dropped for a full queue and every delivery is counted. Reported:
// ns and allocations per delivery (the broker's and the clients'; the
// clients' reads allocate nothing), and deliveries/s.
//
// go test -run '^$' -bench DeliveryQoS0 -benchmem -cpuprofile cpu.out ./broker
func BenchmarkDeliveryQoS0(b *testing.B) {
	for _, subs := range []int{1, 50} {
		b.Run(map[int]string{1: "1-subscriber", 50: "fanout-50"}[subs], func(b *testing.B) { benchDelivery(b, subs, 0) })
	}
}

// BenchmarkDeliveryQoS1 is BenchmarkDeliveryQoS0 at QoS 1: the publisher
// gets a PUBACK for each message, each subscriber acknowledges each
// delivery (inflight bookkeeping on both sides).
//
// go test -run '^$' -bench DeliveryQoS1 -benchmem ./broker
func BenchmarkDeliveryQoS1(b *testing.B) {
	b.Run("1-subscriber", func(b *testing.B) { benchDelivery(b, 1, 1) })
}

// BenchmarkDeliveryPaced is BenchmarkDeliveryQoS0 below saturation: one
// message at a time to 4 subscribers, each published once all of them
// have the one before, as in bench-compare.sh's fixed-rate case: every
// message costs a read, and a write and a writer goroutine per
// subscriber, with nothing to batch.
//
// go test -run '^$' -bench DeliveryPaced -benchmem ./broker
func BenchmarkDeliveryPaced(b *testing.B) {
	b.ResetTimer()
	d := deliver(b, 4, b.N, 0, 1, b.ResetTimer)
	b.StopTimer()
	reportDeliveries(b, d)
}

func benchDelivery(b *testing.B, subs int, qos byte) {
	b.ResetTimer()
	d := deliver(b, subs, b.N, qos, 200, b.ResetTimer)
	b.StopTimer()
	reportDeliveries(b, d)
}

func reportDeliveries(b *testing.B, d deliveries) {
	b.ReportMetric(float64(d.elapsed.Nanoseconds())/d.count, "ns/delivery")
	b.ReportMetric(d.allocs/d.count, "allocs/delivery")
	b.ReportMetric(d.bytes/d.count, "B/delivery")
	b.ReportMetric(d.count/d.elapsed.Seconds(), "deliveries/s")
}

// deliveries is what deliver measured.
type deliveries struct {
	count, allocs, bytes float64
	elapsed              time.Duration
}

// deliver starts a broker, subscribes subs raw clients to one topic and
// publishes n messages at qos to them in batches of batch (each batch, in
// one write, once every subscriber has the one before), returning the
// count of deliveries and the allocations, bytes and time they took.
// ready is called once the clients are set up, just before the first
// publish.
func deliver(b testing.TB, subs, n int, qos byte, batch int, ready func()) deliveries {
	b.Helper()
	br, err := New(Config{TCPAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)}, &allowHook{})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	if err := br.Start(); err != nil {
		b.Fatal(err)
	}
	addr := br.Addr("tcp")
	// The readers count deliveries and wake the publisher when the count
	// reaches the batch's target: no waiting loop competes with the broker
	// for the CPU.
	var got, target atomic.Int64
	reached := make(chan struct{}, 1)
	var wg sync.WaitGroup
	for i := range subs {
		c, r := rawClient(b, addr, "sub-"+strconv.Itoa(i))
		rawSubscribe(b, c, r, "bench/d", qos)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var body [512]byte
			puback := [4]byte{0x40, 2}
			for {
				first, n, err := readHeader(r)
				if err != nil || n > len(body) {
					return
				}
				if _, err := io.ReadFull(r, body[:n]); err != nil {
					return
				}
				if first&0xf0 != 0x30 {
					continue
				}
				if first&0x06 != 0 { // QoS 1: acknowledge the packet ID after the topic
					tl := int(body[0])<<8 | int(body[1])
					puback[2], puback[3] = body[2+tl], body[3+tl]
					if _, err := c.Write(puback[:]); err != nil {
						return
					}
				}
				if got.Add(1) >= target.Load() {
					select {
					case reached <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
	pub, _ := rawClient(b, addr, "pub")
	go func() { _, _ = io.Copy(io.Discard, pub) }() // the publisher's PUBACKs
	// v5: topic, packet ID at QoS 1, property length 0, 64-byte payload.
	head := mqtttest.String("bench/d")
	if qos == 1 {
		head = append(head, 0, 0)
	}
	msg := mqtttest.Packet(0x30|qos<<1, append(append(head, 0), make([]byte, 64)...))
	idAt := len(msg) - 64 - 3 // the packet ID's offset in msg
	buf := make([]byte, 0, batch*len(msg))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	ready()
	start := time.Now()
	for sent := 0; sent < n; {
		k := min(batch, n-sent)
		buf = buf[:0]
		for j := range k {
			if qos == 1 {
				id := (sent+j)%65535 + 1
				msg[idAt], msg[idAt+1] = byte(id>>8), byte(id)
			}
			buf = append(buf, msg...)
		}
		target.Store(int64((sent + k) * subs))
		if _, err := pub.Write(buf); err != nil {
			b.Fatal(err)
		}
		sent += k
		for got.Load() < target.Load() { // a stale wake-up only makes it look again
			select {
			case <-reached:
			case <-timeout.C:
				b.Fatalf("%d of %d deliveries after 10 s", got.Load(), target.Load())
			}
		}
		timeout.Reset(10 * time.Second)
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	return deliveries{count: float64(n * subs), allocs: float64(after.Mallocs - before.Mallocs),
		bytes: float64(after.TotalAlloc - before.TotalAlloc), elapsed: elapsed}
}

// TestFanoutAllocationsPerDelivery (WARDEN-PATCHES.md patches 14 to 16):
// a QoS 0 message delivered to 50 subscribers costs at most 2
// allocations and 1 KiB per delivery, where Mochi as released spent 7.8
// and 2 KiB (a Packet of 800 bytes per delivery, an encoding buffer per
// packet, a copy of the subscriptions and an identifiers map per
// subscriber per publish).
func TestFanoutAllocationsPerDelivery(t *testing.T) {
	d := deliver(t, 50, 1000, 0, 200, func() {})
	if raceEnabled {
		return // sync.Pool drops items at random under the race detector
	}
	if a, by := d.allocs/d.count, d.bytes/d.count; a > 2 || by > 1024 {
		t.Errorf("fanout 1 -> 50: %.2f allocations and %.0f bytes per delivery, want at most 2 and 1024", a, by)
	}
}

// readHeader reads a fixed header: the first byte and the remaining
// length, allocating nothing.
func readHeader(r *bufio.Reader) (byte, int, error) {
	first, err := r.ReadByte()
	if err != nil {
		return 0, 0, err
	}
	n, mult := 0, 1
	for range 4 {
		c, err := r.ReadByte()
		if err != nil {
			return 0, 0, err
		}
		n += int(c&0x7f) * mult
		if c&0x80 == 0 {
			return first, n, nil
		}
		mult *= 128
	}
	return 0, 0, io.ErrUnexpectedEOF
}
