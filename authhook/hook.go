package authhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/audit"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/pki"
	"github.com/warden-mqtt/warden/registry"
	"github.com/warden-mqtt/warden/store"
)

// Defaults for Options fields left zero.
const (
	DefaultMaxFailuresPerUser = 10
	DefaultMaxFailuresPerIP   = 100
	DefaultFailureWindow      = 5 * time.Minute
	DefaultBackoff            = 5 * time.Minute
	DefaultVerifyWait         = 5 * time.Second
	DefaultCacheSize          = 100_000
)

// Options configure a Hook. Zero values take the defaults above.
type Options struct {
	// Store holds users, roles and token records; required.
	Store store.Store
	// Tokens verifies login tokens sent as MQTT passwords; nil disables
	// token login.
	Tokens *credential.Tokens
	// Logger receives authentication failures and revocations (never
	// secrets).
	Logger *slog.Logger
	// Audit receives a record of every refused CONNECT; nil: none. Only
	// CONNECT is audited: ACL checks stay free of I/O and allocation.
	Audit *audit.Logger

	// MaxFailuresPerUser and MaxFailuresPerIP failed CONNECTs within
	// FailureWindow block further attempts for that username or address
	// for Backoff, without hashing. A negative value disables the limit.
	MaxFailuresPerUser int
	MaxFailuresPerIP   int
	FailureWindow      time.Duration
	Backoff            time.Duration

	// VerifyWorkers bounds concurrent argon2id verifications (default:
	// half of GOMAXPROCS, at least 1); VerifyWait is how long a CONNECT waits for a worker
	// before it is refused as "server busy".
	VerifyWorkers int
	VerifyWait    time.Duration
	// CacheSize bounds the cache of successful password verifications.
	CacheSize int
	// Registry, when set, sees every CONNECT naming an unknown user, so
	// the client registry can record it while open (the implicit flow).
	Registry Registrar
	// Metrics, when set, count connects, ACL denials, active clients and
	// cache hits (NewMetrics); nil counts nothing.
	Metrics *Metrics
	// MaxOfflineSessions caps the persistent sessions one user may hold
	// offline; when another goes offline, the oldest ends (sessions.go).
	// Zero means DefaultMaxOfflineSessions.
	MaxOfflineSessions int
}

// Registrar is the client registry as the hook sees it (registry.Registry).
type Registrar interface {
	// ConnectAttempt records a CONNECT of an unknown username. It returns
	// registry.Pending (1) when the attempt is recorded or matches a
	// pending request, registry.Granted (2) when the user now exists, and
	// 0 otherwise.
	ConnectAttempt(ctx context.Context, username string, password []byte, cert *x509.Certificate) registry.Attempt
}

