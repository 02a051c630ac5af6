package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// TLSStater is implemented by a client connection (cl.Net.Conn) that can
// report its TLS state. Both *tls.Conn (the "tls" listener) and this
// package's WebSocket connection (the "ws" listener, plain or WSS) satisfy
// it, so a hook reads client certificates the same way on both:
//
//	if st, ok := cl.Net.Conn.(broker.TLSStater); ok {
//		certs := st.ConnectionState().PeerCertificates
//	}
//
// Over plain WebSocket the state is the zero tls.ConnectionState
// (HandshakeComplete false, no certificates). Mochi completes the TLS
// handshake while reading CONNECT, so the state is final by the time
// OnConnect and OnConnectAuthenticate run.
type TLSStater interface {
	ConnectionState() tls.ConnectionState
}

var (
	_ TLSStater = (*tls.Conn)(nil)
	_ TLSStater = (*wsConn)(nil)
	_ net.Conn  = (*wsConn)(nil)

	_ mqtt.PlainSocket = (*trackedConn)(nil)

	_ listeners.Listener = (*wsListener)(nil)
)

// errNotBinary is returned by wsConn.Read for a text message: MQTT over
// WebSocket uses binary messages only, and the connection must be closed
// otherwise (MQTT 3.1.1 section 6, MQTT 5 section 6).
var errNotBinary = errors.New("broker: websocket message is not binary")

// netListener is Mochi's listener for a net.Listener, with a way to stop
// accepting before Mochi's Close (see Broker.Shutdown).
type netListener struct {
	*listeners.Net
	tracking *trackingListener
	log      *slog.Logger // set by Init
	closing  atomic.Bool  // the broker is stopping: see logEnded
}

// stopAccepting refuses new connections and leaves the accepted ones open.
func (l *netListener) stopAccepting() {
	l.closing.Store(true)
	l.tracking.stopAccepting()
}

// Close is Mochi's (disconnect the listener's clients, then close), with
// the listener marked closing first.
func (l *netListener) Close(closeClients listeners.CloseFn) {
	l.closing.Store(true)
	l.Net.Close(closeClients)
}

// Init keeps the logger Mochi passes (it carries the listener ID) for Serve.
func (l *netListener) Init(log *slog.Logger) error {
	l.log = log
	if l.log == nil {
		l.log = slog.Default()
	}
	return l.Net.Init(log)
}

// Serve is Mochi's accept loop, with the end of each connection logged by
// logEnded: Mochi's own loop logs every error at WARN with an empty
// message, those of connections the server closed itself included.
func (l *netListener) Serve(establish listeners.EstablishFn) {
	l.Net.Serve(func(id string, c net.Conn) error {
		l.ended(c, establish(id, c))
		return nil
	})
}

// ended logs the end of connection c. It is a function of its own so that
// the closure above, below every frame of a connection's goroutine, keeps
// a small frame: an idle client's goroutine then uses little enough stack
// for the runtime to shrink it to 4 KiB (see BenchmarkIdleClients).
//
//go:noinline
func (l *netListener) ended(c net.Conn, err error) {
	logEnded(l.log, "mqtt connection ended", c.RemoteAddr().String(), err, l.closing.Load())
}

// logEnded logs the error that ended an MQTT connection, if any. The
// connections the server ends itself are no warning, whoever ended them
// logged why: a connection the server closed (DisconnectClient on a
// revocation, a session takeover) ends with a read on the closed socket,
// net.ErrClosed; and while the listener is closing (the broker stops), a
// client told "server shutting down" may close its end first, so EOF or a
// reset end it as well. Those are debug lines, and a clean stop logs no
// warning per client. Any other error (the client went away without
// DISCONNECT, a timeout, a refused CONNECT, a protocol error) stays a
// warning. A clean end is logged only while the broker stops, where
// whether a client's read ends with an error or cleanly is a race.
func logEnded(log *slog.Logger, msg, remote string, err error, closing bool) {
	switch {
	case err == nil && !closing:
	case err == nil: // a clean end while the broker stops: one line per connection, as for the others
		log.Debug(msg, "remote", remote)
	case closing || errors.Is(err, net.ErrClosed):
		log.Debug(msg, "remote", remote, "error", err)
	default:
		log.Warn(msg, "remote", remote, "error", err)
	}
}

