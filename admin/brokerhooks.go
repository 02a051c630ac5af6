package admin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/warden-mqtt/warden/audit"
)

// Broker webhooks (Options.BrokerHooks) are the auth hooks external
// brokers call (package webhook: VerneMQ's vmq_webhooks, EMQX 5's HTTP
// authentication and authorization), mounted on the admin listener. They
// are never public: a broker proves itself with a client certificate that
// chains to Options.WebhookClientCAs (mutual TLS, as Connectware wires
// VerneMQ), or with a bearer token whose user holds the http permission
// for the method and path (write on /api/broker/auth/+ for VerneMQ's
// POSTs). Anything else is 401 or 403, which the broker takes as a
// refusal. The handlers run only after that and never authenticate the
// broker themselves.
//
// The hooks run for every CONNECT, PUBLISH and SUBSCRIBE of the broker's
// clients, so an admitted call writes no audit record (a refused
// authentication is recorded as on every route) and is counted by the
// request metrics under its pattern like any route.

// brokerHooksPrefix is where every broker webhook lives.
const brokerHooksPrefix = "/api/broker/"

// maxCertVerdicts bounds the remembered verdicts on client certificates;
// beyond it they are forgotten and verified again.
const maxCertVerdicts = 4096

// checkBrokerHooks refuses hooks New cannot mount: every pattern is
// "METHOD /api/broker/..." with a handler.
func checkBrokerHooks(hooks map[string]http.HandlerFunc) error {
	for _, pattern := range slices.Sorted(maps.Keys(hooks)) {
		method, path, ok := strings.Cut(pattern, " ")
		if !ok || method == "" || strings.ContainsAny(method, "/ ") || !strings.HasPrefix(path, brokerHooksPrefix) {
			return fmt.Errorf("admin: Options.BrokerHooks: pattern %q is not \"METHOD %s...\"", pattern, brokerHooksPrefix)
		}
		if hooks[pattern] == nil {
			return fmt.Errorf("admin: Options.BrokerHooks: pattern %q has no handler", pattern)
		}
	}
	return nil
}

// registerBrokerHooks mounts Options.BrokerHooks behind the broker's
// authentication. A pattern the mux refuses (one the API serves already,
// or one that conflicts with it) fails New instead of panicking.
func (s *Server) registerBrokerHooks() (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("admin: Options.BrokerHooks: %v", p)
		}
	}()
	s.clientCerts = &certVerdicts{pool: s.opts.WebhookClientCAs, seen: map[*x509.Certificate]time.Time{}}
	for _, pattern := range slices.Sorted(maps.Keys(s.opts.BrokerHooks)) {
		method, path, _ := strings.Cut(pattern, " ")
		s.mux.HandleFunc(pattern, s.brokerHook(pattern, s.opts.BrokerHooks[pattern]))
		s.routes = append(s.routes, route{method: method, path: path, access: brokerAccess})
	}
	return nil
}

// brokerHook authenticates the broker, then runs next. Content type and
// body size are next's to check: it answers in the broker's own format.
func (s *Server) brokerHook(pattern string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.clientCerts.verified(r.TLS, s.now()) {
			next(w, r)
			return
		}
		if bearer(r) == "" {
			msg := "missing credentials: a broker webhook takes a client certificate from a webhook client CA or a bearer token"
			switch {
			case s.clientCerts.pool == nil:
				msg = "missing bearer token"
			case r.TLS != nil && len(r.TLS.PeerCertificates) > 0:
				msg = "the client certificate is not from a webhook client CA, and there is no bearer token"
			}
			writeError(w, r, s.log, errorf(http.StatusUnauthorized, "%s", msg))
			return
		}
		c, err := s.authenticate(r)
		if err != nil {
			s.auditTokenRefused(withAuditNote(r), true, err)
			writeError(w, r, s.log, err)
			return
		}
		if s.mfaEnrollmentDue(c.user) {
			writeError(w, r, s.log, errorf(http.StatusForbidden, "MFA enrollment required: enroll with POST /api/mfa/enable first"))
			return
		}
		if !c.allowed(r) {
			// A change refused, recorded as on every route: the broker's
			// token lacks the permission.
			if s.opts.Audit != nil {
				s.opts.Audit.Change(r.Context(), audit.Change{User: c.user.Username, Action: pattern, Remote: r.RemoteAddr, Status: http.StatusForbidden})
			}
			writeError(w, r, s.log, errorf(http.StatusForbidden, "missing permission for %s %s", r.Method, r.URL.Path))
			return
		}
		next(w, r)
	}
}

