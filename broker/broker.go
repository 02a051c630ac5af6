package broker

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// Listener IDs, as seen by hooks in cl.Net.Listener.
const (
	// ListenerTCP is the ID of the plain MQTT over TCP listener.
	ListenerTCP = "tcp"
	// ListenerTLS is the ID of the MQTT over TLS listener.
	ListenerTLS = "tls"
	// ListenerWS is the ID of the MQTT over WebSocket listener, plain or
	// secure (Config.WSTLS).
	ListenerWS = "ws"
)

// DefaultConnectTimeout is the connect deadline used when
// Config.ConnectTimeout is zero.
const DefaultConnectTimeout = 10 * time.Second

// ErrClosed is returned by Start after Close.
var ErrClosed = errors.New("broker: closed")

// Config configures the embedded MQTT server. At least one listener address
// must be set.
type Config struct {
	// TCPAddr is the address of the plain MQTT listener ("" = off). Port 0
	// picks a free port; see Broker.Addr.
	TCPAddr string
	// TLSAddr is the address of the MQTT over TLS listener ("" = off). It
	// requires TLS.
	TLSAddr string
	// WSAddr is the address of the MQTT over WebSocket listener ("" = off):
	// plain WebSocket, or WSS when WSTLS is true. Any request path is
	// accepted.
	WSAddr string
	// WSTLS serves WSAddr as WSS with TLS. It requires TLS and is ignored
	// when WSAddr is empty.
	WSTLS bool
	// TLS is the server TLS configuration built by the caller (certificates,
	// ClientCAs with VerifyClientCertIfGiven or RequireAndVerifyClientCert,
	// ...). It is used as is by the TLS listener; the WSS listener uses a
	// clone whose NextProtos is forced to "http/1.1" (callbacks such as
	// GetCertificate or GetConfigForClient are shared by the clone, so use
	// them for anything that changes at run time, e.g. the trusted client
	// CAs). Required when TLSAddr is set or WSTLS is true.
	TLS *tls.Config
	// ConnectTimeout is the deadline, from accept, for the TLS handshake,
	// the WebSocket upgrade and the CONNECT packet of a fresh connection;
	// a connection that has not sent CONNECT by then is closed. Zero means
	// DefaultConnectTimeout; negative is an error.
	ConnectTimeout time.Duration
	// TCPListener, TLSListener and WSListener are sockets the caller bound
	// already (net.Listen("tcp", ...)), served instead of binding TCPAddr,
	// TLSAddr and WSAddr (which may then be empty): a program that binds
	// every port before it changes anything fails on a port in use before
	// it has done anything it cannot undo. New takes them over: they are
	// closed by Close, or by New when it fails.
	TCPListener net.Listener
	TLSListener net.Listener
	WSListener  net.Listener
	// Logger receives the server's and the listeners' logs; nil means
	// slog.Default().
	Logger *slog.Logger
	// MaxPendingWrites is how many packets may wait to be written to one
	// client before Mochi drops further deliveries to it; zero means
	// DefaultMaxPendingWrites. The queue grows as packets wait and is
	// released once written (warden patch 20 to Mochi), so an idle client
	// pays nothing for a high limit; a slow one holds up to 8 bytes a slot
	// plus the packets.
	MaxPendingWrites int

	// MaxPacketSize is the largest MQTT packet a client may send, fixed
	// header included, in bytes; zero means DefaultMaxPacketSize, at most
	// MaxPacketSizeLimit. It is checked on the fixed header, before the
	// packet is read or allocated; a larger packet closes the connection
	// (MQTT 5 clients first get DISCONNECT 0x95), and MQTT 5 clients learn
	// the limit from CONNACK's Maximum Packet Size.
	MaxPacketSize int
	// MaxConnectPacketSize is the largest CONNECT packet, read before the
	// client is authenticated; zero means DefaultMaxConnectPacketSize. It
	// never exceeds MaxPacketSize.
	MaxConnectPacketSize int
	// MaxConnections caps the sockets open at once over all listeners,
	// counted from accept (before TLS, WebSocket upgrade or CONNECT) to
	// close; a socket beyond it is closed at once. Zero means
	// DefaultMaxConnections(). Mochi's MaximumClients (authenticated
	// clients; CONNACK 0x89 / 3 beyond it) is set to the same value.
	MaxConnections int
	// MaxKeepalive is the keepalive ceiling, in whole seconds up to
	// 65535 s: an MQTT 5 client asking for 0 or more is told to use it
	// (Server Keep Alive), an MQTT 3.1.1 client is refused with return code
	// 2, as Mosquitto's max_keepalive does. Zero means DefaultMaxKeepalive;
	// negative means no ceiling (keepalive 0 then means no timeout at all).
	MaxKeepalive time.Duration
	// WSAllowedOrigins lists the browser origins (scheme://host[:port])
	// allowed to open WebSocket connections. An upgrade request with an
	// Origin header not in the list gets 403; one without Origin (not a
	// browser) passes. Empty: no browser page may connect.
	WSAllowedOrigins []string
	// MaxSessionExpiry caps how long a disconnected client's session (its
	// subscriptions and queued messages) is kept: the Session Expiry
	// Interval an MQTT 5 client asks for at CONNECT or DISCONNECT is cut to
	// it, and an MQTT 3.1.1 session with clean session 0 (which has no
	// expiry of its own) expires after it. Zero means
	// DefaultMaxSessionExpiry; otherwise from 1 s to 2^32-1 s (MQTT's
	// largest), cut to whole seconds.
	MaxSessionExpiry time.Duration
	// MaxQueuedMessages caps the QoS 1 and 2 messages held for one client,
	// in flight or queued while it is offline (Mochi's MaximumInflight);
	// further deliveries to it are dropped. Zero means
	// DefaultMaxQueuedMessages; at most 65535.
	MaxQueuedMessages int
	// MaxTopicLevels and MaxTopicLength cap the levels and bytes of every
	// topic name and filter a client sends (PUBLISH, will, SUBSCRIBE,
	// UNSUBSCRIBE); longer ones are refused before Mochi's topic index
	// sees them (see mqtt.Capabilities.TopicWithinLimits). Zero means
	// DefaultMaxTopicLevels and DefaultMaxTopicLength; MaxTopicLength is
	// at most 65535 (MQTT's longest string).
	MaxTopicLevels int
	MaxTopicLength int
}

