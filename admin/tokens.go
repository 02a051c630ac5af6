package admin

import (
	"errors"
	"net/http"
	"time"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/store"
)

// Token endpoints for other services (seeds 001 and 002): offline
// verification keys, online validation, revocation, the token exchange
// of POST /api/v1/authenticate and per-user application tokens.
func (s *Server) registerTokens() {
	s.handle("GET /api/.well-known/jwks.json", public, s.jwks)
	s.handle("POST /api/keys/rotate", permitted, s.rotateKeys)
	s.handle("GET /api/validateToken", permitted, s.validateToken)
	// 001's token endpoint: the same body and answer as POST /api/login.
	s.handle("POST /api/oauth2", public, s.login)
	// Authenticated inside the handler: the path holds a token, which must
	// be out of the path before anything can log or echo it.
	s.handle("DELETE /api/oauth2/{token}", public, s.revokeByToken)
	s.handle("POST /api/v1/authenticate", public, s.authenticateV1)
	s.handle("POST /api/v1/application_token", self, s.createApplicationToken)
	s.handle("GET /api/v1/application_token", self, s.listApplicationTokens)
	s.handle("DELETE /api/v1/application_token/{id}", self, s.deleteApplicationToken)
}

// Lifetimes of the tokens made here.
const (
	// defaultApplicationTokenTTL applies without expiry_date (capped by
	// the maximum token lifetime).
	defaultApplicationTokenTTL = 365 * 24 * time.Hour
	// exchangedTokenTTL is the most an auth_token obtained for an
	// application token lives (also capped by TokenTTL and by the
	// application token's own expiry). Revoking the application token
	// revokes them too; short lifetimes still bound what a leaked one is
	// worth.
	exchangedTokenTTL = time.Hour
	// jwksMaxAge lets services cache the key set for five minutes; one that
	// meets an unknown kid should fetch it again.
	jwksMaxAge = "public, max-age=300"
)

// maxTokenTTL is the longest lifetime the API grants: the configured
// MaxTokenTTL, but never above what the signing keys are trusted for after
// a rotation (credential refuses longer lifetimes).
func (s *Server) maxTokenTTL() time.Duration { return min(s.opts.MaxTokenTTL, s.tokens.MaxTTL()) }

// jwks publishes the keys that verify warden's tokens (RFC 7517), for
// services that check tokens without calling warden.
func (s *Server) jwks(w http.ResponseWriter, _ *http.Request, _ *caller) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", jwksMaxAge)
	return encodeJSON(w, s.tokens.JWKS())
}

// tokenValidity is the answer of GET /api/validateToken for a valid token.
type tokenValidity struct {
	Valid       bool             `json:"valid"`
	Username    string           `json:"username"`
	UserID      string           `json:"userId"`
	Kind        string           `json:"kind"`
	TokenID     string           `json:"tokenId"`
	IssuedAt    time.Time        `json:"issuedAt"`
	ExpiresAt   time.Time        `json:"expiresAt"`
	Permissions []acl.Permission `json:"permissions"`
}

// tokenInvalidity is the answer for a token that is not valid: reason is
// one of the fixed words below, never a piece of the token.
type tokenInvalidity struct {
	Valid  bool   `json:"valid"`
	Reason string `json:"reason"`
}

// Reasons of tokenInvalidity.
const (
	reasonInvalid   = "invalid"   // malformed, forged, another issuer's, unknown or retired key
	reasonExpired   = "expired"   // genuine but past its expiry
	reasonRevoked   = "revoked"   // logged out, revoked, or its user deleted
	reasonSuspended = "suspended" // genuine, but its user is suspended
)

