package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// wire is the client side of one TCP connection. The bench shares a
// 2-core machine with the broker it measures, so its own cost per packet
// matters: reads are buffered (paho reads a packet in several small
// reads), and each packet is sent with one write. paho locks the
// connection around every packet it writes (it treats a net.Conn that is
// a sync.Locker as needing that); wire collects the packet's pieces while
// locked and sends them at Unlock.
type wire struct {
	net.Conn
	r *bufio.Reader

	mu   sync.Mutex
	held bool   // a packet is being written (between Lock and Unlock)
	out  []byte // its bytes so far
	err  error  // the first write error, returned to every later write
}

func newWire(c net.Conn) *wire {
	return &wire{Conn: c, r: bufio.NewReaderSize(c, 16<<10)}
}

// Read reads through the buffer; only paho's reading goroutine calls it.
func (w *wire) Read(p []byte) (int, error) { return w.r.Read(p) }

// Lock starts a packet.
func (w *wire) Lock() {
	w.mu.Lock()
	w.held = true
}

// Write collects a piece of the packet being written, or writes at once
// when called outside Lock/Unlock.
func (w *wire) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if !w.held {
		return w.Conn.Write(p)
	}
	w.out = append(w.out, p...)
	return len(p), nil
}

// Unlock sends the packet collected since Lock.
func (w *wire) Unlock() {
	if len(w.out) > 0 && w.err == nil {
		if _, err := w.Conn.Write(w.out); err != nil {
			w.err = err
		}
	}
	w.out = w.out[:0]
	w.held = false
	w.mu.Unlock()
}

// attempt is the outcome of one CONNECT.
type attempt struct {
	latency time.Duration // from dialing to the CONNACK (or the failure)
	code    byte          // the CONNACK reason code; 0: accepted
	err     error         // a transport failure or timeout, without a CONNACK
}

func (a attempt) ok() bool      { return a.err == nil && a.code < 0x80 }
func (a attempt) refused() bool { return a.code >= 0x80 }

// client is one connected MQTT client.
type client struct {
	*paho.Client
	wire *wire
}

// drop closes the TCP connection without a DISCONNECT, as a network
// failure would: the broker sees the connection end, and the client's
// goroutines stop.
func (c *client) drop() {
	_ = c.wire.Conn.Close()
	<-c.Done()
}

// close sends DISCONNECT and waits for the client to stop.
func (c *client) close() {
	_ = c.Disconnect(&paho.Disconnect{ReasonCode: 0})
}

// connOpts describes one CONNECT.
type connOpts struct {
	clientID string
	username string
	password string
	// receiveMax is the MQTT 5 Receive Maximum the client announces; it
	// also sizes paho's queue of received messages (a pointer per slot,
	// allocated at connect), so clients that only connect keep it small.
	receiveMax uint16
	// onPublish, when set, sees every message received; it runs on the
	// client's routing goroutine, one message at a time.
	onPublish func(*paho.Publish)
}

// connect dials the broker and sends CONNECT (MQTT 5, clean start, no
// session kept after disconnect).
func (b *bench) connect(ctx context.Context, o connOpts) (*client, attempt) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, b.opts.connectTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", b.opts.addr)
	if err != nil {
		return nil, attempt{latency: time.Since(start), err: err}
	}
	w := newWire(nc)
	handler := func(paho.PublishReceived) (bool, error) { return true, nil }
	if o.onPublish != nil {
		handler = func(pr paho.PublishReceived) (bool, error) {
			o.onPublish(pr.Packet)
			return true, nil
		}
	}
	pc := paho.NewClient(paho.ClientConfig{
		Conn:              w,
		PacketTimeout:     b.opts.connectTimeout,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){handler},
	})
	rm := o.receiveMax
	if rm == 0 {
		rm = 16
	}
	cp := &paho.Connect{
		ClientID:   o.clientID,
		KeepAlive:  60,
		CleanStart: true,
		Properties: &paho.ConnectProperties{ReceiveMaximum: &rm},
	}
	if o.username != "" {
		cp.Username, cp.UsernameFlag = o.username, true
	}
	if o.password != "" {
		cp.Password, cp.PasswordFlag = []byte(o.password), true
	}
	ca, err := pc.Connect(ctx, cp)
	a := attempt{latency: time.Since(start)}
	switch {
	case ca != nil && ca.ReasonCode >= 0x80:
		a.code = ca.ReasonCode
		return nil, a
	case err != nil:
		a.err = err
		_ = nc.Close()
		return nil, a
	}
	return &client{Client: pc, wire: w}, a
}

// legit returns the CONNECT options of client i of a scenario: its own
// client ID and user number i modulo --users.
func (b *bench) legit(kind string, i int) connOpts {
	return connOpts{
		clientID: b.clientID(kind, i),
		username: b.user(i),
		password: b.opts.password,
	}
}

// user is the username of client i: --user-prefix and i modulo --users.
func (b *bench) user(i int) string {
	return b.opts.userPrefix + strconv.Itoa(i%b.opts.users)
}

// clientID is unique per run, scenario part and client, so no two
// clients of a run (or of two runs) take over each other's session.
func (b *bench) clientID(kind string, i int) string {
	return fmt.Sprintf("%s%s-%s-%d", b.opts.clientPrefix, b.runTag, kind, i)
}

// tally counts CONNECT outcomes from many goroutines.
type tally struct {
	ok, refused, errors atomic.Uint64

	mu      sync.Mutex
	codes   map[byte]uint64
	lastErr error
}

func (t *tally) count(a attempt) {
	switch {
	case a.ok():
		t.ok.Add(1)
	case a.refused():
		t.refused.Add(1)
		t.mu.Lock()
		if t.codes == nil {
			t.codes = map[byte]uint64{}
		}
		t.codes[a.code]++
		t.mu.Unlock()
	default:
		t.errors.Add(1)
		t.mu.Lock()
		t.lastErr = a.err
		t.mu.Unlock()
	}
}

// into adds the refusal codes and the last transport error to r.
func (t *tally) into(r *Result, what string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for c, n := range t.codes {
		r.refusal(c, n)
	}
	if t.lastErr != nil {
		r.note("%s: %d connects failed without a CONNACK; last error: %v", what, t.errors.Load(), t.lastErr)
	}
}

// forEach runs fn for i in [0, n) on workers goroutines and returns when
// all are done or ctx ends (the calls under way finish first). fn gets
// its worker number, so it can keep per-worker state without locks.
func forEach(ctx context.Context, n, workers int, fn func(worker, i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(w, i)
			}
		}()
	}
	wg.Wait()
}

// closeAll disconnects clients in parallel (nil entries are skipped).
func closeAll(clients []*client) {
	forEach(context.Background(), len(clients), 64, func(_, i int) {
		if c := clients[i]; c != nil {
			c.close()
		}
	})
}
