package admin

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warden-mqtt/warden/account"
	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/audit"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/pki"
	"github.com/warden-mqtt/warden/registry"
	"github.com/warden-mqtt/warden/store"
)

// Built-in names shared with the bootstrap in cmd/warden.
const (
	// RoleAdmin is the built-in administrator role; it cannot be deleted
	// and its last holder cannot lose it (account.RoleAdmin).
	RoleAdmin = account.RoleAdmin
	// RoleMinimum lets a user log in and read its own session.
	RoleMinimum = "minimum-access"
)

// Defaults for Options fields left zero.
const (
	DefaultTokenTTL         = 24 * time.Hour
	DefaultMaxTokenTTL      = 365 * 24 * time.Hour
	DefaultLoginMaxFailures = 5
	DefaultLoginBackoff     = 5 * time.Minute
	// DefaultVerifyWait is how long a login waits for a password
	// verification worker before it is answered 503.
	DefaultVerifyWait = time.Second
	// DefaultTrustedDeviceDays is how long a device trusted at an MFA
	// login skips the MFA step.
	DefaultTrustedDeviceDays = 30
	// MaxTrustedDeviceDays bounds TrustedDeviceDays: a device token is a
	// second factor that never asks again, so it should not outlive a
	// year.
	MaxTrustedDeviceDays = 365
)

// Options configure the API server.
type Options struct {
	Store  store.Store
	Tokens *credential.Tokens
	Logger *slog.Logger
	// Audit receives a record of every change made through the API and
	// of every refused login, MFA code and bearer token (audit.go); nil:
	// no audit trail.
	Audit *audit.Logger
	// Policy is the password policy (GET /api/policy/password).
	Policy credential.Policy
	// Params are the argon2id parameters for new password hashes.
	Params credential.Params
	// TokenTTL is the lifetime of a login token without
	// expireTimeInHours; MaxTokenTTL caps expireTimeInHours.
	TokenTTL    time.Duration
	MaxTokenTTL time.Duration
	// Lockout is the brute-force limit on password logins, shared with
	// MQTT CONNECT (cmd/warden builds one for both). nil: one of the
	// server's own, where LoginMaxFailures failed logins of a username
	// from one address within LoginBackoff block that pair for
	// LoginBackoff (negative: no lockout), with the credential package's
	// defaults for the per-username and per-address limits.
	// LoginMaxFailures is also the number of wrong MFA codes that lock an
	// account (for LoginBackoff), whatever Lockout is.
	Lockout          *credential.Lockout
	LoginMaxFailures int
	LoginBackoff     time.Duration
	// Verifier runs the API's argon2id work on the worker pool shared
	// with MQTT CONNECT and the client registry: the verifications of
	// password logins and of the current password of a change, and the
	// hashing of new passwords (user creation, password changes); nil: a
	// pool of the server's own (credential defaults, dummy hash made with
	// Params). Each waits at most VerifyWait for a worker, then is
	// answered 503 with Retry-After. Give the Registry the same Verifier,
	// so that the public registration endpoint hashes on the same pool.
	Verifier   *credential.Verifier
	VerifyWait time.Duration
	// Rehasher upgrades the stored hash of a password a login verified
	// when it was made with other parameters than today's; shared with
	// MQTT CONNECT (cmd/warden builds one for both). nil: no upgrades.
	Rehasher *credential.Rehasher
	// MFAEnabled switches MFA on (GET /api/auth/mfa reports it). Off,
	// logins never ask for a code, enforceMFAEnrollment restricts nothing
	// and the /api/mfa endpoints other than isenrolled answer 403; the
	// stored MFA state is kept and applies again when MFA is switched on.
	MFAEnabled bool
	// LDAPEnabled and LDAPMode are what GET /api/auth/ldap reports: a
	// directory is configured (cmd/warden's --ldap-url), and how its users
	// get roles ("GROUP" or "ATTRIBUTE"; "" reads as "GROUP").
	LDAPEnabled bool
	LDAPMode    string
	// Directory, when set, checks the passwords of directory users and of
	// names the store does not know at the password logins (directory.go).
	Directory Directory
	// TrustedDeviceDays is how long a device trusted at an MFA login
	// (trustDevice) skips the MFA step; 0: DefaultTrustedDeviceDays, at
	// most MaxTrustedDeviceDays.
	TrustedDeviceDays int
	// Now is the clock of login lockout and MFA (codes, challenges,
	// locks); nil: time.Now. Tests inject one.
	Now func() time.Time
	// Registry is the client registry (required), the one the MQTT side
	// records implicit registrations in.
	Registry *registry.Registry
	// Trust is the trusted-certificate inventory behind /api/certificates
	// (required), the same one the TLS listeners verify client
	// certificates with.
	Trust *pki.TrustStore
	// Metrics is the Prometheus registry GET /metrics serves and the API
	// registers its own metrics with (metrics.go); nil: a registry of the
	// API's metrics alone.
	Metrics *prometheus.Registry
	// Ready, when set, is asked by GET /readyz whether the MQTT listeners
	// serve (health.go); the store is checked in any case.
	Ready func() error
	// RestoreMaxBytes bounds the decompressed content of an archive
	// uploaded to POST /api/maintenance/db/restore, and with it the
	// upload; 0: store.DefaultRestoreMaxBytes, at most
	// store.MaxArchiveContentBytes.
	RestoreMaxBytes int64
	// UI, when set, serves the admin web UI: GET / and GET /assets/...
	// (webui.Handler). It answers without a token (the pages hold none);
	// everything it shows comes from /api with the caller's token.
	UI http.Handler
	// BrokerHooks are the external brokers' auth webhooks by net/http
	// pattern ("POST /api/broker/auth/publish", from webhook.Handler.Routes),
	// each under /api/broker/. They are mounted behind the broker's
	// authentication (brokerhooks.go): a client certificate that chains to
	// WebhookClientCAs, or a bearer token whose user holds the http
	// permission for the method and path.
	BrokerHooks map[string]http.HandlerFunc
	// Broker is the embedded broker's PUBLISH decision (the
	// *authhook.Hook), which GET /api/access/check applies so that its
	// answer is the broker's; nil (a broker without authentication): that
	// endpoint answers 503.
	Broker PublishDecider
	// WebhookClientCAs are the CAs whose client certificates authenticate
	// a broker on BrokerHooks without a token; nil: only tokens do. The
	// listener must be TLS and ask for client certificates (cmd/warden's
	// --webhook-client-ca). Not modified after New.
	WebhookClientCAs *x509.CertPool
	// Clients lists and disconnects the connected MQTT clients
	// (/api/clients, clients.go); nil: those routes answer 503.
	Clients ClientDirectory
}

