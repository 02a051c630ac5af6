package admin

import (
	"errors"
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
	s.handle("GET /api/policy/password", permitted, s.passwordPolicy)
	s.handle("GET /api/auth/mfa", permitted, s.mfaConfig)
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
// apart between them. Every refusal is errLogin itself (callers may
// compare with errors.Is to answer in their own contract's status); an
// unknown user costs a hash verification like a wrong password. Success
// clears the user's failure count.
func (s *Server) checkPassword(r *http.Request, username, password string) (store.User, error) {
	if len(password) > credential.MaxPasswordLen {
		s.auditAuth(r.Context(), audit.ChannelHTTPLogin, username, "password too long")
		return store.User{}, errLogin
	}
	if s.locked(username) {
		// Same answer as a wrong password; the lock is in the log.
		s.log.Info("http login refused", "user", username, "remote", r.RemoteAddr, "reason", "locked")
		s.auditAuth(r.Context(), audit.ChannelHTTPLogin, username, "locked")
		return store.User{}, errLogin
	}
	u, err := s.st.UserByUsername(r.Context(), username)
	hash := s.dummyHash
	switch {
	case err == nil:
		hash = u.PasswordHash
		if hash == "" {
			hash = s.dummyHash
		}
	case errors.Is(err, store.ErrNotFound):
	default:
		return store.User{}, err
	}
	ok, verr := credential.Verify(password, hash)
	if err != nil || verr != nil || !ok || u.PasswordHash == "" || u.Suspended || !passwordGrant(u) {
		s.fail(username)
		s.log.Info("http login refused", "user", username, "remote", r.RemoteAddr)
		s.auditAuth(r.Context(), audit.ChannelHTTPLogin, username, loginRefusal(err, verr, ok, u))
		return store.User{}, errLogin
	}
	if s.mfaLocked(u) {
		// Too many wrong MFA codes: refused on every node, like a lock.
		s.log.Info("http login refused", "user", username, "remote", r.RemoteAddr, "reason", "mfa locked")
		s.auditAuth(r.Context(), audit.ChannelHTTPLogin, username, "mfa locked")
		return store.User{}, errLogin
	}
	s.succeed(username)
	return u, nil
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

func (s *Server) locked(username string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.failures[username]
	return f != nil && s.now().Before(f.lockedUntil)
}

func (s *Server) fail(username string) {
	if s.opts.LoginMaxFailures < 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if len(s.failures) > 100_000 { // bound memory under a username spray
		for k, f := range s.failures {
			if now.After(f.lockedUntil) {
				delete(s.failures, k)
			}
		}
	}
	f := s.failures[username]
	if f == nil || now.Sub(f.first) > s.opts.LoginBackoff {
		f = &loginFailures{first: now}
		s.failures[username] = f
	}
	f.count++
	if f.count >= s.opts.LoginMaxFailures {
		f.lockedUntil = now.Add(s.opts.LoginBackoff)
		f.count, f.first = 0, now
	}
}

// lock locks username for LoginBackoff at once (too many wrong MFA
// codes), with the same effect as too many wrong passwords.
func (s *Server) lock(username string) {
	if s.opts.LoginMaxFailures < 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.failures[username] = &loginFailures{first: now, lockedUntil: now.Add(s.opts.LoginBackoff)}
}

func (s *Server) succeed(username string) {
	s.mu.Lock()
	delete(s.failures, username)
	s.mu.Unlock()
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
	Username    string           `json:"username"`
	ExpiresAt   time.Time        `json:"expiresAt"`
	Permissions []acl.Permission `json:"permissions"`
	MFA         mfaState         `json:"mfa"`
}

type mfaState struct {
	Enabled  bool `json:"enabled"`
	Enforced bool `json:"enforced"`
}

func (s *Server) session(w http.ResponseWriter, r *http.Request, c *caller) error {
	writeJSON(w, http.StatusOK, sessionView{
		Username: c.user.Username, ExpiresAt: c.claims.ExpiresAt, Permissions: c.perms,
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

func (s *Server) ldapConfig(w http.ResponseWriter, _ *http.Request, _ *caller) error {
	writeJSON(w, http.StatusOK, map[string]any{"enabled": false, "mode": "GROUP"})
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
