package authhook

import (
	"context"
	"errors"
	"time"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/registry"
	"github.com/warden-mqtt/warden/store"
)

// This file and credentials.go decide a connection attempt in three
// steps that take no broker packet or client: resolveUser, then
// checkCredentials, then admit (authenticate runs them). The Mochi hook
// builds the attempt from a CONNECT, and registers and answers the client
// (OnConnect in hook.go); a NATS auth callout or a broker's auth webhook
// can build one from its request. Only admit asks Mochi anything: the
// server the hook is attached to, if any, for its topic limits (checkWill)
// and its clients by ID (claimClientID).

// attempt is a client's request to connect, as the surface it came
// through saw it: what every surface reports (Attempt, decide.go) and what
// only the Mochi hook sees. Its fields are what the surface fills in; the
// steps work on a login made from it (newLogin).
type attempt struct {
	Attempt
	V5 bool // MQTT 5 (else 3.1.1 or 3.1)
	// Will: the client left a will, on WillTopic (as sent, before the
	// publish prefix).
	Will      bool
	WillTopic string
}

// login is an attempt being decided: what every step reads, worked out
// once from the attempt, and what each step learns.
type login struct {
	attempt
	// username is the name matched against the store: the one sent, in
	// one spelling per name (NFC, as stored), so the lockout, the cache
	// and the {username} placeholder see a decomposed spelling as the same
	// name; or the certificate's common name (certName).
	username string
	certName bool
	password string // "" when none was sent

	// resolveUser: the lockout's answer before any check, whether the
	// password may be a login token, and the user.
	block     credential.Block
	tokenLike bool
	entry     *entry
	fromCache bool   // entry came from the cache (a token's record may then be unreachable)
	epoch     uint64 // the change-feed epoch before the lookup
	busy      bool   // a change was being applied: recheck after registering

	// checkCredentials: what proved who the client is, and when a login
	// token sent as the password expires.
	proof    proof
	tokenExp time.Time

	// admit: the will's topic with the publish prefix ("" without a will).
	willTopic string
}

// newLogin starts deciding a.
func newLogin(a attempt) login {
	l := login{attempt: a, username: credential.NormalizeUsername(a.Username)}
	if l.username == "" && a.Cert != nil {
		l.username, l.certName = a.Cert.Subject.CommonName, true
	}
	if len(a.Password) > 0 {
		l.password = string(a.Password)
	}
	return l
}

// proof says how a client authenticated; reevaluate checks it again when
// the user changes.
type proof struct {
	byPassword bool   // the account password, in version pwVersion
	pwVersion  uint64 // (the store bumps it with every password change)
	tokenID    string // a login token sent as the password
	certFP     string // a client certificate (its fingerprint)
	directory  bool   // the directory checked the password (byPassword is set too)
}

// refusalKind is what a refused client is told: its MQTT code
// (refusalKind.code) and the metrics label (refusalReasons).
type refusalKind int

const (
	refuseBadCredentials refusalKind = iota // v5 0x86, v3 4
	refuseNotAuthorized                     // v5 0x87, v3 5
	refuseUnavailable                       // v5 0x88, v3 3
	refuseBusy                              // v5 0x89, v3 3
	refuseClientID                          // v5 0x85, v3 2
	refuseBlocked                           // as refuseBadCredentials: the username is locked
	refusePending                           // as refuseNotAuthorized: registration pending
	refuseAddress                           // v5 0x9F, v3 3: too many failures from the address
	refuseTopic                             // v5 0x90, v3 5: the (prefixed) will topic exceeds the topic limits
	refusalKinds                            // the number of refusal kinds, for metrics
)

// lockoutCount says how a refusal counts towards the lockout.
type lockoutCount uint8

const (
	// notCounted: no guess at a password (a client certificate was
	// presented, a genuine but revoked token, a store failure, a pending
	// registration, a lockout block, ...).
	notCounted lockoutCount = iota
	// countOnRefusal: recordRefusal counts it (Lockout.Fail).
	countOnRefusal
	// countedByGate: the verification's gate counted it before the
	// worker was released (credential.Gate).
	countedByGate
)