// Server is the admin HTTP API.
type Server struct {
	opts     Options
	st       store.Store
	tokens   *credential.Tokens
	registry *registry.Registry
	mfa      *credential.MFAService
	accounts *account.Service // the rules of user and role changes
	log      *slog.Logger
	mux      *http.ServeMux
	routes   []route
	maint    *maintenance // backup and restore (maintenance.go)
	metrics  *metrics     // Prometheus metrics (metrics.go)
	// openAPI is the document GET /api/openapi.json serves: openapi.json
	// with the broker hooks added (brokerhooks.go).
	openAPI     []byte
	clientCerts *certVerdicts // the broker hooks' client certificates

	// verifier checks passwords on the shared worker pool; a login of an
	// unknown user verifies its dummy hash, so the answer takes as long
	// as for a wrong password.
	verifier *credential.Verifier
	lockout  *credential.Lockout
	now      func() time.Time
}

// route is one registered endpoint, listed by the OpenAPI test.
type route struct {
	method, path string
	access       access
}

// access says who may call a route.
type access int

const (
	// public: no token (login, logout, registry register/status).
	public access = iota
	// self: any valid token (own session, permissions, password).
	self
	// permitted: a token whose http permissions allow method and path.
	permitted
	// brokerAccess: a broker webhook, a client certificate from
	// WebhookClientCAs or a token as for permitted (brokerhooks.go).
	brokerAccess
)