// Hook is warden's Mochi auth hook. Create it with New, add it to the
// server as the only auth/ACL hook, then Attach the server.
type Hook struct {
	mqtt.HookBase

	opts   Options
	st     store.Store
	tokens *credential.Tokens
	log    *slog.Logger
	model  *model
	ver    *verifier
	users  *limiter
	ips    *limiter

	// epoch counts change-feed events begun; a CONNECT that loaded a user
	// before an event rechecks after registering (see OnConnect).
	epoch   atomic.Uint64
	settled atomic.Uint64 // the epoch whose processing finished last
	dirty   atomic.Bool   // a refresh failed (store down): resync on the next tick
	server  atomic.Pointer[mqtt.Server]

	conns  sync.Map // *mqtt.Client -> *conn: read lock-free by OnACLCheck
	mu     sync.Mutex
	byUser map[string]map[*conn]struct{}
	// offline lists each user's offline persistent sessions, oldest first
	// (sessions.go); guarded by mu.
	offline map[string][]*conn

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// New builds the hook and subscribes to the store's change feed, so no
// change is missed between now and the first client.
func New(ctx context.Context, o Options) (*Hook, error) {
	if o.Store == nil {
		return nil, errors.New("authhook: Options.Store is required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxFailuresPerUser == 0 {
		o.MaxFailuresPerUser = DefaultMaxFailuresPerUser
	}
	if o.MaxFailuresPerIP == 0 {
		o.MaxFailuresPerIP = DefaultMaxFailuresPerIP
	}
	if o.FailureWindow <= 0 {
		o.FailureWindow = DefaultFailureWindow
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.VerifyWorkers <= 0 {
		// Half the cores: a flood of wrong passwords then saturates only
		// those, and the rest keep serving connected clients and cached
		// reconnects (the denied scenario of cmd/warden-bench).
		o.VerifyWorkers = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if o.VerifyWait <= 0 {
		o.VerifyWait = DefaultVerifyWait
	}
	if o.CacheSize <= 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.MaxOfflineSessions <= 0 {
		o.MaxOfflineSessions = DefaultMaxOfflineSessions
	}
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h := &Hook{
		opts:   o,
		st:     o.Store,
		tokens: o.Tokens,
		log:    o.Logger,
		model:  newModel(o.Store),
		ver:    newVerifier(o.VerifyWorkers, o.CacheSize),
		users:  newLimiter(o.MaxFailuresPerUser, o.FailureWindow, o.Backoff, 1<<20),
		ips:    newLimiter(o.MaxFailuresPerIP, o.FailureWindow, o.Backoff, 1<<20),
		byUser: map[string]map[*conn]struct{}{},
		ctx:    hctx,
		cancel: cancel,
		done:   make(chan struct{}),
	}
	events, err := o.Store.Watch(hctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("authhook: watch store: %w", err)
	}
	go h.watch(events)
	return h, nil
}

// Attach gives the hook the server it disconnects and unsubscribes
// clients on. Call it after adding the hook, before serving.
func (h *Hook) Attach(s *mqtt.Server) { h.server.Store(s) }

// ID identifies the hook to Mochi.
func (h *Hook) ID() string { return "warden-auth" }

// Provides lists the events the hook handles; a switch is cheaper than
// Mochi's bytes.Contains idiom on the per-message path.
func (h *Hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnSessionEstablished, mqtt.OnACLCheck,
		mqtt.OnPublish, mqtt.OnDisconnect, mqtt.OnClientExpired, mqtt.OnWill, mqtt.OnWillSent:
		return true
	case mqtt.OnSubscribe, mqtt.OnSubscribed:
		return h.opts.Metrics != nil // only to label denials (metrics.go)
	}
	return false
}

// Stop ends the change-feed goroutine. Mochi calls it from Server.Close.
func (h *Hook) Stop() error {
	h.cancel()
	<-h.done
	return nil
}

// conn is warden's state for one client connection (one *mqtt.Client).
type conn struct {
	cl       *mqtt.Client
	username string
	userID   string
	clientID string
	v5       bool

	// How it authenticated: re-checked when the user changes.
	password  bool
	pwVersion uint64
	tokenID   string
	certFP    string
	willTopic string // final (prefixed) will topic; read here, never from Mochi's struct, to avoid racing it

	sess    atomic.Pointer[session] // nil once revoked
	revoked atomic.Bool
	live    atomic.Bool // CONNACK sent: a revocation must disconnect it
	stop    sync.Once
	timer   *time.Timer // token expiry

	// willDue is when (unix ns) a delayed will left by this client stops
	// being sendable; 0: none (sessions.go).
	willDue atomic.Int64

	// subscribing holds the filters of the SUBSCRIBE being processed
	// (metrics on only): see deny.
	subscribing atomic.Pointer[packets.Subscriptions]
}

// session is the immutable snapshot an ACL check reads.
type session struct {
	prefix string
	bound  *acl.Bound
	epoch  uint64
}

func (h *Hook) lookup(cl *mqtt.Client) *conn {
	v, ok := h.conns.Load(cl)
	if !ok {
		return nil
	}
	return v.(*conn)
}

// OnACLCheck decides a publish (write), a subscription (a filter) or a
// delivery (a topic). It runs for every message and every delivered copy:
// no locks, no allocations (a denial is counted with a pre-resolved
// counter: deny).
func (h *Hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	v, ok := h.conns.Load(cl)
	if !ok {
		return h.deny(nil, topic, aclKind(topic, write))
	}
	c := v.(*conn)
	s := c.sess.Load()
	if s == nil {
		return h.deny(c, topic, aclKind(topic, write))
	}
	if write {
		// Decided in OnPublish, which sees the alias-resolved topic and can
		// apply the prefix, and whose refusal does not make Mochi
		// disconnect a v3.1.1 client on QoS 1/2 (see doc of OnPublish).
		if topic == "" || s.prefix != "" || !c.v5 {
			return true
		}
		return s.bound.Allows(topic, acl.OpWrite) || h.deny(c, topic, aclPublish)
	}
	if isFilter(topic) {
		return s.bound.Covers(topic) || h.deny(c, topic, aclSubscribe)
	}
	return s.bound.Allows(topic, acl.OpRead) || h.deny(c, topic, aclDelivery)
}

// isFilter tells a SUBSCRIBE filter from a delivery topic: Mochi asks
// both with write=false.
func isFilter(s string) bool {
	return strings.IndexByte(s, '+') >= 0 || strings.IndexByte(s, '#') >= 0 ||
		(len(s) > 7 && s[0] == '$' && strings.EqualFold(s[:7], "$share/"))
}

// OnPublish applies the publish prefix to the real (alias-resolved) topic
// and checks the write permission on the result. A refusal is dropped
// without reaching any subscriber or the retained store: MQTT 3.1.1 gets
// a normal ack (as Mosquitto does; Mochi would otherwise disconnect it),
// MQTT 5 QoS 1 gets PUBACK 0x87, QoS 2 an ack, QoS 0 nothing.
func (h *Hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	c := h.lookup(cl)
	var s *session
	if c != nil {
		s = c.sess.Load()
	}
	if s == nil {
		return pk, h.denyPublish(cl, pk)
	}
	topic := pk.TopicName
	if s.prefix != "" {
		topic = s.prefix + topic
		if acl.ValidateTopicName(topic) != nil || !h.topicWithinLimits(topic) {
			return pk, h.denyPublish(cl, pk)
		}
	}
	if !s.bound.Allows(topic, acl.OpWrite) {
		return pk, h.denyPublish(cl, pk)
	}
	pk.TopicName = topic
	return pk, nil
}

func (h *Hook) denyPublish(cl *mqtt.Client, pk packets.Packet) error {
	h.opts.Metrics.publishDenied()
	if cl.Properties.ProtocolVersion < 5 || pk.FixedHeader.Qos == 2 {
		return packets.CodeSuccessIgnore
	}
	if pk.FixedHeader.Qos == 1 {
		return packets.ErrNotAuthorized
	}
	return packets.ErrRejectPacket
}

// OnConnectAuthenticate accepts exactly the clients OnConnect admitted.
func (h *Hook) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	c := h.lookup(cl)
	return c != nil && !c.revoked.Load()
}

// OnSessionEstablished marks the client live; a revocation that raced
// with the CONNACK is carried out now.
func (h *Hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	// Mochi calls OnDisconnect exactly once after this: the pair keeps the
	// active-clients gauge.
	h.opts.Metrics.connectAccepted()
	c := h.lookup(cl)
	if c == nil {
		return
	}
	c.live.Store(true)
	if c.revoked.Load() {
		h.disconnect(c)
	}
}

// OnDisconnect forgets a clean session, unless it left a delayed will,
// which is checked again when due (OnWill; sweep forgets it after). A
// persistent session stays known while offline, so messages queued for it
// are still checked against its (live-updated) permissions, and counts
// towards its user's offline sessions; OnClientExpired or a takeover
// forgets it.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	h.opts.Metrics.disconnected()
	c := h.lookup(cl)
	switch {
	case c == nil:
	case expire || cl.IsTakenOver():
		if !c.willPending(time.Now()) {
			h.forget(cl)
		}
	default:
		h.wentOffline(c)
	}
}

// OnClientExpired forgets an expired persistent session.
func (h *Hook) OnClientExpired(cl *mqtt.Client) { h.forget(cl) }

func (h *Hook) register(c *conn) {
	h.conns.Store(c.cl, c)
	h.mu.Lock()
	set := h.byUser[c.username]
	if set == nil {
		set = map[*conn]struct{}{}
		h.byUser[c.username] = set
	}
	set[c] = struct{}{}
	h.mu.Unlock()
}

func (h *Hook) forget(cl *mqtt.Client) {
	v, ok := h.conns.LoadAndDelete(cl)
	if !ok {
		return
	}
	c := v.(*conn)
	if c.timer != nil {
		c.timer.Stop()
	}
	h.mu.Lock()
	if set := h.byUser[c.username]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(h.byUser, c.username)
		}
	}
	h.unlistOffline(c)
	h.mu.Unlock()
}