// refusal is a refused connection attempt: what the client is told
// (kind), why, for the log and the audit trail (reason: a fixed phrase,
// never a secret), and how it counts towards the lockout. The zero
// refusal, without a reason, admits.
type refusal struct {
	kind   refusalKind
	reason string
	count  lockoutCount
}

// refused reports whether r refuses (the zero refusal admits).
func (r refusal) refused() bool { return r.reason != "" }

// countsTowardsLockout reports whether r counts as a failed login.
func (r refusal) countsTowardsLockout() bool { return r.count != notCounted }

// countedRefusal refuses l as a guess: it counts towards the lockout
// unless l presented a client certificate, password or not, so unknown
// usernames and missing credentials are throttled too
// (--auth-max-failures-ip). Certificate failures are not counted, so one
// bad device cannot block a NAT of certificate devices.
func (l *login) countedRefusal(kind refusalKind, reason string) refusal {
	r := refusal{kind: kind, reason: reason}
	if l.Cert == nil {
		r.count = countOnRefusal
	}
	return r
}

// authenticate decides l: resolveUser, checkCredentials, then admit. It
// returns the admitted client's session snapshot, or the refusal, which
// it has recorded (recordRefusal).
func (h *Hook) authenticate(ctx context.Context, l *login) (*session, refusal) {
	r := h.resolveUser(ctx, l)
	if !r.refused() {
		r = h.checkCredentials(ctx, l)
	}
	var s *session
	if !r.refused() {
		s, r = h.admit(l)
	}
	if r.refused() {
		h.recordRefusal(ctx, l, r)
		return nil, r
	}
	return s, r
}

// recordRefusal counts r towards the lockout when it is to be counted
// now, and logs and audits its reason.
func (h *Hook) recordRefusal(ctx context.Context, l *login, r refusal) {
	if r.count == countOnRefusal {
		h.lockout.Fail(l.username, l.Remote)
	}
	h.log.Info("mqtt connect refused", "user", l.username, "client", l.ClientID, "remote", l.Remote, "reason", r.reason)
	h.auditRefusal(ctx, l, r.reason)
}

// resolveUser finds the user l names, from the cache of users (which
// keeps a known user connecting while the store is down) or the store. An
// unknown name is offered to the client registry (the implicit flow).
func (h *Hook) resolveUser(ctx context.Context, l *login) refusal {
	if l.username == "" {
		return refusal{kind: refuseBadCredentials, reason: "anonymous"}
	}
	// Failures block attempts without a certificate or token only: a
	// client certificate or a login token is checked whatever the lockout
	// says. Without either, a blocked attempt ends here, before the store.
	l.block, _ = h.lockout.Check(l.username, l.Remote)
	l.tokenLike = l.password != "" && h.tokens != nil && credential.LooksLikeToken(l.password)
	if l.block != credential.NotBlocked && l.Cert == nil && !l.tokenLike {
		return blockRefusal(l.block)
	}

	// A recheck after registering is needed only if a change was being
	// processed while we authenticate; an older cached entry is current
	// (the feed keeps it so), and must not cost a store call, which would
	// stall every reconnect while the store is down.
	l.epoch = h.epoch.Load()
	l.busy = h.settled.Load() != l.epoch || h.dirty.Load()
	l.entry = h.model.cached(l.username)
	h.opts.Metrics.cacheLookup(cacheUser, l.entry != nil)
	if l.entry != nil {
		l.fromCache = true
		return refusal{}
	}
	e, err := h.model.load(ctx, l.username, h.epoch.Load())
	switch {
	case err == nil:
		l.entry = e
		return refusal{}
	case errors.Is(err, store.ErrNotFound) && h.opts.Directory != nil && l.password != "" && l.block == credential.NotBlocked:
		// A directory user's first CONNECT creates it; a name the
		// directory does not know either goes on to the registry. A
		// blocked attempt (here only with a token-like password) is not
		// sent to the directory: the paths below refuse it.
		r := h.directoryLogin(ctx, l)
		if r.refused() && r.kind == refuseBadCredentials && h.opts.Registry != nil {
			return h.offerToRegistry(ctx, l)
		}
		return r
	case errors.Is(err, store.ErrNotFound) && h.opts.Registry != nil:
		return h.offerToRegistry(ctx, l)
	case errors.Is(err, store.ErrNotFound):
		return h.refuseAsWrongPassword(ctx, l, "unknown user")
	case errors.Is(err, errBrokenModel):
		h.log.Error("mqtt connect: user's permissions do not compile", "user", l.username, "error", err)
		return refusal{kind: refuseNotAuthorized, reason: "broken permissions"}
	default:
		h.log.Warn("mqtt connect: store unavailable", "user", l.username, "error", err)
		return refusal{kind: refuseUnavailable, reason: "store unavailable"}
	}
}