// New builds the server and registers every route. Store, Tokens,
// Registry and Trust are required: the binary builds the client registry
// and the trust store once and shares them with the MQTT side, so the API
// never builds a second one of its own. The other options have defaults.
func New(o Options) (*Server, error) {
	if err := o.checkRequired(); err != nil {
		return nil, err
	}
	o.setDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	if err := o.buildGuards(); err != nil {
		return nil, err
	}
	mfa, err := credential.NewMFAService(context.Background(), credential.MFAServiceOptions{
		Store: o.Store, Enabled: o.MFAEnabled, MaxFailures: o.LoginMaxFailures, Backoff: o.LoginBackoff,
		TrustedDeviceTTL: time.Duration(o.TrustedDeviceDays) * 24 * time.Hour, Lockout: o.Lockout, Now: o.Now, Logger: o.Logger,
	})
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts: o, st: o.Store, tokens: o.Tokens, registry: o.Registry, mfa: mfa, log: o.Logger, mux: http.NewServeMux(),
		verifier: o.Verifier, lockout: o.Lockout, now: o.Now,
	}
	if s.metrics, err = newMetrics(o.Metrics); err != nil {
		return nil, err
	}
	if s.accounts, err = account.New(account.Options{Store: o.Store, Verifier: o.Verifier, VerifyWait: o.VerifyWait,
		Policy: o.Policy, Params: o.Params, Lockout: o.Lockout, Logger: o.Logger, Now: o.Now}); err != nil {
		return nil, err
	}
	s.registerRoutes()
	if err := s.registerBrokerHooks(); err != nil {
		return nil, err
	}
	patterns := slices.Sorted(maps.Keys(o.BrokerHooks))
	if s.openAPI, err = openAPIWithBrokerHooks(openAPIDocument, patterns); err != nil {
		return nil, err
	}
	return s, nil
}

// checkRequired names every required option left nil.
func (o *Options) checkRequired() error {
	var missing []string
	for _, r := range []struct {
		name string
		set  bool
	}{{"Store", o.Store != nil}, {"Tokens", o.Tokens != nil}, {"Registry", o.Registry != nil}, {"Trust", o.Trust != nil}} {
		if !r.set {
			missing = append(missing, "Options."+r.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("admin: required options not set: %s", strings.Join(missing, ", "))
	}
	return nil
}

// setDefaults fills the options left zero (negative durations too).
func (o *Options) setDefaults() {
	o.Logger = cmp.Or(o.Logger, slog.Default())
	o.Policy = cmp.Or(o.Policy, credential.DefaultPolicy())
	o.Params = cmp.Or(o.Params, credential.DefaultParams)
	o.TokenTTL = positiveOr(o.TokenTTL, DefaultTokenTTL)
	o.MaxTokenTTL = positiveOr(o.MaxTokenTTL, DefaultMaxTokenTTL)
	o.LoginMaxFailures = cmp.Or(o.LoginMaxFailures, DefaultLoginMaxFailures) // negative: no lockout
	o.LoginBackoff = positiveOr(o.LoginBackoff, DefaultLoginBackoff)
	o.TrustedDeviceDays = cmp.Or(o.TrustedDeviceDays, DefaultTrustedDeviceDays)
	o.VerifyWait = positiveOr(o.VerifyWait, DefaultVerifyWait)
	o.RestoreMaxBytes = cmp.Or(o.RestoreMaxBytes, store.DefaultRestoreMaxBytes)
	if o.Now == nil {
		o.Now = time.Now
	}
}

// positiveOr is d, or def when d is zero or negative.
func positiveOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// validate refuses options out of range once the defaults are set.
func (o *Options) validate() error {
	if err := o.Policy.Validate(); err != nil {
		return err
	}
	if o.TrustedDeviceDays < 0 || o.TrustedDeviceDays > MaxTrustedDeviceDays {
		return fmt.Errorf("admin: Options.TrustedDeviceDays must be from 1 to %d, got %d", MaxTrustedDeviceDays, o.TrustedDeviceDays)
	}
	if o.RestoreMaxBytes < 0 || o.RestoreMaxBytes > store.MaxArchiveContentBytes {
		return fmt.Errorf("admin: Options.RestoreMaxBytes must be from 1 to %d, got %d", store.MaxArchiveContentBytes, o.RestoreMaxBytes)
	}
	return checkBrokerHooks(o.BrokerHooks)
}

// buildGuards builds the password verifier and the lockout when the
// options bring none: the server's own, as Options describes them.
func (o *Options) buildGuards() error {
	if o.Verifier == nil {
		v, err := credential.NewVerifier(credential.VerifierOptions{Params: o.Params})
		if err != nil {
			return err
		}
		o.Verifier = v
	}
	if o.Lockout == nil {
		lo := credential.LockoutOptions{MaxPerUserIP: o.LoginMaxFailures, Window: o.LoginBackoff, Backoff: o.LoginBackoff, Now: o.Now}
		if o.LoginMaxFailures < 0 {
			lo.MaxPerUser, lo.MaxPerIP = -1, -1
		}
		o.Lockout = credential.NewLockout(lo)
	}
	return nil
}

// registerRoutes registers every endpoint, one file per resource, and the
// catch-all that answers the rest with a JSON 404 or 405.
func (s *Server) registerRoutes() {
	s.registerSessions()
	s.registerUsers()
	s.registerRoles()
	s.registerPermissions()
	s.registerAccess()
	s.registerCertificates()
	s.registerClients()
	s.registerRegistry()
	s.registerTokens()
	s.registerMFA()
	s.registerMFAKeys()
	s.registerMaintenance()
	s.registerOpenAPI()
	s.registerHealth()
	s.registerMetrics()
	if s.opts.UI != nil {
		s.mux.Handle("GET /{$}", s.opts.UI)
		s.mux.Handle("GET /assets/", s.opts.UI)
	}
	s.mux.HandleFunc("/", s.noRoute)
}

// noRoute answers a request no route serves: 405 with Allow when the path
// is served with other methods, 404 otherwise, both as JSON errors.
// ServeMux answers 405 itself only when no pattern matches the path, and
// this catch-all (there so that a 404 is JSON too) matches every path
// with every method, so the mux is asked which methods would reach a
// route. Like the mux's own 405 it needs no token: it says no more than a
// 404 or the public OpenAPI document does. OPTIONS stays 404 (there is no
// CORS preflight to answer).
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodOptions {
		if allowed, path := s.allowedMethods(r); len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			writeJSON(w, http.StatusMethodNotAllowed, errorBody{
				Error: fmt.Sprintf("method %s not allowed on %s; allowed: %s", shortMethod(r.Method), path, strings.Join(allowed, ", ")),
				Code:  http.StatusMethodNotAllowed,
			})
			return
		}
	}
	writeJSON(w, http.StatusNotFound, errorBody{Error: "no such endpoint", Code: http.StatusNotFound})
}