// withAuditNote gives r the note auditAuth reads the address from: the
// note handle attaches to every request, which only a refused broker call
// needs here.
func withAuditNote(r *http.Request) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), auditKey{}, &auditNote{remote: r.RemoteAddr}))
}

// certVerdicts verifies client certificates against the webhook client
// CAs. The listener may trust other CAs too (for other clients), so a
// chain it verified proves nothing here: the leaf is verified against
// pool, for client authentication. A broker sends many calls over one
// connection, whose certificates crypto/tls parses once per handshake, so
// an accepted leaf is remembered by its pointer until the chain's
// earliest expiry.
type certVerdicts struct {
	pool *x509.CertPool // nil: no certificate is accepted
	mu   sync.Mutex
	seen map[*x509.Certificate]time.Time // accepted leaf → valid until
}

// verified reports whether the connection presented a client certificate
// that chains to the pool at now.
func (v *certVerdicts) verified(cs *tls.ConnectionState, now time.Time) bool {
	if v.pool == nil || cs == nil || len(cs.PeerCertificates) == 0 {
		return false
	}
	leaf := cs.PeerCertificates[0]
	v.mu.Lock()
	until, ok := v.seen[leaf]
	v.mu.Unlock()
	if ok && now.Before(until) {
		return true
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: v.pool, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return false
	}
	until = leaf.NotAfter
	for _, c := range chains[0] {
		if c.NotAfter.Before(until) {
			until = c.NotAfter
		}
	}
	v.mu.Lock()
	if len(v.seen) >= maxCertVerdicts {
		clear(v.seen) // verified again on their next call
	}
	v.seen[leaf] = until
	v.mu.Unlock()
	return true
}

// brokerHookOperation is the OpenAPI operation of every broker webhook:
// its request and answer are the broker's (package webhook, README), so
// the document names only the authentication. OpenAPI 3.0 has no mutual
// TLS scheme, so the client certificate is said in words and in an
// extension.
var brokerHookOperation = json.RawMessage(`{
  "summary": "Broker webhook (VerneMQ or EMQX 5): request and answer as the broker's documentation gives them",
  "description": "Never public. Authenticated by a client certificate from a webhook client CA (--webhook-client-ca; mutual TLS, no token needed) or by a bearer token, e.g. an application token, whose user holds write on the path (/api/broker/auth/+, /api/broker/emqx/+). Anything else is 401 or 403, which the broker treats as a refusal.",
  "security": [{"bearer": []}],
  "x-warden-mutual-tls": "a client certificate that chains to --webhook-client-ca authenticates the broker instead of a token",
  "responses": {
    "200": {"description": "The hook's answer, in the broker's format"},
    "400": {"description": "A request the hook cannot read (malformed JSON, body too large, a hook header that does not match the path)"},
    "401": {"description": "No client certificate from a webhook client CA and no valid bearer token", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
    "403": {"description": "The token's user lacks the http permission for the method and path", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
  }
}`)

// openAPIWithBrokerHooks returns doc with an operation for each of
// patterns ("METHOD /path") added under paths.
func openAPIWithBrokerHooks(doc []byte, patterns []string) ([]byte, error) {
	if len(patterns) == 0 {
		return doc, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(doc, &top); err != nil {
		return nil, fmt.Errorf("admin: openapi.json: %w", err)
	}
	var paths map[string]map[string]json.RawMessage
	if err := json.Unmarshal(top["paths"], &paths); err != nil {
		return nil, fmt.Errorf("admin: openapi.json paths: %w", err)
	}
	for _, p := range patterns {
		method, path, _ := strings.Cut(p, " ")
		if paths[path] == nil {
			paths[path] = map[string]json.RawMessage{}
		}
		paths[path][strings.ToLower(method)] = brokerHookOperation
	}
	var err error
	if top["paths"], err = json.Marshal(paths); err != nil {
		return nil, err
	}
	return json.MarshalIndent(top, "", "  ")
}