// limits are the effective limits of a Config, defaults filled in.
type limits struct {
	connectTimeout time.Duration
	maxPacket      uint32
	maxConnect     uint32
	maxConns       int
	maxKeepalive   uint16 // seconds; 0: no ceiling

	maxSessionExpiry uint32 // seconds
	maxQueued        uint16
	maxTopicLevels   int
	maxTopicLength   int
}

// Session and topic limits used when the Config fields are zero.
const (
	// DefaultMaxSessionExpiry is a day, where Mochi keeps sessions for
	// 2^32-1 seconds (136 years) and MQTT 3.1.1 sessions for ever.
	DefaultMaxSessionExpiry = 24 * time.Hour
	// DefaultMaxQueuedMessages is Mosquitto's max_queued_messages; Mochi's
	// default is 8,192.
	DefaultMaxQueuedMessages = 1000
	// DefaultMaxTopicLevels is EMQX's max_topic_levels.
	DefaultMaxTopicLevels = 128
	// DefaultMaxTopicLength is the longest MQTT string, EMQX's limit.
	DefaultMaxTopicLength = 65535

	// maxSessionExpiryLimit is the longest Session Expiry Interval MQTT
	// can carry, 2^32-1 seconds.
	maxSessionExpiryLimit = math.MaxUint32 * time.Second
)