// allowedMethods returns the methods whose routes serve r's path, sorted,
// with HEAD where GET is (as ServeMux's Allow), and the path to name in
// the answer: the routes' pattern ("/api/users/{id}") when they share
// one, else the request's path. The pattern keeps a token sent in a path
// (DELETE /api/oauth2/{token}) out of the answer.
func (s *Server) allowedMethods(r *http.Request) ([]string, string) {
	var allowed, paths []string
	for _, m := range routeMethods(s.routes) {
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host, Header: http.Header{}}
		_, pattern := s.mux.Handler(probe)
		method, path, ok := strings.Cut(pattern, " ")
		if !ok || method != m {
			continue // the catch-all, or a GET route answering HEAD (added below)
		}
		allowed = append(allowed, m)
		if !slices.Contains(paths, path) {
			paths = append(paths, path)
		}
		if m == http.MethodGet {
			allowed = append(allowed, http.MethodHead)
		}
	}
	slices.Sort(allowed)
	if len(paths) == 1 {
		return allowed, paths[0]
	}
	return allowed, r.URL.Path
}

// shortMethod cuts a method for an error message: the server admits any
// token as a method, however long.
func shortMethod(m string) string {
	if len(m) > 16 {
		return m[:16] + "..."
	}
	return m
}

// routeMethods lists the methods of routes once each.
func routeMethods(routes []route) []string {
	var out []string
	for _, rt := range routes {
		if !slices.Contains(out, rt.method) {
			out = append(out, rt.method)
		}
	}
	return out
}

// Handler returns the API's http.Handler, counting every request
// (metrics.go).
func (s *Server) Handler() http.Handler { return s.metrics.instrument(apiHeaders(s.mux)) }

// apiHeaders sets the headers every API answer carries, errors and the
// mux's own 404/405 included: nosniff, so a browser never runs an answer
// as script or HTML whatever its content type, and a CSP that lets no
// answer load or run anything should one be opened as a page. It covers
// /api, the probes and /metrics only: a web UI served elsewhere brings
// its own policy.
func apiHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p == "/api" || strings.HasPrefix(p, "/api/") || p == "/healthz" || p == "/readyz" || p == "/metrics" {
			h := w.Header()
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		}
		next.ServeHTTP(w, r)
	})
}

// caller is the authenticated user of a request.
type caller struct {
	user   store.User
	claims credential.Claims
	token  string
	perms  []acl.Permission // effective permissions (all contexts)
	http   *acl.Bound
}

// handlerFunc is an endpoint: it renders its answer or returns an error,
// which is rendered by status(). c is nil on public routes.
type handlerFunc func(w http.ResponseWriter, r *http.Request, c *caller) error

