package authhook

import (
	"container/list"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/audit"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/registry"
	"github.com/warden-mqtt/warden/store"
)

// DefaultVerifyWait is Options.VerifyWait's default.
const DefaultVerifyWait = 5 * time.Second

// Options configure a Hook. Zero values take the defaults: DefaultVerifyWait,
// DefaultMaxOfflineSessions, and credential's for the lockout and the
// verifier (credential.NewLockout, credential.NewVerifier).
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

	// Lockout is the brute-force limit on password attempts, shared with
	// the HTTP logins (cmd/warden builds one for both). nil: the hook
	// builds its own from the five fields below: MaxFailuresPerUser
	// refused CONNECTs for a username from one address,
	// MaxFailuresPerUserTotal from all addresses, or MaxFailuresPerIP from
	// one address for any username, within FailureWindow, block attempts
	// for Backoff, without hashing. A negative value disables that limit.
	// A refused CONNECT counts when it presented no client certificate
	// (a wrong password, an unknown user, no usable credential), and a
	// block refuses only CONNECTs without a certificate or a login token.
	Lockout                 *credential.Lockout
	MaxFailuresPerUser      int
	MaxFailuresPerUserTotal int
	MaxFailuresPerIP        int
	FailureWindow           time.Duration
	Backoff                 time.Duration

	// Verifier is the argon2id worker pool and success cache, shared with
	// the HTTP logins. nil: the hook builds its own with VerifyWorkers
	// workers (default: half of GOMAXPROCS, at least 1) and CacheSize
	// cached successes. VerifyWait is how long a CONNECT waits for a
	// worker before it is refused as "server busy".
	Verifier      *credential.Verifier
	VerifyWorkers int
	VerifyWait    time.Duration
	CacheSize     int

	// MFA is on (admin.Options.MFAEnabled): a user with an active MFA key
	// cannot connect with its account password alone; it sends a login
	// token (obtained with MFA) as the password, or a client certificate.
	// The stored MFA lock (too many wrong codes) refuses its password too.
	// MFAAllowPassword keeps password-only CONNECTs of such users working
	// (--mfa-mqtt-password).
	MFA              bool
	MFAAllowPassword bool
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
	// Rehasher upgrades the stored hash of a password a CONNECT verified
	// (not from the cache) when it was made with other parameters than
	// today's; shared with the HTTP logins. nil: no upgrades.
	Rehasher *credential.Rehasher
	// Directory, when set, checks the passwords of directory users and
	// of usernames unknown to the store (directory.go); nil: none.
	Directory Directory
	// NodeID names this node in listings of connected clients
	// (ValidNodeID). Set, the hook publishes this node's clients to the
	// store every ClientsInterval (default DefaultClientsInterval) and
	// carries out kicks other nodes ask for (roster.go); empty, listings
	// and kicks reach this node's clients only.
	NodeID          string
	ClientsInterval time.Duration
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

	opts     Options
	st       store.Store
	tokens   *credential.Tokens
	log      *slog.Logger
	model    *model
	verifier *credential.Verifier
	lockout  *credential.Lockout

	// epoch counts change-feed events begun; a CONNECT that loaded a user
	// before an event rechecks after registering (see enter).
	epoch   atomic.Uint64
	settled atomic.Uint64 // the epoch whose processing finished last
	dirty   atomic.Bool   // a refresh failed (store down): resync on the next tick
	server  atomic.Pointer[mqtt.Server]

	conns  sync.Map // *mqtt.Client -> *conn: read lock-free by OnACLCheck
	mu     sync.Mutex
	byUser map[string]map[*conn]struct{}
	// offline lists each user's offline persistent sessions (*conn),
	// oldest first (sessions.go); guarded by mu.
	offline map[string]*list.List
	// listeners are the OnChange callbacks, by registration number;
	// guarded by mu.
	listeners   map[uint64]func(store.Event)
	listenerSeq uint64

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	// The roster (roster.go), when Options.NodeID is set: nil channels
	// otherwise. rosterFailing is the roster goroutine's own.
	rosterSignal  chan struct{}
	rosterDue     atomic.Bool // a publish is due: rosterSignal was sent (clientsChanged)
	kicks         chan string
	rosterDone    chan struct{}
	rosterFailing bool
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
	if o.Lockout == nil {
		o.Lockout = credential.NewLockout(credential.LockoutOptions{
			MaxPerUserIP: o.MaxFailuresPerUser, MaxPerUser: o.MaxFailuresPerUserTotal, MaxPerIP: o.MaxFailuresPerIP,
			Window: o.FailureWindow, Backoff: o.Backoff,
		})
	}
	if o.Verifier == nil {
		// Half the cores by default: a flood of wrong passwords then
		// saturates only those, and the rest keep serving connected
		// clients and cached reconnects (the denied scenario of
		// cmd/warden-bench).
		v, err := credential.NewVerifier(credential.VerifierOptions{Workers: o.VerifyWorkers, CacheSize: o.CacheSize})
		if err != nil {
			return nil, err
		}
		o.Verifier = v
	}
	if o.VerifyWait <= 0 {
		o.VerifyWait = DefaultVerifyWait
	}
	if o.MaxOfflineSessions <= 0 {
		o.MaxOfflineSessions = DefaultMaxOfflineSessions
	}
	if o.ClientsInterval <= 0 {
		o.ClientsInterval = DefaultClientsInterval
	}
	if o.NodeID != "" {
		if err := ValidNodeID(o.NodeID); err != nil {
			return nil, fmt.Errorf("authhook: %w", err)
		}
	}
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h := &Hook{
		opts:     o,
		st:       o.Store,
		tokens:   o.Tokens,
		log:      o.Logger,
		model:    newModel(o.Store),
		verifier: o.Verifier,
		lockout:  o.Lockout,
		byUser:   map[string]map[*conn]struct{}{},
		ctx:      hctx,
		cancel:   cancel,
		done:     make(chan struct{}),
	}
	events, err := o.Store.Watch(hctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("authhook: watch store: %w", err)
	}
	go h.watch(events)
	if o.NodeID != "" {
		h.rosterSignal, h.kicks, h.rosterDone = make(chan struct{}, 1), make(chan string, 64), make(chan struct{})
		go h.roster()
	}
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
	if h.rosterDone != nil {
		<-h.rosterDone
	}
	return nil
}