// connsOf returns the connections of a username.
func (h *Hook) connsOf(username string) []*conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*conn, 0, len(h.byUser[username]))
	for c := range h.byUser[username] {
		out = append(out, c)
	}
	return out
}

// revoke withdraws a connection's access at once (its ACL checks fail from
// now on) and disconnects it without publishing its will.
func (h *Hook) revoke(c *conn, reason string) {
	if !c.revoked.CompareAndSwap(false, true) {
		return
	}
	c.sess.Store(nil)
	atomic.StoreUint32(&c.cl.Properties.Will.Flag, 0)
	h.cancelWill(c)
	h.log.Info("mqtt access revoked", "user", c.username, "client", c.clientID, "reason", reason)
	if c.live.Load() {
		h.disconnect(c)
	}
}

// disconnect runs off the caller's goroutine: DisconnectClient blocks on
// the client's socket, and the caller may be the change feed.
func (h *Hook) disconnect(c *conn) {
	c.stop.Do(func() {
		go func() {
			s := h.server.Load()
			if s == nil {
				return
			}
			atomic.StoreUint32(&c.cl.Properties.Will.Flag, 0)
			_ = s.DisconnectClient(c.cl, packets.ErrNotAuthorized)
			// A persistent session would otherwise linger with its
			// subscriptions and queue; the revoked user gets nothing back.
			s.UnsubscribeClient(c.cl)
			c.cl.ClearInflights()
			if cur, ok := s.Clients.Get(c.cl.ID); ok && cur == c.cl {
				s.Clients.Delete(c.cl.ID)
			}
			h.forget(c.cl)
		}()
	})
}