// validateToken is token introspection for other services (seed 001). A
// token that is not valid is a successful question with a "no" answer
// (200, valid false), so a service tells "refuse this client" from
// "warden failed" (5xx) without parsing error texts. The token is read
// from the query as the seed says; callers should keep such URLs out of
// their own logs.
func (s *Server) validateToken(w http.ResponseWriter, r *http.Request, _ *caller) error {
	tok := r.URL.Query().Get("token")
	if tok == "" {
		return errorf(http.StatusBadRequest, "query parameter token is required")
	}
	claims, err := s.tokens.Verify(r.Context(), tok)
	switch {
	case err == nil:
	case errors.Is(err, credential.ErrTokenExpired):
		return writeInvalid(w, reasonExpired)
	case errors.Is(err, credential.ErrTokenRevoked):
		return writeInvalid(w, reasonRevoked)
	case errors.Is(err, credential.ErrTokenInvalid):
		return writeInvalid(w, reasonInvalid)
	default:
		return err // the store failed: 503, not a verdict on the token
	}
	u, err := s.st.User(r.Context(), claims.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return writeInvalid(w, reasonRevoked)
	}
	if err != nil {
		return err
	}
	if u.Suspended {
		return writeInvalid(w, reasonSuspended)
	}
	if stale, err := s.staleLoginToken(r.Context(), claims, u); err != nil {
		return err
	} else if stale {
		return writeInvalid(w, reasonRevoked)
	}
	perms, err := s.effectivePermissions(r.Context(), u)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, tokenValidity{
		Valid: true, Username: u.Username, UserID: u.ID, Kind: claims.Kind, TokenID: claims.TokenID,
		IssuedAt: claims.IssuedAt, ExpiresAt: claims.ExpiresAt, Permissions: perms,
	})
	return nil
}

func writeInvalid(w http.ResponseWriter, reason string) error {
	writeJSON(w, http.StatusOK, tokenInvalidity{Valid: false, Reason: reason})
	return nil
}

// revokeByToken revokes the token named in the path (seed 001: 204, no
// content). Its own user may revoke it (as POST /api/logout lets anyone
// holding it); anyone else needs write on the path. The path is replaced
// before authentication, so neither an error message nor a log line can
// carry the token.
func (s *Server) revokeByToken(w http.ResponseWriter, r *http.Request, _ *caller) error {
	tok := r.PathValue("token")
	r.URL.Path, r.URL.RawPath = "/api/oauth2/-", ""
	c, err := s.authenticate(r)
	if err != nil {
		return err
	}
	claims, err := s.tokens.Parse(tok)
	if err != nil {
		// Expired tokens are refused everywhere already; nothing to revoke.
		return errorf(http.StatusNotFound, "token not found")
	}
	if claims.UserID != c.user.ID {
		// Revoking another user's token is an administrative act: the
		// checks handle makes on the routes it authenticates itself.
		if s.mfaEnrollmentDue(c.user) {
			return errorf(http.StatusForbidden, "MFA enrollment required: enroll with POST /api/mfa/enable first")
		}
		if !c.allowed(r) {
			return errorf(http.StatusForbidden, "only the token's own user or a caller with write permission on /api/oauth2/+ may revoke it")
		}
	}
	rec, err := s.st.Token(r.Context(), claims.TokenID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && rec.UserID != claims.UserID) {
		return errorf(http.StatusNotFound, "token not found")
	}
	if err != nil {
		return err
	}
	if err := s.tokens.Revoke(r.Context(), claims.TokenID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errorf(http.StatusNotFound, "token not found")
		}
		return err
	}
	s.log.Info("token revoked", "user", claims.Username, "token_id", claims.TokenID, "by", c.user.Username)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// authenticateRequest is seed 002's Authentication: a user/password pair
// or an application token, not both.
type authenticateRequest struct {
	Username         *string `json:"username"`
	Password         *string `json:"password"`
	ApplicationToken *string `json:"application_token"`
}

type authenticateResponse struct {
	AuthToken string `json:"auth_token"`
}