// DefaultMaxPendingWrites is Config.MaxPendingWrites' default: 1,024
// packets, Mosquitto's default queue length, instead of Mochi's 8,192.
// (Upstream Mochi allocated the whole queue at connect, 64 KiB a client
// at 8,192; the queue now grows only while packets wait.)
const DefaultMaxPendingWrites = 1024

// Broker is the embedded MQTT server with its listeners. Create it with New,
// then Start it; Close stops it.
type Broker struct {
	server *mqtt.Server
	log    *slog.Logger
	addrs  map[string]string // listener ID -> bound address; read-only after New
	order  []string          // listener IDs in a fixed order, for logs
	lns    []listeners.Listener
	limits limits
	conns  *connLimit // shared by the listeners

	mu      sync.Mutex // guards started and closed; held across Serve and Close
	started bool
	closed  bool

	closeOnce sync.Once
	closeErr  error
}

// New builds the Mochi server, adds hooks in the order given (each with
// AddHook(h, nil), which calls the hook's Init) and creates the configured
// listeners. The listeners are bound here (or were by the caller, see
// Config.TCPListener), so Addr reports real addresses (port 0 resolved)
// before Start; nothing is accepted before Start.
//
// Exactly one hook must provide OnConnectAuthenticate and at most one may
// provide OnACLCheck: Mochi combines these with OR across hooks, so a second
// provider (such as auth.AllowHook) would open the broker.
//
// Server options: capabilities from mqtt.NewDefaultServerCapabilities() with
// MaximumMessageExpiryInterval 0 (no forced expiry of retained and in-flight
// messages; messages with their own MQTT 5 expiry still expire), the packet,
// connection and keepalive limits of Config (see the package documentation),
// MaximumClientWritesPending from Config.MaxPendingWrites, the session
// expiry, queued-message and topic limits of Config, topic aliases left at
// their defaults, PassiveClientDisconnect false, NoInheritedPropertiesOnAck
// true and no inline client. Unless Config.MaxKeepalive is negative, a hook
// enforcing the keepalive ceiling runs first, before the given hooks.
//
// On error nothing stays bound (the listeners given in Config are closed)
// and every hook already initialised is stopped.
func New(cfg Config, hooks ...mqtt.Hook) (*Broker, error) {
	lim, err := validate(cfg, hooks)
	if err != nil {
		closeGiven(cfg)
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}

	conns := newConnLimit(lim.maxConns, log)
	lns, err := buildListeners(cfg, lim, conns)
	if err != nil {
		return nil, err
	}

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumMessageExpiryInterval = 0
	caps.Compatibilities.PassiveClientDisconnect = false
	// Mochi copies a publish's properties (user properties included) into
	// its PUBACK/PUBREC unless told not to: a spec violation that makes
	// strict clients drop the connection.
	caps.Compatibilities.NoInheritedPropertiesOnAck = true
	caps.MaximumClientWritesPending = DefaultMaxPendingWrites
	if cfg.MaxPendingWrites > 0 {
		caps.MaximumClientWritesPending = int32(min(cfg.MaxPendingWrites, 1<<20))
	}
	caps.MaximumPacketSize = lim.maxPacket
	caps.MaximumConnectPacketSize = lim.maxConnect
	caps.MaximumClients = int64(lim.maxConns)
	caps.MaximumSessionExpiryInterval = lim.maxSessionExpiry
	caps.MaximumInflight = lim.maxQueued
	caps.MaximumTopicLevels, caps.MaximumTopicLength = lim.maxTopicLevels, lim.maxTopicLength

	server := mqtt.New(&mqtt.Options{
		Capabilities: caps,
		InlineClient: false,
		Logger:       log,
	})

	b := &Broker{
		server: server,
		log:    log,
		addrs:  make(map[string]string, len(lns)),
		limits: lim,
		conns:  conns,
	}

	for i, l := range lns {
		if err := server.AddListener(l); err != nil {
			for _, rest := range lns[i:] {
				rest.Close(func(string) {})
			}
			_ = server.Close() // closes the listeners already added
			return nil, fmt.Errorf("broker: add listener %q: %w", l.ID(), err)
		}
		b.addrs[l.ID()] = l.Address()
		b.order = append(b.order, l.ID())
		b.lns = append(b.lns, l)
	}

	if lim.maxKeepalive > 0 {
		// First, so a refusal comes before any authentication work.
		hooks = append([]mqtt.Hook{&keepaliveHook{max: lim.maxKeepalive, server: server}}, hooks...)
	}
	for _, h := range hooks {
		if err := server.AddHook(h, nil); err != nil {
			_ = server.Close() // closes the listeners, stops the hooks added so far
			return nil, fmt.Errorf("broker: add hook %q: %w", h.ID(), err)
		}
	}

	return b, nil
}