// connect refusals, per protocol version (Mochi maps v5 codes to v3 return
// codes through packets.V5CodesToV3; the v3 column picks codes that map to
// the right v3 value).
type refusal int

const (
	refuseBadCredentials refusal = iota // v5 0x86, v3 4
	refuseNotAuthorized                 // v5 0x87, v3 5
	refuseUnavailable                   // v5 0x88, v3 3
	refuseBusy                          // v5 0x89, v3 3
	refuseClientID                      // v5 0x85, v3 2
	refuseBlocked                       // as refuseNotAuthorized: too many failures
	refusePending                       // as refuseNotAuthorized: registration pending
	refusalKinds                        // the number of refusals, for metrics
)

func (r refusal) code(v5 bool, reason string) packets.Code {
	if !v5 {
		switch r {
		case refuseBadCredentials:
			return packets.ErrMalformedUsername // -> v3 4 bad user name or password
		case refuseNotAuthorized, refuseBlocked, refusePending:
			return packets.ErrBadUsernameOrPassword // -> v3 5 not authorized
		case refuseUnavailable, refuseBusy:
			return packets.ErrServerUnavailable // -> v3 3
		default:
			return packets.ErrClientIdentifierNotValid // -> v3 2
		}
	}
	var c packets.Code
	switch r {
	case refuseBadCredentials:
		c = packets.ErrBadUsernameOrPassword
	case refuseNotAuthorized, refuseBlocked, refusePending:
		c = packets.ErrNotAuthorized
	case refuseUnavailable:
		c = packets.ErrServerUnavailable
	case refuseBusy:
		c = packets.ErrServerBusy
	default:
		c = packets.ErrClientIdentifierNotValid
	}
	if reason != "" {
		c.Reason = reason
	}
	return c
}

// stater is what *tls.Conn and broker's WebSocket-over-TLS conn offer.
type stater interface{ ConnectionState() tls.ConnectionState }

// peerCertificate returns the client's certificate if the TLS handshake
// verified it against a trusted CA (the listener's ClientCAs).
func peerCertificate(cl *mqtt.Client) *x509.Certificate {
	st, ok := cl.Net.Conn.(stater)
	if !ok {
		return nil
	}
	cs := st.ConnectionState()
	if len(cs.VerifiedChains) == 0 || len(cs.PeerCertificates) == 0 {
		return nil
	}
	return cs.PeerCertificates[0]
}

func remoteIP(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return remote
	}
	return host
}

// OnConnect authenticates the client. It runs before Mochi's own
// authentication step so it can answer with the precise CONNACK code; a
// refused client gets its CONNACK here and the connection closes.
func (h *Hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	ctx, cancel := context.WithTimeout(h.ctx, h.opts.VerifyWait)
	defer cancel()
	c, r, reason := h.authenticate(ctx, cl, pk)
	if c == nil {
		h.opts.Metrics.connectRefused(r)
		code := r.code(cl.Properties.ProtocolVersion >= 5, reason)
		if s := h.server.Load(); s != nil {
			_ = s.SendConnack(cl, code, false, nil)
		}
		return code
	}
	return nil
}

