package admin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/audit"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/store"
)

func (s *Server) registerSessions() {
	s.handle("POST /api/login", public, s.login)
	s.handle("POST /api/logout", public, s.logout)
	s.handle("GET /api/session", self, s.session)
	s.handle("GET /api/permissions", self, s.ownPermissions)
	// A user changing its own password reads the policy it must meet, so
	// it needs a token but no permission, like GET /api/auth/mfa below.
	s.handle("GET /api/policy/password", self, s.passwordPolicy)
	// Every user asks whether MFA is on before enrolling (README), so it
	// needs no permission: the built-in minimum-access role holds only
	// /api/session, and stores bootstrapped before keep their roles.
	s.handle("GET /api/auth/mfa", self, s.mfaConfig)
	s.handle("GET /api/auth/ldap", permitted, s.ldapConfig)
	s.handle("POST /api/broker/auth/enhanced", public, s.enhancedAuth)
}

type loginRequest struct {
	Username          string   `json:"username"`
	Password          string   `json:"password"`
	ExpireTimeInHours *float64 `json:"expireTimeInHours,omitempty"`
	Label             string   `json:"label,omitempty"`
	// DeviceToken, from an MFA login that trusted this device, skips the
	// MFA step while it is valid (mfakeys.go).
	DeviceToken string `json:"deviceToken,omitempty"`
}

type loginResponse struct {
	Token                string           `json:"token"`
	ExpiresAt            time.Time        `json:"expiresAt"`
	Permissions          []acl.Permission `json:"permissions"`
	NeedsMFA             bool             `json:"needsMfa"`
	EnforceMFAEnrollment bool             `json:"enforceMFAEnrollment"`
	// DeviceToken answers an MFA login that asked to trust the device;
	// shown this once.
	DeviceToken string `json:"deviceToken,omitempty"`
}

// errPoolBusy answers a password operation (a login, checking the current
// password, hashing a new one) that found no argon2id worker free within
// VerifyWait: the pool, shared by MQTT CONNECT, the API's logins and
// password changes and the client registry's hashing, is saturated;
// retry after a second.
var errPoolBusy = retryLater(http.StatusServiceUnavailable, time.Second, "too many logins in progress; retry later")

// errLogin is the one answer to every failed login, so it does not tell
// whether the user exists (seed: 403 "Authentication Error").
var errLogin = errorf(http.StatusForbidden, "authentication failed")

func (s *Server) login(w http.ResponseWriter, r *http.Request, _ *caller) error {
	var req loginRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.Username == "" || req.Password == "" {
		return errorf(http.StatusBadRequest, "username and password are required")
	}
	ttl := s.opts.TokenTTL
	if req.ExpireTimeInHours != nil {
		h, most := *req.ExpireTimeInHours, s.maxTokenTTL().Hours()
		if math.IsNaN(h) || h <= 0 || h > most {
			return errorf(http.StatusBadRequest, "expireTimeInHours must be above 0 and at most %.0f", most)
		}
		ttl = time.Duration(h * float64(time.Hour))
	}
	u, err := s.checkPassword(r, req.Username, req.Password)
	if err != nil {
		return err
	}
	if s.mfaRequired(u) && !s.deviceTrusted(r, u, req.DeviceToken) {
		return s.mfaChallenge(w, r, u, req.Label, ttl)
	}
	kind := credential.KindLogin
	tok, rec, err := s.tokens.Issue(r.Context(), u, kind, req.Label, ttl)
	if err != nil {
		return err
	}
	perms, err := s.effectivePermissions(r.Context(), u)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, loginResponse{Token: tok, ExpiresAt: rec.ExpiresAt, Permissions: perms, EnforceMFAEnrollment: u.EnforceMFAEnrollment})
	return nil
}