// validate checks cfg and hooks and returns the effective limits.
func validate(cfg Config, hooks []mqtt.Hook) (limits, error) {
	var lim limits
	tcpOn, tlsOn, wsOn := cfg.TCPAddr != "" || cfg.TCPListener != nil, cfg.TLSAddr != "" || cfg.TLSListener != nil, cfg.WSAddr != "" || cfg.WSListener != nil
	if !tcpOn && !tlsOn && !wsOn {
		return lim, errors.New("broker: no listener configured (TCPAddr, TLSAddr and WSAddr are all empty)")
	}
	needTLS := tlsOn || (wsOn && cfg.WSTLS)
	if needTLS {
		if cfg.TLS == nil {
			return lim, errors.New("broker: TLSAddr and WSTLS require Config.TLS")
		}
		if len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetCertificate == nil && cfg.TLS.GetConfigForClient == nil {
			return lim, errors.New("broker: Config.TLS has no server certificate (Certificates, GetCertificate or GetConfigForClient)")
		}
	}
	if cfg.ConnectTimeout < 0 {
		return lim, fmt.Errorf("broker: negative ConnectTimeout %v", cfg.ConnectTimeout)
	}
	lim.connectTimeout = cmp.Or(cfg.ConnectTimeout, DefaultConnectTimeout)

	switch {
	case cfg.MaxPacketSize < 0 || cfg.MaxPacketSize > MaxPacketSizeLimit:
		return lim, fmt.Errorf("broker: MaxPacketSize %d out of range 1..%d", cfg.MaxPacketSize, MaxPacketSizeLimit)
	case cfg.MaxConnectPacketSize < 0 || cfg.MaxConnectPacketSize > MaxPacketSizeLimit:
		return lim, fmt.Errorf("broker: MaxConnectPacketSize %d out of range 1..%d", cfg.MaxConnectPacketSize, MaxPacketSizeLimit)
	case cfg.MaxConnections < 0:
		return lim, fmt.Errorf("broker: negative MaxConnections %d", cfg.MaxConnections)
	case cfg.MaxKeepalive > maxKeepaliveLimit || (cfg.MaxKeepalive > 0 && cfg.MaxKeepalive%time.Second != 0):
		return lim, fmt.Errorf("broker: MaxKeepalive %v is not a whole number of seconds up to %v", cfg.MaxKeepalive, maxKeepaliveLimit)
	case cfg.MaxSessionExpiry < 0 || (cfg.MaxSessionExpiry > 0 && cfg.MaxSessionExpiry < time.Second) || cfg.MaxSessionExpiry > maxSessionExpiryLimit:
		return lim, fmt.Errorf("broker: MaxSessionExpiry %v out of range 1s..%v", cfg.MaxSessionExpiry, maxSessionExpiryLimit)
	case cfg.MaxQueuedMessages < 0 || cfg.MaxQueuedMessages > math.MaxUint16:
		return lim, fmt.Errorf("broker: MaxQueuedMessages %d out of range 1..%d", cfg.MaxQueuedMessages, math.MaxUint16)
	case cfg.MaxTopicLevels < 0:
		return lim, fmt.Errorf("broker: negative MaxTopicLevels %d", cfg.MaxTopicLevels)
	case cfg.MaxTopicLength < 0 || cfg.MaxTopicLength > math.MaxUint16:
		return lim, fmt.Errorf("broker: MaxTopicLength %d out of range 1..%d", cfg.MaxTopicLength, math.MaxUint16)
	}
	lim.maxPacket = uint32(cmp.Or(cfg.MaxPacketSize, DefaultMaxPacketSize))
	lim.maxConnect = min(uint32(cmp.Or(cfg.MaxConnectPacketSize, DefaultMaxConnectPacketSize)), lim.maxPacket)
	lim.maxConns = cfg.MaxConnections
	if lim.maxConns == 0 {
		lim.maxConns = DefaultMaxConnections()
	}
	switch {
	case cfg.MaxKeepalive == 0:
		lim.maxKeepalive = uint16(DefaultMaxKeepalive / time.Second)
	case cfg.MaxKeepalive > 0:
		lim.maxKeepalive = uint16(cfg.MaxKeepalive / time.Second)
	}
	lim.maxSessionExpiry = uint32(cmp.Or(cfg.MaxSessionExpiry, DefaultMaxSessionExpiry) / time.Second)
	lim.maxQueued = uint16(cmp.Or(cfg.MaxQueuedMessages, DefaultMaxQueuedMessages))
	lim.maxTopicLevels = cmp.Or(cfg.MaxTopicLevels, DefaultMaxTopicLevels)
	lim.maxTopicLength = cmp.Or(cfg.MaxTopicLength, DefaultMaxTopicLength)
	for _, o := range cfg.WSAllowedOrigins {
		if err := CheckOrigin(o); err != nil {
			return lim, fmt.Errorf("broker: WSAllowedOrigins: %w", err)
		}
	}

	var authn, acl []string
	for i, h := range hooks {
		if h == nil {
			return lim, fmt.Errorf("broker: hook %d is nil", i)
		}
		if h.Provides(mqtt.OnConnectAuthenticate) {
			authn = append(authn, h.ID())
		}
		if h.Provides(mqtt.OnACLCheck) {
			acl = append(acl, h.ID())
		}
	}
	switch {
	case len(authn) == 0:
		return lim, errors.New("broker: no hook provides OnConnectAuthenticate; every CONNECT would be refused")
	case len(authn) > 1:
		return lim, fmt.Errorf("broker: several hooks provide OnConnectAuthenticate %q; Mochi ORs them, so only one is allowed", authn)
	case len(acl) > 1:
		return lim, fmt.Errorf("broker: several hooks provide OnACLCheck %q; Mochi ORs them, so only one is allowed", acl)
	}
	return lim, nil
}