func (h *Hook) authenticate(ctx context.Context, cl *mqtt.Client, pk packets.Packet) (*conn, refusal, string) {
	now := time.Now()
	ip := remoteIP(cl.Net.Remote)
	username := string(cl.Properties.Username)
	cert := peerCertificate(cl)
	if username == "" && cert != nil {
		username = cert.Subject.CommonName
		cl.Properties.Username = []byte(username)
	}
	fail := func(r refusal, why string) (*conn, refusal, string) {
		h.log.Info("mqtt connect refused", "user", username, "client", cl.ID, "remote", cl.Net.Remote, "reason", why)
		h.auditRefusal(ctx, cl, username, why)
		return nil, r, ""
	}
	if username == "" {
		return fail(refuseBadCredentials, "anonymous")
	}
	if h.ips.blocked(ip, now) || h.users.blocked(username, now) {
		h.log.Info("mqtt connect refused", "user", username, "client", cl.ID, "remote", cl.Net.Remote, "reason", "too many failures")
		h.auditRefusal(ctx, cl, username, "too many failures")
		return nil, refuseBlocked, "too many failed attempts; retry later"
	}
	failed := func(r refusal, why string) (*conn, refusal, string) {
		h.users.fail(username, now)
		h.ips.fail(ip, now)
		return fail(r, why)
	}

	// A recheck after registering is needed only if a change was being
	// processed while we authenticate; an older cached entry is current
	// (the feed keeps it so), and must not cost a store call, which would
	// stall every reconnect while the store is down.
	ep0 := h.epoch.Load()
	busy := h.settled.Load() != ep0 || h.dirty.Load()
	fromCache := true
	e := h.model.cached(username)
	h.opts.Metrics.cacheLookup(cacheUser, e != nil)
	if e == nil {
		fromCache = false
		var err error
		e, err = h.model.load(ctx, username, h.epoch.Load())
		switch {
		case errors.Is(err, store.ErrNotFound) && h.opts.Registry != nil:
			switch h.opts.Registry.ConnectAttempt(ctx, username, pk.Connect.Password, cert) {
			case registry.Granted:
				e, err = h.model.load(ctx, username, h.epoch.Load())
				if err != nil {
					return fail(refuseNotAuthorized, "registered, not yet loadable")
				}
			case registry.Pending:
				// Not a failure to count: the device waits for an admin.
				return fail(refusePending, "registration pending")
			default:
				return failed(refuseBadCredentials, "unknown user")
			}
		case errors.Is(err, store.ErrNotFound):
			return failed(refuseBadCredentials, "unknown user")
		case errors.Is(err, errBrokenModel):
			h.log.Error("mqtt connect: user's permissions do not compile", "user", username, "error", err)
			return fail(refuseNotAuthorized, "broken permissions")
		case err != nil:
			h.log.Warn("mqtt connect: store unavailable", "user", username, "error", err)
			return fail(refuseUnavailable, "store unavailable")
		}
	}
	u := e.user
	if u.Suspended {
		return failed(refuseNotAuthorized, "suspended")
	}

	allowed, required := grants(u)
	c := &conn{cl: cl, username: username, userID: u.ID, clientID: cl.ID, v5: cl.Properties.ProtocolVersion >= 5}

	certOK := false
	if cert != nil && cert.Subject.CommonName == username && allowed[store.GrantCertificate] {
		fp := pki.Fingerprint(cert.Raw)
		if certPinned(u, fp, now) {
			certOK = true
			c.certFP = fp
		}
	}
	pwOK := false
	var tokenExp time.Time
	if pk.Connect.PasswordFlag && len(pk.Connect.Password) > 0 {
		if !allowed[store.GrantPassword] {
			return failed(refuseBadCredentials, "password grant not allowed")
		}
		password := string(pk.Connect.Password)
		if h.tokens != nil && credential.LooksLikeToken(password) {
			claims, err := h.tokens.Parse(password)
			if err == nil && claims.UserID == u.ID && credential.AcceptedKind(claims.Kind) {
				_, err := h.st.Token(ctx, claims.TokenID)
				switch {
				case err == nil, errors.Is(err, store.ErrUnavailable) && fromCache:
					pwOK, c.tokenID, tokenExp = true, claims.TokenID, claims.ExpiresAt
				case errors.Is(err, store.ErrNotFound):
					return failed(refuseBadCredentials, "token revoked")
				default:
					return fail(refuseUnavailable, "store unavailable")
				}
			}
		}
		if !pwOK {
			if u.PasswordHash == "" {
				return failed(refuseBadCredentials, "no password set")
			}
			ok, cached, err := h.ver.verify(ctx, u.ID, password, u.PasswordHash, u.PasswordVersion)
			if !errors.Is(err, errBusy) {
				h.opts.Metrics.cacheLookup(cachePassword, cached)
			}
			switch {
			case errors.Is(err, errBusy):
				return fail(refuseBusy, "verification queue full")
			case err != nil:
				h.log.Error("mqtt connect: stored password hash unusable", "user", username, "error", err)
				return failed(refuseBadCredentials, "bad stored hash")
			case !ok:
				return failed(refuseBadCredentials, "wrong password")
			}
			pwOK, c.password, c.pwVersion = true, true, u.PasswordVersion
		}
	}
	if required[store.GrantPassword] && !pwOK {
		return failed(refuseBadCredentials, "password required")
	}
	if required[store.GrantCertificate] && !certOK {
		return failed(refuseNotAuthorized, "client certificate required")
	}
	if !pwOK && !certOK {
		return failed(refuseBadCredentials, "no valid credential")
	}

	sess := &session{prefix: u.MQTTPublishPrefix, bound: e.matcher.Bind(username, cl.ID), epoch: e.epoch}
	if !h.willAllowed(cl, sess) {
		return fail(refuseNotAuthorized, "will topic not permitted")
	}
	if r, why := h.takeover(cl, username); why != "" {
		return fail(r, why)
	}
	if cl.Properties.Will.Flag != 0 {
		c.willTopic = cl.Properties.Will.TopicName
	}
	c.sess.Store(sess)
	h.register(c)

	// An event may have changed this user while we authenticated; the
	// feed goroutine sees c from now on, and anything it did before is
	// picked up by reloading here.
	if busy || h.epoch.Load() != ep0 {
		if ne, err := h.model.load(ctx, username, h.epoch.Load()); errors.Is(err, store.ErrNotFound) {
			h.revoke(c, "user deleted")
		} else if err == nil {
			h.reevaluate(c, ne)
		}
	}
	if c.revoked.Load() {
		h.forget(cl)
		return fail(refuseNotAuthorized, "revoked during connect")
	}
	if !tokenExp.IsZero() {
		c.timer = time.AfterFunc(time.Until(tokenExp), func() { h.revoke(c, "token expired") })
	}
	h.users.reset(username)
	return c, 0, ""
}