// conn is warden's state for one client connection (one *mqtt.Client).
type conn struct {
	cl       *mqtt.Client
	username string
	userID   string
	clientID string
	v5       bool
	// What a listing shows (clients.go), fixed at CONNECT.
	protocol    byte
	remote      string
	listener    string
	connectedAt time.Time

	proof            // how it authenticated: re-checked when the user changes
	willTopic string // final (prefixed) will topic; read here, never from Mochi's struct, to avoid racing it

	sess           atomic.Pointer[session] // nil once revoked
	revoked        atomic.Bool
	live           atomic.Bool // CONNACK sent: a revocation must disconnect it
	disconnectOnce sync.Once   // disconnect runs once
	tokenTimer     *time.Timer // revokes it when its login token expires

	// willDue is when (unix ns) a delayed will left by this client stops
	// being sendable; 0: none (sessions.go).
	willDue atomic.Int64
	// offline is c's element in its user's offline sessions while listed
	// (wentOffline); guarded by Hook.mu.
	offline *list.Element

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
	// Mochi asks about a SUBSCRIBE filter and a delivery topic both with
	// write=false.
	if acl.IsFilter(topic) {
		return s.bound.Covers(topic) || h.deny(c, topic, aclSubscribe)
	}
	return s.bound.Allows(topic, acl.OpRead) || h.deny(c, topic, aclDelivery)
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
	topic, ok := h.PublishTopic(s.prefix, s.bound, pk.TopicName)
	if !ok {
		return pk, h.denyPublish(cl, pk)
	}
	pk.TopicName = topic
	return pk, nil
}