// buildListeners binds the configured listeners, or takes the ones given.
// On error, the ones already bound and the given ones are closed.
func buildListeners(cfg Config, lim limits, conns *connLimit) ([]listeners.Listener, error) {
	timeout := lim.connectTimeout
	var out []listeners.Listener
	fail := func(err error) ([]listeners.Listener, error) {
		for _, l := range out {
			l.Close(func(string) {})
		}
		closeGiven(cfg)
		return nil, err
	}

	if cfg.TCPAddr != "" || cfg.TCPListener != nil {
		l, err := newNetListener(ListenerTCP, cfg.TCPAddr, cfg.TCPListener, nil, timeout, conns)
		if err != nil {
			return fail(err)
		}
		out = append(out, l)
	}
	if cfg.TLSAddr != "" || cfg.TLSListener != nil {
		l, err := newNetListener(ListenerTLS, cfg.TLSAddr, cfg.TLSListener, cfg.TLS, timeout, conns)
		if err != nil {
			return fail(err)
		}
		out = append(out, l)
	}
	if cfg.WSAddr != "" || cfg.WSListener != nil {
		var tc *tls.Config
		if cfg.WSTLS {
			tc = cfg.TLS
		}
		l, err := newWSListener(ListenerWS, cfg.WSAddr, cfg.WSListener, tc, timeout, conns, cfg.WSAllowedOrigins)
		if err != nil {
			return fail(err)
		}
		out = append(out, l)
	}
	return out, nil
}

