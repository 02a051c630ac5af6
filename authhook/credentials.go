package authhook

import (
	"context"
	"errors"
	"time"

	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/pki"
	"github.com/warden-mqtt/warden/store"
)

// The second step of deciding a connection attempt (connect.go): what the
// client presented, checked against its user.

// checkCredentials checks what l presented against its user: a client
// certificate (its common name, the certificate grant, the pinned
// fingerprints), a login token or the account password sent as the
// password (the password grant, the MFA rules, the lockout), and the
// grant types the user requires. A suspended user is refused as a wrong
// password is.
func (h *Hook) checkCredentials(ctx context.Context, l *login) refusal {
	u := l.entry.user
	if u.Suspended {
		return h.refuseAsWrongPassword(ctx, l, "suspended")
	}
	allowed, required := grants(u)
	if allowed.certificate {
		l.checkCertificate(u)
	}
	certOK, pwOK := l.proof.certFP != "", false
	if l.password != "" {
		if !allowed.password {
			return h.refuseAsWrongPassword(ctx, l, "password grant not allowed")
		}
		var r refusal
		if pwOK, r = h.checkSecret(ctx, l, u, certOK && !required.password); r.refused() {
			return r
		}
	}
	switch {
	case required.password && !pwOK:
		return l.countedRefusal(refuseBadCredentials, "password required")
	case required.certificate && !certOK:
		return l.countedRefusal(refuseNotAuthorized, "client certificate required")
	case !pwOK && !certOK:
		return l.countedRefusal(refuseBadCredentials, "no valid credential")
	}
	return refusal{}
}

// checkCertificate checks l's verified client certificate, if any, as
// proof that it is u: its common name is the username, and it is pinned
// on u if u pins any (certPinned). It sets l.proof.certFP when it is.
func (l *login) checkCertificate(u store.User) {
	if l.Cert == nil || l.Cert.Subject.CommonName != l.username {
		return
	}
	if fp := pki.Fingerprint(l.Cert.Raw); certPinned(u, fp, l.Now) {
		l.proof.certFP = fp
	}
}

// checkSecret checks the password l sent: as a login token of u's if it
// is one, otherwise as u's account password (a password may look like a
// token). ok: it authenticates u. certSuffices: see checkPassword.
func (h *Hook) checkSecret(ctx context.Context, l *login, u store.User, certSuffices bool) (ok bool, r refusal) {
	if l.tokenLike {
		if ok, r = h.checkToken(ctx, l, u); ok || r.refused() {
			return ok, r
		}
	}
	if r = h.checkPassword(ctx, l, u, certSuffices); r.refused() {
		return false, r
	}
	return l.proof.byPassword, refusal{}
}

// checkToken checks l's password as a login token: ok when it is one of
// u's, still recorded; neither ok nor refused when it is not u's token at
// all (then it is checked as a password).
func (h *Hook) checkToken(ctx context.Context, l *login, u store.User) (ok bool, r refusal) {
	claims, err := h.tokens.Parse(l.password)
	if err != nil || claims.UserID != u.ID || !credential.AcceptedKind(claims.Kind) {
		return false, refusal{}
	}
	rec, err := h.st.Token(ctx, claims.TokenID)
	switch {
	case err == nil && claims.Kind == credential.KindLogin && rec.PasswordVersion != 0 && rec.PasswordVersion != u.PasswordVersion:
		// Issued for a password the user no longer has: left behind by a
		// revocation that failed (admin's staleLoginToken refuses it too).
		return false, refusal{kind: refuseBadCredentials, reason: "token of an old password"}
	case err == nil, errors.Is(err, store.ErrUnavailable) && l.fromCache:
		l.proof.tokenID, l.tokenExp = claims.TokenID, claims.ExpiresAt
		return true, refusal{}
	case errors.Is(err, store.ErrNotFound):
		// A genuine token, revoked: not a guess, so it does not count
		// towards the lockout.
		return false, refusal{kind: refuseBadCredentials, reason: "token revoked"}
	default:
		return false, refusal{kind: refuseUnavailable, reason: "store unavailable"}
	}
}

