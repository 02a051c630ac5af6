// Package broker builds and runs warden's embedded Mochi MQTT server
// (github.com/mochi-mqtt/server/v2): its options, its listeners (TCP, TLS
// with optional client certificates, WebSocket or secure WebSocket) and its
// lifecycle (New, Start, Close).
//
// It holds no authentication or authorization logic. The caller passes the
// auth hook to New; Mochi combines OnConnectAuthenticate and OnACLCheck over
// hooks with OR, so New refuses a second hook that provides either of them,
// and refuses a hook list in which no hook provides OnConnectAuthenticate
// (Mochi would then refuse every CONNECT).
//
// # Listeners
//
// Up to three listeners, with fixed IDs that the auth hook reads from
// cl.Net.Listener: ListenerTCP ("tcp"), ListenerTLS ("tls") and ListenerWS
// ("ws", plain WebSocket, or WSS when Config.WSTLS is set). Every listener is
// bound in New with net.Listen, unless the caller bound it already
// (Config.TCPListener, TLSListener, WSListener), so port 0 works and
// Broker.Addr reports the real port before Start.
//
// A client's TLS state is reachable through TLSStater on cl.Net.Conn for
// both TLS transports: *tls.Conn on the "tls" listener, and this package's
// WebSocket connection on the "ws" listener (the zero ConnectionState on
// plain WebSocket).
//
// # Connect deadline
//
// Mochi sets no deadline before CONNECT: reading the CONNECT packet and the
// (lazy) TLS handshake can wait forever. Every accepted socket therefore gets
// a deadline of accept time + Config.ConnectTimeout (default 10 s), covering
// the TLS handshake, the WebSocket upgrade and the CONNECT packet.
//
// Mochi replaces that deadline once CONNECT is read and OnConnect has
// returned: attachClient calls cl.refreshDeadline(keepalive) just before
// OnConnectAuthenticate, and the read loop calls it again before every
// packet. refreshDeadline calls SetDeadline(now + 1.5 × keepalive) or, when
// keepalive is 0, SetDeadline(time.Time{}), which clears the deadline. So a
// client connected with keepalive 0 is not cut off after ConnectTimeout, and
// no extra clearing step is needed (the tests guard this on all three
// listeners). The deadline is a socket deadline: it limits I/O, not hooks.
// OnConnect runs between reading CONNECT and the refresh and does no I/O
// itself (a CONNACK it sends with SendConnack is written under the connect
// deadline); OnConnectAuthenticate runs after the refresh, so a hook that
// waits on a store must bound that wait itself.
//
// On the WebSocket listener, net/http clears the connection's deadlines when
// the upgrade hijacks it, so the handler sets the deadline again (accept time
// + ConnectTimeout) before handing the connection to Mochi. The HTTP server's
// ReadHeaderTimeout is ConnectTimeout, which also bounds the WSS handshake.
// HTTP keep-alives are off (and IdleTimeout is ConnectTimeout): every request
// is either upgraded or refused, and a refused one (403 Origin, 400 not an
// upgrade) has its socket closed after the answer, so it cannot hold a
// connection slot.
// gorilla/websocket resets the socket's write deadline to its own value on
// every message it writes, so the WebSocket connection keeps the deadline
// Mochi sets and hands it to gorilla before each write.
//
// # Shutdown
//
// Mochi's Close disconnects the clients it knows (those past CONNECT) and
// then waits for every connection goroutine, including those still waiting
// for CONNECT. The listeners therefore close every connection they accepted
// when they are closed, so Close does not wait for connect deadlines.
//
// A connection the server closed itself (DisconnectClient, a session
// takeover) ends with a read on a closed socket (net.ErrClosed), and while
// a listener closes any error may end its connections (a client told
// "server shutting down" may close first: EOF): the listeners log those
// at debug, so a clean stop logs no warning per client. Any other error
// that ends a connection is a warning, as in Mochi (whose own listener
// logs them all at WARN with an empty message).
//
// # Limits
//
// What a client can make the broker hold is bounded (Config, with defaults
// in limits.go):
//   - packet size: MaxPacketSize (1 MiB, EMQX's default) for every packet,
//     MaxConnectPacketSize (64 KiB) for CONNECT, which is read before
//     authentication. Both are checked on the fixed header, before the body
//     is read or allocated (patched Mochi, third_party WARDEN-PATCHES.md);
//     MQTT 5 clients learn the limit in CONNACK and get DISCONNECT 0x95.
//     A CONNECT's body is read in chunks that grow with the bytes received,
//     so a socket that claims 64 KiB and sends little holds about what it
//     sent, not what it claimed.
//     A WebSocket frame may claim any length: gorilla/websocket streams it
//     and Mochi's limit applies to the MQTT packets inside. The upgrade
//     request's header is capped at 16 KiB.
//   - connections: MaxConnections sockets over all listeners, counted from
//     accept to close (before TLS, upgrade or CONNECT); one more is closed
//     at once, with a warning logged at most every 10 s. The default is 90%
//     of the open-file limit, so MQTT cannot starve the store, Redis or the
//     admin API of descriptors. Mochi's MaximumClients gets the same value.
//   - keepalive: MaxKeepalive (1 h), as Mosquitto's max_keepalive: MQTT 5
//     clients asking for 0 or more get Server Keep Alive = the ceiling,
//     MQTT 3.1.1 clients are refused with return code 2.
//   - browsers: the WebSocket listener refuses (403, before upgrading) a
//     request whose Origin is not in WSAllowedOrigins; requests without
//     Origin (not browsers) pass.
//
// # Options
//
// Capabilities start from mqtt.NewDefaultServerCapabilities() (a hand-built
// Capabilities has dangerous zero values). Topic aliases stay enabled (the
// auth hook resolves them); MaximumMessageExpiryInterval is 0, so messages
// without an expiry of their own (retained and in flight) are kept until
// consumed instead of being force-deleted after Mochi's default 24 h;
// messages that carry an MQTT 5 expiry still expire. PassiveClientDisconnect
// stays false, so Server().DisconnectClient really closes the connection
// (revocation); NoInheritedPropertiesOnAck is true, so a PUBACK or PUBREC
// never echoes the publish's user properties (Mochi's default, which its own
// comment calls a spec violation, makes strict clients drop the connection).
//
// # Session and topic limits
//
// What one client can make the broker keep is bounded (Config): the
// session expiry (MaximumSessionExpiryInterval, a day by default instead
// of Mochi's 136 years; it also ends MQTT 3.1.1 persistent sessions), the
// QoS 1 and 2 messages held per client (MaximumInflight, 1,000 like
// Mosquitto's max_queued_messages) and the levels and bytes of topics and
// filters (128 levels like EMQX, 65535 bytes), checked by the patched
// Mochi before its topic index sees them
// (third_party/mochi-mqtt-server/WARDEN-PATCHES.md).
package broker