// checkPassword is the password step shared by every endpoint that logs
// in with a password (POST /api/login, its alias POST /api/oauth2, POST
// /api/v1/authenticate), so lockout and the equal-time answer cannot drift
// apart between them. Every refusal of the credentials is errLogin itself
// (callers may compare with errors.Is to answer in their own contract's
// status), a locked username included; an unknown or suspended user costs
// a hash verification like a wrong password. Two answers say something
// else, about the server or the client, never about the account: 429 when
// the client's address is over its failure limit, and 503 when no
// verification worker became free within VerifyWait (the pool is shared
// with MQTT CONNECT); both with Retry-After. Success clears the failures of
// the username from this address.
func (s *Server) checkPassword(r *http.Request, username, password string) (store.User, error) {
	ctx := r.Context()
	if len(username) > maxLoginUsernameLen {
		// No stored name is that long: refused before any work (no
		// normalisation, lockout, dummy hash), which tells nothing.
		s.log.Info("http login refused", "user", clipUsername(username), "remote", r.RemoteAddr, "reason", "username too long")
		s.auditAuth(ctx, audit.ChannelHTTPLogin, clipUsername(username), "username too long")
		return store.User{}, errLogin
	}
	// One spelling per name (NFC, as stored): the lockout must not count
	// a composed and a decomposed spelling of a name apart.
	username = credential.NormalizeUsername(username)
	if len(password) > credential.MaxPasswordLen {
		s.auditAuth(ctx, audit.ChannelHTTPLogin, username, "password too long")
		return store.User{}, errLogin
	}
	if block, left := s.lockout.Check(username, r.RemoteAddr); block != credential.NotBlocked {
		return store.User{}, s.blockedLogin(r, username, block, left)
	}
	u, err := s.st.UserByUsername(ctx, username)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.User{}, err
	}
	if s.usesDirectory(u, err) {
		return s.directoryPassword(r, username, password, u, err == nil)
	}
	wait, cancel := context.WithTimeout(ctx, s.opts.VerifyWait)
	defer cancel()
	// Behind the lockout's gate: checked again once a worker is free, so
	// logins sent at once cannot all pass the check above and all run; a
	// verification that ran and failed is counted there.
	gate := s.lockout.Gate(username, r.RemoteAddr)
	var ok, cached bool
	var verr error
	mfaLocked := err == nil && s.mfaLocked(u)
	if err == nil && u.PasswordHash != "" && !u.Suspended && passwordGrant(u) && !mfaLocked {
		ok, cached, verr = s.verifier.VerifyIf(wait, gate, u.ID, password, u.PasswordHash, u.PasswordVersion)
	} else {
		// Unknown, suspended, no password, or MFA-locked (too many wrong
		// codes: refused on every node): a dummy verification, counted as
		// a failure, so neither the time nor the lockout's schedule tells
		// that the user exists or that a guess was right.
		verr = s.verifier.DummyIf(wait, gate, password)
	}
	switch {
	case errors.Is(verr, credential.ErrBusy):
		// Not a verdict on the password: nothing counts.
		s.log.Warn("http login refused", "user", username, "remote", r.RemoteAddr, "reason", "verification pool busy")
		return store.User{}, errPoolBusy
	case errors.Is(verr, credential.ErrBlocked):
		block, left := s.lockout.Check(username, r.RemoteAddr)
		return store.User{}, s.blockedLogin(r, username, block, left)
	case mfaLocked:
		s.log.Info("http login refused", "user", username, "remote", r.RemoteAddr, "reason", "mfa locked")
		s.auditAuth(ctx, audit.ChannelHTTPLogin, username, "mfa locked")
		return store.User{}, errLogin
	case err != nil || verr != nil || !ok:
		s.log.Info("http login refused", "user", username, "remote", r.RemoteAddr)
		s.auditAuth(ctx, audit.ChannelHTTPLogin, username, loginRefusal(err, verr, ok, u))
		return store.User{}, errLogin
	}
	s.lockout.Succeed(username, r.RemoteAddr)
	if !cached {
		s.opts.Rehasher.Upgrade(u, password) // a hash of older parameters gets today's, in the background
	}
	return u, nil
}

// maxLoginUsernameLen bounds the username a login names, checked before
// anything else is done with it. A stored name is at most
// credential.MaxUsernameLen bytes in NFC; a decomposed (NFD) spelling of
// it, which logs in as the same user, takes at most three times as many
// bytes (UAX #15's maximum expansion of NFD in UTF-8), so no longer name
// can be any user's.
const maxLoginUsernameLen = 4 * credential.MaxUsernameLen

// clipUsername cuts a username that is too long to be anyone's for the
// log and the audit trail, which must not take whatever a client sends.
func clipUsername(name string) string {
	const keep = 64
	if len(name) <= keep {
		return name
	}
	return strings.ToValidUTF8(name[:keep], "") + fmt.Sprintf("... (%d bytes)", len(name))
}

// blockedLogin answers a login the lockout blocks: an address over its
// limit is told so (429 with Retry-After, for the rest of its block); a
// locked username gets the answer of a wrong password, the lock being in
// the log and the audit trail only.
func (s *Server) blockedLogin(r *http.Request, username string, block credential.Block, left time.Duration) error {
	if block == credential.BlockedAddress {
		s.log.Info("http login refused", "user", username, "remote", r.RemoteAddr, "reason", "address blocked")
		s.auditAuth(r.Context(), audit.ChannelHTTPLogin, username, "address blocked")
		return retryLater(http.StatusTooManyRequests, left, "too many failed logins from this address; retry later")
	}
	s.log.Info("http login refused", "user", username, "remote", r.RemoteAddr, "reason", "locked")
	s.auditAuth(r.Context(), audit.ChannelHTTPLogin, username, "locked")
	return errLogin
}