// handle registers pattern ("METHOD /path") with its access rule.
func (s *Server) handle(pattern string, a access, h handlerFunc) {
	method, path, _ := strings.Cut(pattern, " ")
	s.routes = append(s.routes, route{method: method, path: path, access: a})
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		var c *caller
		w, r = s.auditStart(w, r, a)
		defer s.auditEnd(w, r, pattern, &c)
		if a == public {
			// Anyone can send these; none needs more (the largest, a
			// registration with a CSR, is a few KiB).
			r.Body = http.MaxBytesReader(w, r.Body, MaxPublicBodyBytes)
		} else {
			var err error
			c, err = s.authenticate(r)
			if err != nil {
				s.auditTokenRefused(r, bearer(r) != "", err)
				writeError(w, r, s.log, err)
				return
			}
			// Until enrolled, a user whose enrollment is enforced may only
			// enroll (checked on the user record, so enrolling lifts it
			// for the tokens it already holds).
			if s.mfaEnrollmentDue(c.user) && !mfaEnrollmentRoutes[pattern] {
				writeError(w, r, s.log, errorf(http.StatusForbidden, "MFA enrollment required: enroll with POST /api/mfa/enable first"))
				return
			}
			if a == permitted && !c.allowed(r) {
				writeError(w, r, s.log, errorf(http.StatusForbidden, "missing permission for %s %s", r.Method, r.URL.Path))
				return
			}
		}
		if err := requireJSON(r, pattern); err != nil {
			writeError(w, r, s.log, err)
			return
		}
		if err := h(w, r, c); err != nil {
			writeError(w, r, s.log, err)
		}
	})
}

// allowed: GET and HEAD need read, other methods write, on the request path.
func (c *caller) allowed(r *http.Request) bool {
	op := acl.OpWrite
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		op = acl.OpRead
	}
	return c.http.Allows(r.URL.Path, op)
}

// bearer extracts the token of "Authorization: Bearer <token>".
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// authenticate verifies the bearer token (signature, expiry, revocation)
// and loads the caller with its effective permissions.
func (s *Server) authenticate(r *http.Request) (*caller, error) {
	tok := bearer(r)
	if tok == "" {
		return nil, errorf(http.StatusUnauthorized, "missing bearer token")
	}
	claims, err := s.tokens.Verify(r.Context(), tok)
	if err != nil {
		if errors.Is(err, store.ErrUnavailable) {
			return nil, err
		}
		return nil, errorf(http.StatusUnauthorized, "invalid, expired or revoked token")
	}
	if !credential.AcceptedKind(claims.Kind) {
		return nil, errorf(http.StatusUnauthorized, "this token cannot be used for the API")
	}
	u, err := s.st.User(r.Context(), claims.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errorf(http.StatusUnauthorized, "invalid, expired or revoked token")
	}
	if err != nil {
		return nil, err
	}
	if u.Suspended {
		return nil, errorf(http.StatusUnauthorized, "account suspended")
	}
	if stale, err := s.staleLoginToken(r.Context(), claims, u); err != nil {
		return nil, err
	} else if stale {
		return nil, errorf(http.StatusUnauthorized, "invalid, expired or revoked token")
	}
	perms, err := s.effectivePermissions(r.Context(), u)
	if err != nil {
		return nil, err
	}
	m, err := acl.Compile(acl.ContextHTTP, perms)
	if err != nil {
		return nil, err
	}
	return &caller{user: u, claims: claims, token: tok, perms: perms, http: m.Bind(u.Username, "")}, nil
}

// staleLoginToken reports whether claims are of a login token whose
// record was issued for a password u no longer has. A password change
// revokes those records (account's endSessions); one left behind, because the
// revocation failed or a restore brought it back, must not authenticate
// either. Application tokens, and the application-session tokens
// exchanged for them, do not stand for the password and outlive its
// change unless revoked.
func (s *Server) staleLoginToken(ctx context.Context, claims credential.Claims, u store.User) (bool, error) {
	if claims.Kind != credential.KindLogin {
		return false, nil
	}
	rec, err := s.st.Token(ctx, claims.TokenID)
	if errors.Is(err, store.ErrNotFound) {
		return true, nil // revoked since it was verified
	}
	if err != nil {
		return false, err
	}
	return rec.PasswordVersion != 0 && rec.PasswordVersion != u.PasswordVersion, nil
}

// effectivePermissions is the union of the user's roles' permissions
// (account.Service.Permissions).
func (s *Server) effectivePermissions(ctx context.Context, u store.User) ([]acl.Permission, error) {
	return s.accounts.Permissions(ctx, u)
}