// listen returns raw when the caller bound the socket already, else binds
// addr.
func listen(id, addr string, raw net.Listener) (net.Listener, error) {
	if raw != nil {
		return raw, nil
	}
	raw, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("broker: listen %s %q: %w", id, addr, err)
	}
	return raw, nil
}

// newNetListener binds addr (or takes raw, already bound) and returns a
// Mochi listener for it: plain TCP, or TLS when tc is not nil. Every
// accepted connection gets the connect deadline and takes a slot of conns
// (see trackingListener).
func newNetListener(id, addr string, raw net.Listener, tc *tls.Config, timeout time.Duration, conns *connLimit) (*netListener, error) {
	raw, err := listen(id, addr, raw)
	if err != nil {
		return nil, err
	}
	tracking := newTrackingListener(raw, timeout, conns)
	var ln net.Listener = tracking
	if tc != nil {
		// The handshake is lazy (first Read, i.e. while Mochi reads CONNECT),
		// so it runs under the deadline set on the raw connection at accept.
		ln = tls.NewListener(ln, tc)
	}
	return &netListener{Net: listeners.NewNet(id, ln), tracking: tracking}, nil
}

// trackingListener wraps a bound net.Listener. On Accept it sets the
// connect deadline on the new connection and remembers it until it is
// closed; Close closes the listener and every connection still open, so a
// server shutdown does not wait for clients that never sent CONNECT (Mochi
// waits for every connection goroutine but only disconnects clients past
// CONNECT). Accept retries transient errors (e.g. EMFILE) with a back-off
// instead of returning them, because Mochi's listeners.Net stops serving for
// good on the first Accept error. A connection beyond the broker-wide
// connection limit is closed at once, before any byte is read from it.
type trackingListener struct {
	net.Listener
	timeout time.Duration
	limit   *connLimit // shared by the broker's listeners

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
	done   chan struct{} // closed by Close; wakes Accept's back-off
}

func newTrackingListener(ln net.Listener, timeout time.Duration, limit *connLimit) *trackingListener {
	return &trackingListener{
		Listener: ln,
		timeout:  timeout,
		limit:    limit,
		conns:    make(map[*trackedConn]struct{}),
		done:     make(chan struct{}),
	}
}

// Accept waits for the next connection, sets its deadline to now + the
// connect timeout and returns it wrapped so that its Close is tracked.
func (l *trackingListener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || l.isClosed() {
				return nil, err
			}
			// Transient failure (descriptor exhaustion, aborted handshake,
			// ...): back off as net/http does, up to 1 s.
			if delay == 0 {
				delay = 5 * time.Millisecond
			} else if delay *= 2; delay > time.Second {
				delay = time.Second
			}
			select {
			case <-time.After(delay):
				continue
			case <-l.done:
				return nil, net.ErrClosed
			}
		}
		delay = 0
		if !l.limit.acquire() {
			_ = c.Close()
			continue
		}
		_ = c.SetDeadline(time.Now().Add(l.timeout))
		tc := &trackedConn{Conn: c, l: l}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			_ = tc.Close()
			return nil, net.ErrClosed
		}
		l.conns[tc] = struct{}{}
		l.mu.Unlock()
		return tc, nil
	}
}

func (l *trackingListener) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// Close stops accepting and closes every accepted connection that is still
// open. It is idempotent.
func (l *trackingListener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.done)
	conns := l.conns
	l.conns = nil
	l.mu.Unlock()

	err := l.Listener.Close()
	for c := range conns {
		_ = c.Close()
	}
	if errors.Is(err, net.ErrClosed) {
		err = nil // closed already by stopAccepting
	}
	return err
}

// stopAccepting closes the listening socket, so new connections are
// refused, but leaves the accepted ones open: a graceful shutdown tells
// connected clients why before Close cuts them. Accept then returns
// net.ErrClosed, which ends Mochi's accept loop.
func (l *trackingListener) stopAccepting() {
	_ = l.Listener.Close()
}

func (l *trackingListener) forget(c *trackedConn) {
	l.mu.Lock()
	delete(l.conns, c) // no-op on the nil map after Close
	l.mu.Unlock()
}

// trackedConn is an accepted connection that leaves its listener's set, and
// gives back its connection slot, when closed. Everything else is the
// underlying connection's.
type trackedConn struct {
	net.Conn
	l    *trackingListener
	once sync.Once
}

