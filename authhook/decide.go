package authhook

import (
	"context"
	"crypto/x509"
	"errors"
	"time"

	"github.com/warden-mqtt/warden/acl"
)

// Decide is the CONNECT decision of connect.go for surfaces other than the
// embedded broker (a NATS auth callout, a broker's auth webhook): the same
// resolveUser and checkCredentials steps, the same lockout, audit records
// and metrics, without the Mochi parts of admit. Client-ID ownership
// across another broker's cluster and the will check are left to the
// surface (Attempt.Admit); a surface whose broker keeps the decision
// keeps the Decision's Grant and asks Recheck when the model changes
// (recheck.go).

// Attempt is a client's request to connect, as the broker it came
// through reported it.
type Attempt struct {
	Username string // as sent; "" with a certificate: its common name
	Password []byte // nil or empty: none sent
	// Cert is the client's certificate, verified against a trusted CA
	// by the surface (the TLS listener's ClientCAs); nil: none.
	Cert     *x509.Certificate
	ClientID string
	Remote   string // the client's address, "host:port" or "host"
	// Admit, when set, is the surface's last word on an attempt the rules
	// admitted: a non-nil error refuses it, audited with the error's text
	// as the reason (it must hold no secret), as not authorized unless it
	// is a *Refusal naming another code. A surface
	// that cannot express what the user may do (NATS subjects) refuses
	// here, loudly, instead of granting more or less.
	Admit func(Decision) error
	Now   time.Time // Decide: zero is time.Now()
}

// Decision is an admitted attempt: who the client is and what it may do.
type Decision struct {
	UserID   string
	Username string // the name the user matched: as stored, or the certificate's common name
	ClientID string
	// Permissions are the user's mqtt permissions, placeholders
	// unresolved: {username} is Username, {clientId} is ClientID.
	Permissions []acl.Permission
	// PublishPrefix is the user's mqttPublishPrefix ("" when none); a
	// surface that cannot prepend it refuses such a user in Attempt.Admit.
	PublishPrefix string
	// TokenExpiry is when the login token sent as the password expires;
	// zero when no token was used.
	TokenExpiry time.Time
	// Grant is how the client proved who it is: the surface keeps it with
	// the connection and hands it to Recheck when the model changes.
	Grant Grant
}

// Grant records how an admitted client authenticated, for Recheck. It
// holds no secret (a token's ID is not the token), so a surface may keep
// it where the broker can read it, e.g. in a JWT's tags.
type Grant struct {
	UserID   string `json:"u"`
	Username string `json:"n"`
	ClientID string `json:"c,omitempty"`
	// ByPassword: the account password, in PasswordVersion.
	ByPassword      bool   `json:"p,omitempty"`
	PasswordVersion uint64 `json:"v,omitempty"`
	// ByDirectory: the directory checked the password (ByPassword is set
	// too); the grant ends when the user stops being a directory user.
	ByDirectory     bool   `json:"d,omitempty"`
	TokenID         string `json:"t,omitempty"` // a login token sent as the password
	CertFingerprint string `json:"f,omitempty"` // a client certificate
}

// RefusalCode says why a connection attempt was refused, as the metrics'
// "reason" label names it (String); the surface maps it to its own
// answer.
type RefusalCode int

// The refusal codes, one per kind of refusal the embedded broker tells
// its clients apart.
const (
	RefusedBadCredentials = RefusalCode(refuseBadCredentials)
	RefusedNotAuthorized  = RefusalCode(refuseNotAuthorized)
	RefusedUnavailable    = RefusalCode(refuseUnavailable)
	RefusedBusy           = RefusalCode(refuseBusy)
	RefusedClientID       = RefusalCode(refuseClientID)
	RefusedBlocked        = RefusalCode(refuseBlocked)
	RefusedPending        = RefusalCode(refusePending)
	RefusedAddress        = RefusalCode(refuseAddress)
	RefusedTopic          = RefusalCode(refuseTopic)
)

// String is the code's metrics label, e.g. "bad_credentials".
func (c RefusalCode) String() string {
	if c < 0 || c >= RefusalCode(refusalKinds) {
		return "unknown"
	}
	return refusalReasons[c]
}

// Refusal is the error Decide returns for a refused attempt; it is already
// logged, audited, counted and, if it was a guess, counted towards the
// lockout.
type Refusal struct {
	Code RefusalCode
	// Reason is the audit reason: a fixed phrase, never a secret.
	Reason string
}

func (r *Refusal) Error() string { return "authhook: connect refused: " + r.Reason }

// Decide decides a, as the embedded broker decides a CONNECT. It returns
// the decision, or a *Refusal.
func (h *Hook) Decide(ctx context.Context, a Attempt) (Decision, error) {
	if a.Now.IsZero() {
		a.Now = time.Now()
	}
	dctx := &lazyDeadline{Context: ctx, deadline: a.Now.Add(h.opts.VerifyWait)}
	defer dctx.stop()
	l := newLogin(attempt{Attempt: a})
	r := h.resolveUser(dctx, &l)
	if !r.refused() {
		r = h.checkCredentials(dctx, &l)
	}
	var d Decision
	if !r.refused() {
		d = decision(&l)
		if a.Admit != nil {
			if err := a.Admit(d); err != nil {
				r = admitRefusal(err)
			}
		}
	}
	if r.refused() {
		h.recordRefusal(dctx, &l, r)
		h.opts.Metrics.connectRefused(r.kind)
		return Decision{}, &Refusal{Code: RefusalCode(r.kind), Reason: r.reason}
	}
	if l.proof.byPassword {
		h.lockout.Succeed(l.username, l.Remote)
	}
	if m := h.opts.Metrics; m != nil {
		m.accepted.Inc() // not the active gauge: this surface never reports the disconnect
	}
	return d, nil
}

// decision is what an admitted login may do: its user's mqtt permissions.
func decision(l *login) Decision {
	e := l.entry
	var perms []acl.Permission
	for _, p := range e.perms {
		if p.Context == acl.ContextMQTT {
			perms = append(perms, p)
		}
	}
	return Decision{
		UserID:        e.user.ID,
		Username:      l.username,
		ClientID:      l.ClientID,
		Permissions:   perms,
		PublishPrefix: e.user.MQTTPublishPrefix,
		TokenExpiry:   l.tokenExp,
		Grant: Grant{
			UserID: e.user.ID, Username: l.username, ClientID: l.ClientID,
			ByPassword: l.proof.byPassword, PasswordVersion: l.proof.pwVersion, ByDirectory: l.proof.directory,
			TokenID: l.proof.tokenID, CertFingerprint: l.proof.certFP,
		},
	}
}

// admitRefusal is the refusal for an error of Attempt.Admit.
func admitRefusal(err error) refusal {
	var r *Refusal
	if errors.As(err, &r) && r.Code >= 0 && r.Code < RefusalCode(refusalKinds) {
		return refusal{kind: refusalKind(r.Code), reason: r.Reason}
	}
	return refusal{kind: refuseNotAuthorized, reason: err.Error()}
}