// checkPassword verifies l's password as the account password of u. It
// sets l.proof.byPassword when the password is right and usable.
// certSuffices: a verified client certificate authenticates u and the
// password is not required, so a password that cannot be used (blocked,
// MFA lock) is ignored rather than refused: password failures never keep
// a valid certificate out.
func (h *Hook) checkPassword(ctx context.Context, l *login, u store.User, certSuffices bool) refusal {
	if l.block != credential.NotBlocked {
		if certSuffices {
			return refusal{}
		}
		return blockRefusal(l.block)
	}
	// The MFA rules are decided before the password is verified: a
	// refusal costs one (dummy) verification and counts as a failure, as
	// a wrong password does, and never comes from the cache of verified
	// passwords, whose quick answer would tell a guesser the password was
	// right (and the lockout's count, which guess).
	if why := h.mfaRefusal(u, l.proof.certFP, l.Now); why != "" {
		if certSuffices {
			return refusal{}
		}
		return h.refuseAsWrongPassword(ctx, l, why)
	}
	if h.usesDirectory(u) {
		if r := h.directoryLogin(ctx, l); r.refused() {
			if certSuffices {
				return refusal{}
			}
			return r
		}
		return refusal{}
	}
	if u.PasswordHash == "" {
		return h.refuseAsWrongPassword(ctx, l, "no password set")
	}
	// The gate re-checks the lockout once a worker is free and counts a
	// wrong password before the worker is released (credential.Gate).
	gate := h.lockout.Gate(l.username, l.Remote)
	ok, cached, err := h.verifier.VerifyIf(ctx, gate, u.ID, l.password, u.PasswordHash, u.PasswordVersion)
	if !errors.Is(err, credential.ErrBusy) && !errors.Is(err, credential.ErrBlocked) {
		h.opts.Metrics.cacheLookup(cachePassword, cached)
	}
	switch {
	case errors.Is(err, credential.ErrBusy):
		return refusal{kind: refuseBusy, reason: "verification queue full"}
	case errors.Is(err, credential.ErrBlocked):
		if certSuffices {
			return refusal{}
		}
		return h.blockedNow(l)
	case errors.Is(err, credential.ErrPasswordTooLong):
		// Refused before a worker: the gate saw nothing.
		return refusal{kind: refuseBadCredentials, reason: "password too long", count: countOnRefusal}
	case err != nil:
		h.log.Error("mqtt connect: stored password hash unusable", "user", l.username, "error", err)
		return refusal{kind: refuseBadCredentials, reason: "bad stored hash", count: countedByGate}
	case !ok:
		return refusal{kind: refuseBadCredentials, reason: "wrong password", count: countedByGate}
	}
	if !cached {
		h.opts.Rehasher.Upgrade(u, l.password) // in the background: a hash of older parameters gets today's
	}
	l.proof.byPassword, l.proof.pwVersion = true, u.PasswordVersion
	return refusal{}
}

// mfaRefusal says why MFA forbids u's account password over MQTT ("" if
// it does not): with MFA on, the stored MFA lock (too many wrong codes)
// refuses it, and an active MFA key does unless the client presented a
// verified certificate (certFP, the second factor) or --mfa-mqtt-password
// allows passwords alone.
func (h *Hook) mfaRefusal(u store.User, certFP string, now time.Time) string {
	switch {
	case !h.opts.MFA:
		return ""
	case credential.MFALocked(u.MFA, now):
		return "mfa locked"
	case !h.opts.MFAAllowPassword && credential.MFAActive(u.MFA) && certFP == "":
		return "mfa required"
	}
	return ""
}

// refuseAsWrongPassword refuses l the way a wrong password is refused, in
// code and in time, whether or not the user exists, is suspended or may
// use a password at all: a password sent is verified against the dummy
// hash on the same workers, behind the login's gate, which counts the
// failure. It answers busy when no worker was free in time, and the
// lockout's refusal when the attempt is blocked (neither is counted). An
// attempt without a password is counted as countedRefusal counts.
func (h *Hook) refuseAsWrongPassword(ctx context.Context, l *login, why string) refusal {
	if l.password == "" {
		return l.countedRefusal(refuseBadCredentials, why)
	}
	if l.block != credential.NotBlocked {
		return blockRefusal(l.block)
	}
	gate := h.lockout.Gate(l.username, l.Remote)
	switch err := h.verifier.DummyIf(ctx, gate, l.password); {
	case errors.Is(err, credential.ErrBusy):
		return refusal{kind: refuseBusy, reason: "verification queue full"}
	case errors.Is(err, credential.ErrBlocked):
		return h.blockedNow(l)
	}
	r := refusal{kind: refuseBadCredentials, reason: why, count: countedByGate}
	if len(l.password) > credential.MaxPasswordLen {
		r.count = countOnRefusal // refused before a worker: the gate saw nothing
	}
	return r
}

// blockedNow is the lockout's refusal of a login that a verification gate
// found blocked.
func (h *Hook) blockedNow(l *login) refusal {
	b, _ := h.lockout.Check(l.username, l.Remote)
	return blockRefusal(b)
}

// blockRefusal answers a lockout block: an address block says so, a
// username block looks like a wrong password (the lock says nothing
// about the account).
func blockRefusal(b credential.Block) refusal {
	if b == credential.BlockedAddress {
		return refusal{kind: refuseAddress, reason: "address blocked"}
	}
	return refusal{kind: refuseBlocked, reason: "locked"}
}

// grantSet holds the grant methods warden checks: the two that prove who
// an MQTT client is.
type grantSet struct{ password, certificate bool }

func (s *grantSet) add(method string) {
	switch method {
	case store.GrantPassword:
		s.password = true
	case store.GrantCertificate:
		s.certificate = true
	}
}

// grants returns the user's allowed and required grant methods. A user
// without grant types may use a password (Connectware's default). A set,
// not a map: it is built for every CONNECT.
func grants(u store.User) (allowed, required grantSet) {
	if len(u.GrantTypes) == 0 {
		allowed.password = true
	}
	for _, g := range u.GrantTypes {
		allowed.add(g.Method)
		if g.IsRequired {
			required.add(g.Method)
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
