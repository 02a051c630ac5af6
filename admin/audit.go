package admin

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/warden-mqtt/warden/audit"
	"github.com/warden-mqtt/warden/store"
)

// The audit trail of the admin API is written from two places only, so no
// handler can forget it:
//   - handle wraps every route: a request that may change something (any
//     method but GET, HEAD and OPTIONS) on a route that needs a token is
//     recorded once it is answered, as "METHOD /pattern" with the path
//     values as targets and the status as outcome. Handlers whose target
//     is in the body add it with noteTarget.
//   - the authentication steps (password, MFA code, bearer token) record
//     their refusals with auditAuth.
// Request bodies, headers, query strings and error texts are never
// written: they may hold secrets.

// auditKey is the context key of a request's *auditNote.
type auditKey struct{}

// auditNote travels in a request's context: where the request came from,
// for failures recorded deep in a handler, and the targets handlers noted.
type auditNote struct {
	remote  string
	targets []audit.Target
}

// auditStart attaches the note to the request and, when the request is a
// change to record, wraps w to learn the status.
func (s *Server) auditStart(w http.ResponseWriter, r *http.Request, a access) (http.ResponseWriter, *http.Request) {
	r = r.WithContext(context.WithValue(r.Context(), auditKey{}, &auditNote{remote: r.RemoteAddr}))
	if s.opts.Audit == nil || a == public || !changes(r.Method) {
		return w, r
	}
	return &codeWriter{ResponseWriter: w}, r
}

// auditEnd records the change once it is answered. *c is the caller, nil
// when the request was not authenticated: such attempts are recorded as
// authentication failures (a refused token), not as changes.
func (s *Server) auditEnd(w http.ResponseWriter, r *http.Request, pattern string, c **caller) {
	// The conditions of auditStart again: when it did not wrap w, w may
	// still be a codeWriter, the one counting the request (metrics.go).
	if s.opts.Audit == nil || !changes(r.Method) || *c == nil {
		return
	}
	rec, ok := w.(*codeWriter)
	if !ok {
		return
	}
	status := rec.status()
	var targets []audit.Target
	_, path, _ := strings.Cut(pattern, " ")
	for _, seg := range strings.Split(path, "/") {
		name, ok := strings.CutPrefix(seg, "{")
		if !ok {
			continue
		}
		name = strings.TrimSuffix(strings.TrimSuffix(name, "}"), "...")
		if name == "" || name[0] == '$' {
			continue
		}
		targets = append(targets, audit.Target{Key: name, Value: r.PathValue(name)})
	}
	if n := noteOf(r.Context()); n != nil {
		targets = append(targets, n.targets...)
	}
	s.opts.Audit.Change(r.Context(), audit.Change{
		User: (*c).user.Username, Action: pattern, Targets: targets, Remote: r.RemoteAddr, Status: status,
	})
}

// changes: methods that may change something.
func changes(method string) bool {
	return method != http.MethodGet && method != http.MethodHead && method != http.MethodOptions
}

// noteTarget adds a target that is not in the path (e.g. the username in
// a create request's body) to the request's audit record; several values
// (a batch) are joined with commas. Never a secret.
func noteTarget(r *http.Request, key string, values ...string) {
	if n := noteOf(r.Context()); n != nil {
		if v := strings.Join(values, ","); v != "" {
			n.targets = append(n.targets, audit.Target{Key: key, Value: v})
		}
	}
}

func noteOf(ctx context.Context) *auditNote {
	n, _ := ctx.Value(auditKey{}).(*auditNote)
	return n
}

// auditAuth records a refused authentication of the request ctx belongs
// to. reason is a fixed phrase, never input.
func (s *Server) auditAuth(ctx context.Context, channel, user, reason string) {
	if s.opts.Audit == nil {
		return
	}
	var remote string
	if n := noteOf(ctx); n != nil {
		remote = n.remote
	}
	s.opts.Audit.AuthFailure(ctx, audit.AuthFailure{Channel: channel, User: user, Remote: remote, Reason: reason})
}

// auditTokenRefused records a token the API refused (err, a 401): a
// bearer token, or an application token exchanged at POST
// /api/v1/authenticate. A request that presented no token is no attempt
// and is not recorded, nor is a store outage.
func (s *Server) auditTokenRefused(r *http.Request, presented bool, err error) {
	if !presented || errors.Is(err, store.ErrUnavailable) {
		return
	}
	var ae *apiError
	if !errors.As(err, &ae) || ae.status != http.StatusUnauthorized {
		return
	}
	s.auditAuth(r.Context(), audit.ChannelHTTPToken, "", ae.msg)
}

// auditPasswordRefused records a wrong password given to re-authenticate
// (PUT /api/users/change-password): it counts towards the login lockout
// like a refused login.
func (s *Server) auditPasswordRefused(r *http.Request, user, reason string) {
	s.auditAuth(r.Context(), audit.ChannelHTTPLogin, user, reason)
}

// loginRefusal names why checkPassword refused, for the audit trail (the
// client gets one answer for all).
func loginRefusal(lookup, verr error, ok bool, u store.User) string {
	switch {
	case lookup != nil:
		return "unknown user"
	case u.Suspended:
		return "suspended"
	case !passwordGrant(u):
		return "password grant not allowed"
	case u.PasswordHash == "":
		return "no password set"
	case verr != nil:
		return "stored hash unusable"
	case !ok:
		return "wrong password"
	}
	return "refused"
}