// authenticateV1 is seed 002's POST /api/v1/authenticate. Failures are 401
// (this contract's status; POST /api/login answers 403), with one answer
// for every password failure, as on /api/login.
func (s *Server) authenticateV1(w http.ResponseWriter, r *http.Request, _ *caller) error {
	var req authenticateRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	var (
		u   store.User
		ttl = s.opts.TokenTTL
		err error
	)
	switch {
	case req.ApplicationToken != nil && (req.Username != nil || req.Password != nil):
		return errorf(http.StatusBadRequest, "send either username and password or application_token, not both")
	case req.ApplicationToken != nil:
		if *req.ApplicationToken == "" {
			return errorf(http.StatusBadRequest, "application_token is empty")
		}
		var app credential.Claims
		if u, app, err = s.exchangeApplicationToken(r, *req.ApplicationToken); err != nil {
			s.auditTokenRefused(r, true, err)
			return err
		}
		ttl = min(ttl, exchangedTokenTTL, app.ExpiresAt.Sub(s.now()))
		if ttl < time.Second {
			return errorf(http.StatusUnauthorized, "invalid, expired or revoked application token")
		}
		return s.exchangedToken(w, r, u, app.TokenID, ttl)
	default:
		if req.Username == nil || req.Password == nil || *req.Username == "" || *req.Password == "" {
			return errorf(http.StatusBadRequest, "username and password, or application_token, are required")
		}
		u, err = s.checkPassword(r, *req.Username, *req.Password)
		if errors.Is(err, errLogin) {
			return errorf(http.StatusUnauthorized, "authentication failed")
		}
		if err != nil {
			return err
		}
		// A password alone cannot satisfy MFA, and this contract has no
		// second step: services use application tokens instead. The same
		// rules as POST /api/login decide whether MFA applies.
		if s.mfaRequired(u) || s.mfaEnrollmentDue(u) {
			return errorf(http.StatusUnauthorized, "this account uses multi-factor authentication: log in with POST /api/login, or authenticate with an application_token")
		}
	}
	tok, _, err := s.tokens.Issue(r.Context(), u, credential.KindLogin, "", ttl)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, authenticateResponse{AuthToken: tok})
	return nil
}

// exchangedToken answers POST /api/v1/authenticate for an application
// token (appID) with a token of kind application-session: it cannot
// create application tokens, and it is recorded as obtained with the
// application token, so revoking that revokes it in the same store
// transaction (and disconnects MQTT clients using it). A revocation that
// wins the race with the exchange is the 401 of a revoked token.
func (s *Server) exchangedToken(w http.ResponseWriter, r *http.Request, u store.User, appID string, ttl time.Duration) error {
	tok, _, err := s.tokens.IssueWithParent(r.Context(), u, appID, credential.KindApplicationSession, "application token "+appID, ttl)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusUnauthorized, "invalid, expired or revoked application token")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, authenticateResponse{AuthToken: tok})
	return nil
}

// exchangeApplicationToken checks an application token for POST
// /api/v1/authenticate: genuine, unexpired, not revoked, of kind
// application, of an existing user who is not suspended. Every refusal is
// the same 401, so the answer does not say which check failed.
func (s *Server) exchangeApplicationToken(r *http.Request, tok string) (store.User, credential.Claims, error) {
	refused := errorf(http.StatusUnauthorized, "invalid, expired or revoked application token")
	claims, err := s.tokens.Verify(r.Context(), tok)
	if errors.Is(err, store.ErrUnavailable) {
		return store.User{}, claims, err
	}
	if err != nil || claims.Kind != credential.KindApplication {
		return store.User{}, claims, refused
	}
	u, err := s.st.User(r.Context(), claims.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, claims, refused
	}
	if err != nil {
		return store.User{}, claims, err
	}
	if u.Suspended {
		return store.User{}, claims, refused
	}
	return u, claims, nil
}

type applicationTokenRequest struct {
	Description string     `json:"description"`
	ExpiryDate  *time.Time `json:"expiry_date"`
}

// applicationTokenView lists an application token; the token itself is
// shown once, at creation.
type applicationTokenView struct {
	ID          string    `json:"id"`
	Description string    `json:"description"`
	ExpiryDate  time.Time `json:"expiry_date"`
	Created     time.Time `json:"created"`
}

// createdApplicationToken is the listing plus the token, shown once.
type createdApplicationToken struct {
	applicationTokenView
	ApplicationToken string `json:"application_token"`
}