// grants returns the user's allowed and required grant methods. A user
// without grant types may use a password (Connectware's default).
func grants(u store.User) (allowed, required map[string]bool) {
	allowed, required = map[string]bool{}, map[string]bool{}
	if len(u.GrantTypes) == 0 {
		allowed[store.GrantPassword] = true
	}
	for _, g := range u.GrantTypes {
		allowed[g.Method] = true
		if g.IsRequired {
			required[g.Method] = true
		}
	}
	return allowed, required
}

// certPinned: with fingerprints registered on the user, the certificate
// must be one of them (and that registration not expired).
func certPinned(u store.User, fp string, now time.Time) bool {
	if len(u.Certificates) == 0 {
		return true
	}
	for _, c := range u.Certificates {
		if c.Fingerprint == fp && (c.ExpiresAt.IsZero() || now.Before(c.ExpiresAt)) {
			return true
		}
	}
	return false
}

// willAllowed checks the will topic like a publish (Mochi never does) and
// applies the prefix to it.
func (h *Hook) willAllowed(cl *mqtt.Client, s *session) bool {
	if cl.Properties.Will.Flag == 0 {
		return true
	}
	topic := s.prefix + cl.Properties.Will.TopicName
	if acl.ValidateTopicName(topic) != nil || !s.bound.Allows(topic, acl.OpWrite) {
		return false
	}
	cl.Properties.Will.TopicName = topic
	return true
}

// takeover refuses a client ID held by another user's connected client:
// Mochi would hand the new client that session's subscriptions and queue.
// Another user's offline session is purged first instead.
func (h *Hook) takeover(cl *mqtt.Client, username string) (refusal, string) {
	s := h.server.Load()
	if s == nil {
		return 0, ""
	}
	existing, ok := s.Clients.Get(cl.ID)
	if !ok || existing == cl {
		return 0, ""
	}
	if ec := h.lookup(existing); ec != nil && ec.username == username {
		return 0, ""
	}
	if !existing.Closed() {
		return refuseClientID, "client ID in use by another user"
	}
	s.UnsubscribeClient(existing)
	existing.ClearInflights()
	s.Clients.Delete(existing.ID)
	h.forget(existing)
	return 0, ""
}