// closeGiven closes the listeners the caller gave in cfg, for New's error
// paths (closing one twice is harmless).
func closeGiven(cfg Config) {
	for _, ln := range []net.Listener{cfg.TCPListener, cfg.TLSListener, cfg.WSListener} {
		if ln != nil {
			_ = ln.Close()
		}
	}
}

// Server returns the underlying Mochi server, e.g. for Clients and
// DisconnectClient. Do not call its Serve or Close; use Start and Close. The
// inline client is off, so Server().Publish and Server().Subscribe are not
// available.
func (b *Broker) Server() *mqtt.Server {
	return b.server
}

// Start starts serving: it calls the Mochi server's Serve, which does not
// block, and logs the bound addresses. It returns an error when called a
// second time, and ErrClosed after Close.
func (b *Broker) Start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if b.started {
		return errors.New("broker: already started")
	}
	b.started = true
	if err := b.server.Serve(); err != nil {
		return fmt.Errorf("broker: serve: %w", err)
	}
	for _, id := range b.order {
		b.log.Info("mqtt listener started", "listener", id, "addr", b.addrs[id])
	}
	b.log.Info("mqtt limits", "max_connections", b.limits.maxConns, "max_packet_size", b.limits.maxPacket,
		"max_connect_packet_size", b.limits.maxConnect, "max_keepalive", time.Duration(b.limits.maxKeepalive)*time.Second)
	return nil
}

// Addr returns the bound address ("host:port", port 0 resolved) of the
// listener with the given ID (ListenerTCP, ListenerTLS or ListenerWS), or ""
// when that listener is off or the ID is unknown. The host is the one bound:
// an address such as ":0" reports the unspecified host (e.g. "[::]:40123"),
// which Go dials as the local host.
func (b *Broker) Addr(listener string) string {
	return b.addrs[listener]
}

// Close stops the server: it sends every connected client a DISCONNECT
// (reason 0x8B "server shutting down" for MQTT 5), closes the listeners and every
// connection they accepted, waits for the connection goroutines, then calls
// the hooks' OnStopped and Stop. It may be called before Start, and more
// than once: later calls return the first call's result.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.closed = true
		b.closeErr = b.server.Close()
	})
	return b.closeErr
}

// Shutdown is Close bounded by ctx, for a graceful stop: it stops
// accepting new connections at once, sends every connected client a DISCONNECT (0x8B "server
// shutting down" for MQTT 5; MQTT 3.1.1 has no reason codes, so v3 clients
// see the connection close) and waits for their connections to end, but
// returns ctx's error once ctx is done, leaving Close to finish in the
// background. Mochi writes the DISCONNECTs one client at a time and
// without a deadline when the client's keepalive is 0, so a client that
// stopped reading could otherwise stall the whole shutdown; the write
// deadline set here (ctx's deadline) cuts such writes short.
func (b *Broker) Shutdown(ctx context.Context) error {
	// Mochi's Close disconnects a listener's clients before it closes the
	// listener, so a client could still connect meanwhile and be cut
	// without a DISCONNECT; refuse new connections first.
	for _, l := range b.lns {
		if s, ok := l.(interface{ stopAccepting() }); ok {
			s.stopAccepting()
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		for _, cl := range b.server.Clients.GetAll() {
			if !cl.Closed() && cl.Net.Conn != nil {
				// Best effort: the client's read loop may still refresh its
				// deadline; ctx bounds the wait below either way.
				_ = cl.Net.Conn.SetWriteDeadline(dl)
			}
		}
	}
	done := make(chan error, 1)
	go func() { done <- b.Close() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("broker: shutdown: %w", ctx.Err())
	}
}