// PublishTopic is the PUBLISH decision of every surface: topic with the
// publish prefix applied (within the topic limits), and whether bound may
// write there. The admin API's access check asks it too, so that its
// answer is the broker's.
func (h *Hook) PublishTopic(prefix string, bound *acl.Bound, topic string) (string, bool) {
	if prefix != "" {
		topic = prefix + topic
		if acl.ValidateTopicName(topic) != nil || !h.topicWithinLimits(topic) {
			return topic, false
		}
	}
	return topic, bound.Allows(topic, acl.OpWrite)
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
	h.clientsChanged()
}

// OnDisconnect forgets a clean session, unless it left a delayed will,
// which is checked again when due (OnWill; sweep forgets it after). A
// persistent session stays known while offline, so messages queued for it
// are still checked against its (live-updated) permissions, and counts
// towards its user's offline sessions; OnClientExpired or a takeover
// forgets it.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	h.opts.Metrics.disconnected()
	h.clientsChanged()
	c := h.lookup(cl)
	switch {
	case c == nil:
	case expire || cl.IsTakenOver():
		if !c.willPending() {
			h.forget(cl)
		}
	default:
		h.wentOffline(c)
	}
}

// OnClientExpired forgets an expired persistent session, unless it left a
// delayed will that is still pending: with a Will Delay Interval at least
// the session expiry, Mochi's expiry and will tickers fire in the same
// second in either order, and OnWill must still find the client then
// (sweep forgets it once the will has gone). It leaves its user's offline
// sessions at once.
func (h *Hook) OnClientExpired(cl *mqtt.Client) {
	if c := h.lookup(cl); c != nil && c.willPending() {
		h.mu.Lock()
		h.unlistOffline(c)
		h.mu.Unlock()
		return
	}
	h.forget(cl)
}

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
	if c.tokenTimer != nil {
		c.tokenTimer.Stop()
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
	c.disconnectOnce.Do(func() {
		go func() {
			s := h.server.Load()
			if s == nil {
				return
			}
			atomic.StoreUint32(&c.cl.Properties.Will.Flag, 0)
			_ = s.DisconnectClient(c.cl, packets.ErrNotAuthorized)
			// A persistent session would otherwise linger with its
			// subscriptions and queue; the revoked user gets nothing back.
			h.purge(s, c.cl)
		}()
	})
}