// passwordGrant: a user without grant types may use a password.
func passwordGrant(u store.User) bool {
	if len(u.GrantTypes) == 0 {
		return true
	}
	for _, g := range u.GrantTypes {
		if g.Method == store.GrantPassword {
			return true
		}
	}
	return false
}

type logoutRequest struct {
	Token string `json:"token"`
}

// logout revokes a token at once, for the API and MQTT: the one in the
// body, else the bearer token of the request, so a client that holds only
// its Authorization header logs out with an empty body (400 only when
// neither names a token).
func (s *Server) logout(w http.ResponseWriter, r *http.Request, _ *caller) error {
	var req logoutRequest
	if err := decodeOptional(w, r, &req); err != nil {
		return err
	}
	if req.Token == "" {
		req.Token = bearer(r)
	}
	if req.Token == "" {
		return errorf(http.StatusBadRequest, "token is required")
	}
	claims, err := s.tokens.Parse(req.Token)
	if err != nil && !errors.Is(err, credential.ErrTokenExpired) {
		return errorf(http.StatusNotFound, "token not found")
	}
	if err := s.tokens.Revoke(r.Context(), claims.TokenID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errorf(http.StatusNotFound, "token not found")
		}
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

type sessionView struct {
	Username string `json:"username"`
	// IdentityProvider tells the UI whether the caller has a password of
	// warden's to change ("local") or the directory's ("ldap").
	IdentityProvider string           `json:"identityProvider"`
	ExpiresAt        time.Time        `json:"expiresAt"`
	Permissions      []acl.Permission `json:"permissions"`
	MFA              mfaState         `json:"mfa"`
}

type mfaState struct {
	Enabled  bool `json:"enabled"`
	Enforced bool `json:"enforced"`
}

func (s *Server) session(w http.ResponseWriter, r *http.Request, c *caller) error {
	writeJSON(w, http.StatusOK, sessionView{
		Username: c.user.Username, IdentityProvider: cmp.Or(c.user.IdentityProvider, "local"), ExpiresAt: c.claims.ExpiresAt, Permissions: c.perms,
		MFA: mfaState{Enabled: s.mfaEnrolled(r.Context(), c.user), Enforced: c.user.EnforceMFAEnrollment},
	})
	return nil
}

func (s *Server) ownPermissions(w http.ResponseWriter, _ *http.Request, c *caller) error {
	writeJSON(w, http.StatusOK, c.perms)
	return nil
}

func (s *Server) passwordPolicy(w http.ResponseWriter, _ *http.Request, _ *caller) error {
	writeJSON(w, http.StatusOK, s.opts.Policy)
	return nil
}

func (s *Server) mfaConfig(w http.ResponseWriter, _ *http.Request, _ *caller) error {
	writeJSON(w, http.StatusOK, map[string]bool{"enabled": s.opts.MFAEnabled})
	return nil
}

// ldapConfig answers whether a directory is configured and its mode, as
// the seed's GET /api/auth/ldap does; nothing else of the configuration
// (least of all the bind password) is shown.
func (s *Server) ldapConfig(w http.ResponseWriter, _ *http.Request, _ *caller) error {
	writeJSON(w, http.StatusOK, map[string]any{"enabled": s.opts.LDAPEnabled, "mode": cmp.Or(s.opts.LDAPMode, "GROUP")})
	return nil
}

type enhancedAuthRequest struct {
	ClientID   string         `json:"client_id"`
	Properties map[string]any `json:"properties"`
}

// enhancedAuth answers the broker's enhanced-auth hook in the seed's
// shape: warden's broker does not support MQTT 5 enhanced authentication
// (AUTH packets), so every request is refused with result "error".
func (s *Server) enhancedAuth(w http.ResponseWriter, r *http.Request, _ *caller) error {
	var req enhancedAuthRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	method, _ := req.Properties["p_authentication_method"].(string)
	s.log.Info("mqtt enhanced authentication refused: not supported", "client_id", req.ClientID, "method", strings.TrimSpace(method))
	writeJSON(w, http.StatusOK, map[string]any{"result": "error", "modifiers": map[string]string{}})
	return nil
}