func viewApplicationToken(t store.Token) applicationTokenView {
	return applicationTokenView{ID: t.ID, Description: t.Label, ExpiryDate: t.ExpiresAt, Created: t.CreatedAt}
}

// createApplicationToken issues a long-lived token for the caller. Only a
// login token may do so: an application token, or the token exchanged for
// one, that could mint others would, once leaked, outlive its own
// revocation through its successors.
func (s *Server) createApplicationToken(w http.ResponseWriter, r *http.Request, c *caller) error {
	switch c.claims.Kind {
	case credential.KindLogin:
	case credential.KindApplicationSession:
		return errorf(http.StatusForbidden, "a token obtained with an application token cannot create application tokens; log in with POST /api/login")
	default:
		return errorf(http.StatusForbidden, "application tokens cannot create application tokens; use a login token")
	}
	var req applicationTokenRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if len(req.Description) > maxNameLen {
		return errorf(http.StatusBadRequest, "description must be at most %d bytes", maxNameLen)
	}
	if err := validText("description", req.Description); err != nil {
		return err
	}
	var (
		tok string
		rec store.Token
		err error
	)
	if req.ExpiryDate == nil {
		ttl := min(defaultApplicationTokenTTL, s.maxTokenTTL())
		tok, rec, err = s.tokens.Issue(r.Context(), c.user, credential.KindApplication, req.Description, ttl)
	} else {
		// Checked here for a clear 400; IssueUntil checks again with its
		// own clock, and keeps the date to the second.
		ttl, most := req.ExpiryDate.Sub(s.now()), s.maxTokenTTL()
		if ttl <= 0 {
			return errorf(http.StatusBadRequest, "expiry_date must be in the future")
		}
		if ttl > most {
			return errorf(http.StatusBadRequest, "expiry_date must be at most %.0f hours from now", most.Hours())
		}
		tok, rec, err = s.tokens.IssueUntil(r.Context(), c.user, credential.KindApplication, req.Description, *req.ExpiryDate)
	}
	if err != nil {
		return err
	}
	s.log.Info("application token created", "user", c.user.Username, "token_id", rec.ID)
	writeJSON(w, http.StatusCreated, createdApplicationToken{applicationTokenView: viewApplicationToken(rec), ApplicationToken: tok})
	return nil
}

// listApplicationTokens lists the caller's own application tokens, oldest
// first, expired ones included until their records go.
func (s *Server) listApplicationTokens(w http.ResponseWriter, r *http.Request, c *caller) error {
	toks, err := s.st.UserTokens(r.Context(), c.user.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	out := make([]applicationTokenView, 0, len(toks))
	for _, t := range toks {
		if t.Kind == credential.KindApplication {
			out = append(out, viewApplicationToken(t))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// deleteApplicationToken revokes one of the caller's own application
// tokens; any other ID is 404, so IDs of other users cannot be probed.
func (s *Server) deleteApplicationToken(w http.ResponseWriter, r *http.Request, c *caller) error {
	id := r.PathValue("id")
	t, err := s.st.Token(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (t.UserID != c.user.ID || t.Kind != credential.KindApplication)) {
		return errorf(http.StatusNotFound, "application token not found")
	}
	if err != nil {
		return err
	}
	if err := s.tokens.Revoke(r.Context(), id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errorf(http.StatusNotFound, "application token not found")
		}
		return err
	}
	s.log.Info("application token revoked", "user", c.user.Username, "token_id", id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// rotateKeys makes a new token signing key current on every node. Tokens
// signed with the old key keep verifying until they expire; the answer is
// the new key set, current key first.
func (s *Server) rotateKeys(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := s.tokens.Rotate(r.Context()); err != nil {
		return err
	}
	set := s.tokens.JWKS()
	if len(set.Keys) > 0 {
		s.log.Info("token signing key rotated", "kid", set.Keys[0].KID, "by", c.user.Username)
	}
	writeJSON(w, http.StatusOK, set)
	return nil
}
