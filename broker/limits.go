package broker

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Limits on what a client may make the broker hold. Config fields left at
// zero take these values.
const (
	// DefaultMaxPacketSize is Config.MaxPacketSize's default, 1 MiB: EMQX's
	// max_packet_size default.
	DefaultMaxPacketSize = 1 << 20
	// DefaultMaxConnectPacketSize is Config.MaxConnectPacketSize's default,
	// 64 KiB: room for a client ID, a username, a login token as password
	// and a will, while a socket that has not authenticated can make the
	// broker allocate little.
	DefaultMaxConnectPacketSize = 64 << 10
	// DefaultMaxKeepalive is Config.MaxKeepalive's default, 1 hour: a
	// half-open connection is dropped within 1.5 hours, and the ceiling is
	// well above common client defaults (60 s for paho and mosquitto).
	DefaultMaxKeepalive = time.Hour

	// MaxPacketSizeLimit is the largest packet MQTT can describe: 268,435,455
	// bytes of remaining length after a 5-byte fixed header.
	MaxPacketSizeLimit = 268435455 + 5
	// maxKeepaliveLimit is the largest keepalive MQTT can carry, in seconds.
	maxKeepaliveLimit = 65535 * time.Second

	// wsMaxHeaderBytes bounds a WebSocket upgrade request's header, which is
	// read before any authentication (net/http's default is 1 MiB).
	wsMaxHeaderBytes = 16 << 10

	// fallbackMaxConnections is DefaultMaxConnections where the open-file
	// limit cannot be read.
	fallbackMaxConnections = 10000

	// connLimitLogEvery is the least time between two "connection limit
	// reached" warnings; refusals in between are counted into the next one.
	connLimitLogEvery = 10 * time.Second
)

// connLimit counts the sockets accepted by every listener of a broker, from
// accept to close, whether or not they have sent CONNECT, and refuses new
// ones beyond max.
type connLimit struct {
	max     int64
	open    atomic.Int64
	refused atomic.Int64 // since the last warning
	lastLog atomic.Int64 // Unix ns of the last warning
	log     *slog.Logger
}

func newConnLimit(max int, log *slog.Logger) *connLimit {
	return &connLimit{max: int64(max), log: log}
}

// acquire takes a slot for a newly accepted socket; false means the limit
// is reached and the socket must be closed.
func (l *connLimit) acquire() bool {
	if l.open.Add(1) <= l.max {
		return true
	}
	l.open.Add(-1)
	l.refused.Add(1)
	now := time.Now().UnixNano()
	last := l.lastLog.Load()
	if now-last >= int64(connLimitLogEvery) && l.lastLog.CompareAndSwap(last, now) {
		if last == 0 { // the first warning: no earlier one to count from
			l.log.Warn("mqtt connection refused: connection limit reached", "limit", l.max, "refused", l.refused.Swap(0))
		} else {
			l.log.Warn("mqtt connection refused: connection limit reached",
				"limit", l.max, "refused", l.refused.Swap(0), "since", time.Duration(now-last).Round(time.Second).String())
		}
	}
	return false
}

// release gives back the slot of a closed socket.
func (l *connLimit) release() { l.open.Add(-1) }

// keepaliveHook enforces the keepalive ceiling the way Mosquitto's
// max_keepalive does: a client asking for no keepalive (0) or for more than
// the ceiling is, over MQTT 5, told to use the ceiling (Server Keep Alive
// in CONNACK, which the client must obey), and over MQTT 3.1.1, which has
// no way to tell it, refused with CONNACK return code 2 (identifier
// rejected), as Mosquitto does. It runs before the auth hook, so a refusal
// costs no password check.
type keepaliveHook struct {
	mqtt.HookBase
	max    uint16 // seconds
	server *mqtt.Server
}

// ID names the hook in Mochi's logs.
func (h *keepaliveHook) ID() string { return "warden-keepalive" }

// Provides claims OnConnect only.
func (h *keepaliveHook) Provides(b byte) bool { return b == mqtt.OnConnect }

// OnConnect applies the ceiling. Mochi sets the connection's deadline from
// cl.State.Keepalive right after OnConnect, so the new value is enforced
// from the first packet on.
func (h *keepaliveHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	ka := pk.Connect.Keepalive
	if ka != 0 && ka <= h.max {
		return nil
	}
	if cl.Properties.ProtocolVersion >= 5 {
		cl.State.Keepalive = h.max
		cl.State.ServerKeepalive = true // [MQTT-3.2.2-21]
		return nil
	}
	h.Log.Info("mqtt connect refused: keepalive above the ceiling (MQTT 3.1.1 clients cannot be told a lower one)",
		"client", cl.ID, "remote", cl.Net.Remote, "keepalive", ka, "max_keepalive", h.max)
	code := packets.ErrClientIdentifierNotValid // return code 2 for v3
	_ = h.server.SendConnack(cl, code, false, nil)
	return code
}

// normalizeOrigins returns the allowed origins in the form browsers send
// (RFC 6454: lower-case scheme and host, no path, no trailing slash).
func normalizeOrigins(origins []string) map[string]bool {
	set := make(map[string]bool, len(origins))
	for _, o := range origins {
		o = strings.TrimSuffix(strings.TrimSpace(o), "/")
		if o != "" {
			set[strings.ToLower(o)] = true
		}
	}
	return set
}

// CheckOrigin reports whether origin is a valid entry for
// Config.WSAllowedOrigins: scheme://host[:port] with scheme http or https
// and nothing else, as browsers send it in the Origin header.
func CheckOrigin(origin string) error {
	u, err := url.Parse(strings.TrimSuffix(strings.TrimSpace(origin), "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("origin %q is not scheme://host[:port] with scheme http or https", origin)
	}
	return nil
}

// originAllowed is the WebSocket upgrader's CheckOrigin: a request without
// an Origin header (a device, a script: not a browser) passes; a browser's
// request passes only when its one Origin is in allowed. Browsers set
// Origin themselves, so a page on another site cannot open an MQTT
// connection from a visitor's browser (which may sit inside the plant
// network) unless the operator listed that site.
func originAllowed(allowed map[string]bool, r *http.Request) bool {
	vals := r.Header.Values("Origin")
	switch len(vals) {
	case 0:
		return true
	case 1:
		return allowed[strings.ToLower(vals[0])]
	}
	return false
}