// code is the CONNACK code of a refusal of this kind for a client of
// this protocol version. Mochi maps v5 codes to v3 return codes through
// packets.V5CodesToV3; the v3 column picks codes that map to the right v3
// value.
func (r refusalKind) code(v5 bool) packets.Code {
	if !v5 {
		switch r {
		case refuseBadCredentials, refuseBlocked:
			return packets.ErrMalformedUsername // -> v3 4 bad user name or password
		case refuseNotAuthorized, refusePending, refuseTopic:
			return packets.ErrBadUsernameOrPassword // -> v3 5 not authorized
		case refuseUnavailable, refuseBusy, refuseAddress:
			return packets.ErrServerUnavailable // -> v3 3
		default:
			return packets.ErrClientIdentifierNotValid // -> v3 2
		}
	}
	var c packets.Code
	switch r {
	case refuseBadCredentials, refuseBlocked:
		c = packets.ErrBadUsernameOrPassword
	case refuseNotAuthorized, refusePending:
		c = packets.ErrNotAuthorized
	case refuseUnavailable:
		c = packets.ErrServerUnavailable
	case refuseBusy:
		c = packets.ErrServerBusy
	case refuseAddress:
		c = packets.ErrConnectionRateExceeded
		c.Reason = "too many failed logins from this address; retry later"
	case refuseTopic:
		c = packets.ErrTopicNameInvalid
	default:
		c = packets.ErrClientIdentifierNotValid
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

// OnConnect authenticates the client (authenticate, on the attempt its
// CONNECT makes) and registers it (enter). It runs before Mochi's own
// authentication step so it can answer with the precise CONNACK code; a
// refused client gets its CONNACK here and the connection closes.
func (h *Hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	now := time.Now()
	ctx := &lazyDeadline{Context: h.ctx, deadline: now.Add(h.opts.VerifyWait)}
	defer ctx.stop()
	l := newLogin(connectAttempt(cl, pk, now))
	if l.certName {
		cl.Properties.Username = []byte(l.username)
	}
	s, r := h.authenticate(ctx, &l)
	if !r.refused() {
		r = h.enter(ctx, cl, &l, s)
	}
	if !r.refused() {
		return nil
	}
	h.opts.Metrics.connectRefused(r.kind)
	code := r.kind.code(l.V5)
	if srv := h.server.Load(); srv != nil {
		_ = srv.SendConnack(cl, code, false, nil)
	}
	return code
}

// connectAttempt is the attempt cl makes with its CONNECT pk.
func connectAttempt(cl *mqtt.Client, pk packets.Packet, now time.Time) attempt {
	a := attempt{
		Attempt:   Attempt{Username: string(cl.Properties.Username), Cert: peerCertificate(cl), ClientID: cl.ID, Remote: cl.Net.Remote, Now: now},
		V5:        cl.Properties.ProtocolVersion >= 5,
		Will:      cl.Properties.Will.Flag != 0,
		WillTopic: cl.Properties.Will.TopicName,
	}
	if pk.Connect.PasswordFlag {
		a.Password = pk.Connect.Password
	}
	return a
}

// enter registers cl, admitted by authenticate with session s: from now on
// its ACL checks find s, and the change feed sees it. A change that
// reached this user while it was authenticated is applied to it here
// (and may revoke it: then it is refused after all).
func (h *Hook) enter(ctx context.Context, cl *mqtt.Client, l *login, s *session) refusal {
	if l.Will {
		cl.Properties.Will.TopicName = l.willTopic
	}
	c := &conn{cl: cl, username: l.username, userID: l.entry.user.ID, clientID: cl.ID, v5: l.V5, proof: l.proof, willTopic: l.willTopic,
		protocol: cl.Properties.ProtocolVersion, remote: l.Remote, listener: cl.Net.Listener, connectedAt: l.Now}
	c.sess.Store(s)
	h.register(c)

	// The feed goroutine sees c from now on, and anything it did before
	// is picked up by reloading here.
	if l.busy || h.epoch.Load() != l.epoch {
		if ne, err := h.model.load(ctx, l.username, h.epoch.Load()); errors.Is(err, store.ErrNotFound) {
			h.revoke(c, "user deleted")
		} else if err == nil {
			h.reevaluate(c, ne)
		}
	}
	if c.revoked.Load() {
		h.forget(cl)
		r := refusal{kind: refuseNotAuthorized, reason: "revoked during connect"}
		h.recordRefusal(ctx, l, r)
		return r
	}
	if !l.tokenExp.IsZero() {
		c.tokenTimer = time.AfterFunc(time.Until(l.tokenExp), func() { h.revoke(c, "token expired") })
	}
	if c.byPassword {
		h.lockout.Succeed(l.username, l.Remote)
	}
	return refusal{}
}

// lazyDeadline is context.WithDeadline(Context, deadline), its timer made
// on first use: a CONNECT served from the caches (user and password)
// never waits, and the timer would be a quarter of its cost.
type lazyDeadline struct {
	context.Context // the parent
	deadline        time.Time

	once   sync.Once
	inner  context.Context
	cancel context.CancelFunc
}

func (c *lazyDeadline) ctx() context.Context {
	c.once.Do(func() { c.inner, c.cancel = context.WithDeadline(c.Context, c.deadline) })
	return c.inner
}

// Deadline, Done and Err make lazyDeadline a context.Context.
func (c *lazyDeadline) Deadline() (time.Time, bool) { return c.deadline, true }
func (c *lazyDeadline) Done() <-chan struct{}       { return c.ctx().Done() }
func (c *lazyDeadline) Err() error                  { return c.ctx().Err() }

// stop releases the timer, if one was made; a use after it sees a
// context that is done.
func (c *lazyDeadline) stop() {
	c.once.Do(func() { c.inner = stoppedContext })
	if c.cancel != nil {
		c.cancel()
	}
}

// stoppedContext is done from the start (never changed after init).
var stoppedContext = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()