// PlainSocket is the accepted connection, which this one reads unchanged:
// Mochi reads a plain TCP client's packets straight from the socket and
// holds no read buffer while the client is idle (mqtt.PlainSocket).
func (c *trackedConn) PlainSocket() net.Conn { return c.Conn }

// Close closes the connection and forgets it.
func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.forget(c)
		c.l.limit.release()
	})
	return err
}

// wsListener is a Mochi listener serving MQTT over WebSocket (or WSS) on a
// net.Listener bound by newWSListener. Unlike Mochi's own listeners.Websocket
// it binds before Serve (so port 0 and bind errors are known in New), applies
// the connect deadline, and gives hooks the TLS state through TLSStater.
type wsListener struct {
	id       string
	ln       net.Listener // tracking listener, wrapped by tls.NewListener for WSS
	tracking *trackingListener
	secure   bool
	timeout  time.Duration
	srv      *http.Server

	upgrader websocket.Upgrader

	log       *slog.Logger
	establish listeners.EstablishFn // set by Serve before the HTTP server starts

	closeOnce sync.Once
	closing   atomic.Bool
}

// acceptedAtKey is the request-context key holding the time a connection
// was accepted.
type acceptedAtKey struct{}

// newWSListener binds addr (or takes raw, already bound) and returns the
// WebSocket listener for it: WSS when tc is not nil.
func newWSListener(id, addr string, raw net.Listener, tc *tls.Config, timeout time.Duration, conns *connLimit, origins []string) (*wsListener, error) {
	raw, err := listen(id, addr, raw)
	if err != nil {
		return nil, err
	}
	tracking := newTrackingListener(raw, timeout, conns)
	var ln net.Listener = tracking
	if tc != nil {
		tc = tc.Clone()
		// WebSocket needs HTTP/1.1; never negotiate h2 even if the shared
		// config offers it.
		tc.NextProtos = []string{"http/1.1"}
		ln = tls.NewListener(ln, tc)
	}
	allowed := normalizeOrigins(origins)
	return &wsListener{
		id:       id,
		ln:       ln,
		tracking: tracking,
		secure:   tc != nil,
		timeout:  timeout,
		upgrader: websocket.Upgrader{
			Subprotocols: []string{"mqtt"},
			// A browser page of another site must not reach the broker
			// through a visitor's browser, which may sit inside the plant
			// network or present a client certificate: only listed origins
			// (and clients that send no Origin, i.e. not browsers) pass.
			// gorilla answers 403 before upgrading otherwise.
			CheckOrigin: func(r *http.Request) bool { return originAllowed(allowed, r) },
		},
		log: slog.Default(),
	}, nil
}

// ID returns the listener ID.
func (l *wsListener) ID() string { return l.id }

// Address returns the bound address.
func (l *wsListener) Address() string { return l.ln.Addr().String() }

// Protocol returns "wss" or "ws".
func (l *wsListener) Protocol() string {
	if l.secure {
		return "wss"
	}
	return "ws"
}

// Init prepares the HTTP server; the socket is already bound. Mochi passes
// a logger that already carries the listener ID.
func (l *wsListener) Init(log *slog.Logger) error {
	if log != nil {
		l.log = log
	}
	l.srv = &http.Server{
		Handler: l,
		// Bounds the WSS handshake (net/http uses it as the TLS handshake
		// timeout) and the upgrade request's headers.
		ReadHeaderTimeout: l.timeout,
		// net/http clears the deadlines after answering a request and
		// waits for the next one for IdleTimeout, with none set for ever:
		// a refused upgrade (403 Origin, 400 not an upgrade) would hold
		// its socket, and a --mqtt-max-connections slot, until the client
		// closed it. Keep-alives are off (below), so this only bounds what
		// net/http might still wait for.
		IdleTimeout: l.timeout,
		// The upgrade request is read before any authentication.
		MaxHeaderBytes: wsMaxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(l.log.Handler(), slog.LevelWarn),
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, acceptedAtKey{}, time.Now())
		},
		// A non-nil empty map disables HTTP/2.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	// Every request is either upgraded (hijacked: net/http lets go of the
	// connection) or refused; a refused one gets "Connection: close" and
	// its socket is closed, instead of waiting for another request.
	l.srv.SetKeepAlivesEnabled(false)
	return nil
}

// Serve serves WebSocket upgrades until Close, handing each upgraded
// connection to establish.
func (l *wsListener) Serve(establish listeners.EstablishFn) {
	l.establish = establish
	err := l.srv.Serve(l.ln)
	if err != nil && !errors.Is(err, http.ErrServerClosed) && !l.closing.Load() {
		l.log.Error("websocket listener stopped", "error", err)
	}
}