// offerToRegistry hands an attempt naming an unknown user to the client
// registry, and loads the user if the registry created it.
func (h *Hook) offerToRegistry(ctx context.Context, l *login) refusal {
	switch h.opts.Registry.ConnectAttempt(ctx, l.username, l.Password, l.Cert) {
	case registry.Granted:
		e, err := h.model.load(ctx, l.username, h.epoch.Load())
		if err != nil {
			return refusal{kind: refuseNotAuthorized, reason: "registered, not yet loadable"}
		}
		l.entry = e
		return refusal{}
	case registry.Pending:
		// Not a failure to count: the device waits for an admin.
		return refusal{kind: refusePending, reason: "registration pending"}
	}
	return h.refuseAsWrongPassword(ctx, l, "unknown user")
}

// admit decides what the authenticated client gets: its session
// snapshot (the user's permissions bound to its username and client ID,
// and the publish prefix), its will if it may publish it (l.willTopic),
// and its client ID (claimClientID).
func (h *Hook) admit(l *login) (*session, refusal) {
	e := l.entry
	s := &session{prefix: e.user.MQTTPublishPrefix, bound: e.matcher.Bind(l.username, l.ClientID), epoch: e.epoch}
	if r := h.checkWill(l, s); r.refused() {
		return nil, r
	}
	if r := h.claimClientID(l.ClientID, l.username); r.refused() {
		return nil, r
	}
	return s, refusal{}
}

// checkWill checks the will topic like a publish (Mochi never does) and
// applies the prefix to it (l.willTopic). It refuses a topic not
// permitted, or one the prefix made exceed the topic limits, as Mochi
// refuses a will topic over them (0x90 / 5): accepted now, it would be
// dropped when due (mayPublishWill), without a word.
func (h *Hook) checkWill(l *login, s *session) refusal {
	if !l.Will {
		return refusal{}
	}
	topic := s.prefix + l.WillTopic
	if !h.topicWithinLimits(topic) {
		return refusal{kind: refuseTopic, reason: "will topic exceeds the topic limits"}
	}
	if acl.ValidateTopicName(topic) != nil || !s.bound.Allows(topic, acl.OpWrite) {
		return refusal{kind: refuseNotAuthorized, reason: "will topic not permitted"}
	}
	l.willTopic = topic
	return refusal{}
}

// claimClientID refuses a client ID held by another user's connected
// client: Mochi would hand the new client that session's subscriptions
// and queue. Another user's offline session is purged first instead; the
// user's own offline session, resumed or replaced now, leaves its offline
// sessions. Without a server attached there is no session to hold the
// ID. Mochi adds a client to its table only once it is authenticated, so
// a client found there is another connection.
func (h *Hook) claimClientID(clientID, username string) refusal {
	s := h.server.Load()
	if s == nil {
		return refusal{}
	}
	existing, ok := s.Clients.Get(clientID)
	if !ok {
		return refusal{}
	}
	if ec := h.lookup(existing); ec != nil && ec.username == username {
		if existing.Closed() {
			h.mu.Lock()
			h.unlistOffline(ec)
			h.mu.Unlock()
		}
		return refusal{}
	}
	if !existing.Closed() {
		return refusal{kind: refuseClientID, reason: "client ID in use by another user"}
	}
	h.purge(s, existing)
	return refusal{}
}