// ServeHTTP upgrades the request (any path) and runs the MQTT connection on
// it until it ends.
func (l *wsListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := l.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered with an HTTP error
	}
	// net/http cleared the connection's deadlines when hijacking it: set the
	// connect deadline again, counted from accept.
	start, ok := r.Context().Value(acceptedAtKey{}).(time.Time)
	if !ok {
		start = time.Now()
	}
	var state tls.ConnectionState
	if r.TLS != nil {
		state = *r.TLS
	}
	c := newWSConn(ws, state)
	_ = c.SetDeadline(start.Add(l.timeout))

	err = l.establish(l.id, c)
	logEnded(l.log, "websocket connection ended", r.RemoteAddr, err, l.closing.Load())
	_ = c.Close()
}

// stopAccepting refuses new connections (WebSocket upgrades included) and
// leaves the accepted ones open, for Broker.Shutdown.
func (l *wsListener) stopAccepting() {
	l.closing.Store(true) // the HTTP server's Serve ends with an error: expected
	l.tracking.stopAccepting()
}

// Close disconnects the listener's clients (closeClients), then stops the
// HTTP server and closes every connection accepted by it, upgraded or not.
func (l *wsListener) Close(closeClients listeners.CloseFn) {
	l.closeOnce.Do(func() {
		l.closing.Store(true)
		closeClients(l.id)
		if l.srv != nil {
			_ = l.srv.Close()
		}
		_ = l.ln.Close() // when Serve never ran; closes tracked (hijacked) conns
	})
}

// wsConn adapts a WebSocket connection to net.Conn for Mochi: Read returns
// the payload of binary messages as one byte stream (an MQTT packet may span
// messages and a message may hold several packets), each Write sends one
// binary message. The embedded net.Conn is the underlying connection
// (*tls.Conn for WSS) and provides the addresses and deadlines.
type wsConn struct {
	net.Conn
	ws    *websocket.Conn
	state tls.ConnectionState

	r io.Reader // current message; used by the single reader only

	wmu sync.Mutex   // serialises writes (gorilla allows one writer)
	wdl atomic.Int64 // write deadline in Unix ns; 0 = none
}

func newWSConn(ws *websocket.Conn, state tls.ConnectionState) *wsConn {
	return &wsConn{Conn: ws.UnderlyingConn(), ws: ws, state: state}
}

// ConnectionState returns the TLS state of a WSS connection, the zero value
// for plain WebSocket.
func (c *wsConn) ConnectionState() tls.ConnectionState {
	return c.state
}

// Read reads from the current binary message, moving to the next message
// when it is exhausted. A text message is an error.
func (c *wsConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				return 0, errNotBinary
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if err != nil {
			// io.EOF ends this message; any other error ends the stream
			// (gorilla's reader errors are permanent).
			c.r = nil
			if errors.Is(err, io.EOF) {
				err = nil
			}
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
}

// Write sends p as one binary message.
func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	// gorilla sets the socket's write deadline to its own value on every
	// write: hand it the deadline last set through SetDeadline or
	// SetWriteDeadline (Mochi's keepalive deadline).
	var dl time.Time
	if ns := c.wdl.Load(); ns != 0 {
		dl = time.Unix(0, ns)
	}
	_ = c.ws.SetWriteDeadline(dl)
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close closes the underlying connection (no WebSocket close frame; Mochi
// sends an MQTT DISCONNECT where it applies).
func (c *wsConn) Close() error {
	return c.ws.Close()
}

// SetDeadline sets the read and write deadlines.
func (c *wsConn) SetDeadline(t time.Time) error {
	c.storeWriteDeadline(t)
	return c.Conn.SetDeadline(t)
}

// SetReadDeadline sets the read deadline of the underlying connection.
func (c *wsConn) SetReadDeadline(t time.Time) error {
	return c.Conn.SetReadDeadline(t)
}

// SetWriteDeadline sets the write deadline: on the underlying connection
// now (for a write in progress) and for every later message.
func (c *wsConn) SetWriteDeadline(t time.Time) error {
	c.storeWriteDeadline(t)
	return c.Conn.SetWriteDeadline(t)
}

func (c *wsConn) storeWriteDeadline(t time.Time) {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	c.wdl.Store(ns)
}
