package webhook

import (
	"container/list"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/authhook"
)

// EMQX 5 asks an HTTP authenticator at every CONNECT and an HTTP
// authorizer at every PUBLISH and SUBSCRIBE that no earlier rule decided
// (emqx/emqx apps/emqx_auth_http: emqx_authn_http.erl, emqx_authz_http.erl;
// emqx/emqx-docs en_US/access-control/authn/http.md, authz/http.md). The
// request bodies are the templates the operator configures (README, "Use
// warden with EMQX"); the answers are the documented JSON:
//
//   - authn: 200 {"result":"allow","is_superuser":false,"acl":[…],
//     "expire_at":…} or {"result":"deny"}. EMQX reads any other status as a
//     backend failure, which its default policy denies.
//   - authz: 200 {"result":"allow"} or {"result":"deny"}. EMQX reads
//     another status as "no match" and asks its next source (then
//     authorization.no_match).
//
// The acl list is a fast path, never the authority: it holds only allow
// rules that EMQX's matching (emqx_authz_rule, emqx_topic:match) decides
// exactly as warden does; what it does not match falls through to the
// authorizer, which asks authhook.Rights. Rules answered at CONNECT stay
// with the session, so warden sends them only when it can disconnect the
// session when they go stale (Options.EMQX set); without that, every
// decision goes through the authorizer and a revocation applies to the
// next PUBLISH or SUBSCRIBE.

// EMQXAPI is EMQX 5's REST API (an API key and its secret, created in the
// dashboard): URL "" means none.
type EMQXAPI struct {
	URL    string // e.g. http://emqx:18083
	Key    string
	Secret string // secret
	// MaxTracked bounds the sessions remembered for disconnection (EMQX
	// never says when a client leaves); 0 is DefaultEMQXMaxTracked.
	MaxTracked int
}

// DefaultEMQXMaxTracked is EMQXAPI.MaxTracked's default: comfortably
// more clients than one EMQX cluster usually keeps connected through one
// warden.
const DefaultEMQXMaxTracked = 100_000

// The reason an EMQX client of a user with a publish prefix is refused.
const reasonEMQXPrefix = "user has an mqtt publish prefix, which EMQX cannot apply (it does not rewrite topics per client)"

// emqxAuthnRequest is the body the README's authenticator template sends.
type emqxAuthnRequest struct {
	Username string  `json:"username"`
	Password string  `json:"password"`
	ClientID *string `json:"clientid"`
	PeerHost string  `json:"peerhost"`
	// CertPEM is EMQX's ${cert_pem} (5.8 and later): despite the name, the
	// client certificate's DER in base64, or "" without one
	// (emqx_auth_template:render_var). A PEM block is accepted too.
	CertPEM string `json:"cert_pem"`
}

// emqxAuthnAnswer is the authenticator's answer. acl and expire_at are
// read by EMQX 5.8 and later.
type emqxAuthnAnswer struct {
	Result      string     `json:"result"`
	IsSuperuser bool       `json:"is_superuser"`
	ExpireAt    int64      `json:"expire_at,omitempty"`
	ACL         []emqxRule `json:"acl,omitempty"`
}

// emqxRule is one rule of the acl list (emqx_authz_rule_raw): every QoS,
// retained or not.
type emqxRule struct {
	Permission string `json:"permission"` // allow
	Action     string `json:"action"`     // publish, subscribe or all
	Topic      string `json:"topic"`
}

// emqxAuthzRequest is the body the README's authorizer template sends;
// every field is required.
type emqxAuthzRequest struct {
	Username *string `json:"username"`
	ClientID *string `json:"clientid"`
	Topic    *string `json:"topic"`
	Action   *string `json:"action"` // publish or subscribe
}

// emqxResult is the authorizer's answer, and the authenticator's deny.
type emqxResult struct {
	Result string `json:"result"`
}

// emqx is one mounting of the EMQX routes: its sessions tracker, when
// EMQX's API is configured.
type emqx struct {
	h        *Handler
	api      EMQXAPI
	client   *http.Client
	sessions *emqxSessions // nil without the API
}

// emqxRoutes adds the EMQX 5 HTTP authentication and authorization
// endpoints. Each call starts its own sessions tracker (admin mounts the
// routes once).
func (h *Handler) emqxRoutes(routes map[string]http.HandlerFunc) {
	e := &emqx{h: h, api: h.opts.EMQX}
	if e.api.URL != "" {
		e.api.URL = strings.TrimRight(e.api.URL, "/")
		if e.api.MaxTracked <= 0 {
			e.api.MaxTracked = DefaultEMQXMaxTracked
		}
		e.client = &http.Client{Timeout: 5 * time.Second}
		e.sessions = &emqxSessions{max: e.api.MaxTracked, order: list.New(), at: map[string]*list.Element{}, log: h.log}
		e.sessions.t = newTracker(h.ctx, "emqx", h.opts.Decider, e.kick, h.log)
	}
	routes["POST /api/broker/emqx/authn"] = e.authn
	routes["POST /api/broker/emqx/authz"] = e.authz
}

// authn answers EMQX's HTTP authenticator: the CONNECT decision.
func (e *emqx) authn(w http.ResponseWriter, r *http.Request) {
	var req emqxAuthnRequest
	if err := decodeBody(w, r, &req); err != nil {
		e.h.badRequest(w, err)
		return
	}
	if req.ClientID == nil || *req.ClientID == "" {
		e.h.badRequest(w, errors.New(`"clientid" missing: the authenticator's body must hold clientid = "${clientid}"`))
		return
	}
	cert, err := e.forwardedCert(req.CertPEM)
	if err != nil {
		e.h.badRequest(w, err)
		return
	}
	var password []byte
	if req.Password != "" {
		password = []byte(req.Password)
	}
	var rules []emqxRule
	d, err := e.h.opts.Decider.Decide(r.Context(), authhook.Attempt{
		Username: req.Username, Password: password, Cert: cert, ClientID: *req.ClientID, Remote: req.PeerHost,
		Admit: func(d authhook.Decision) error {
			if d.PublishPrefix != "" {
				return &authhook.Refusal{Code: authhook.RefusedNotAuthorized, Reason: reasonEMQXPrefix}
			}
			if e.sessions != nil {
				rules = emqxACL(d.Permissions, d.Username, d.ClientID)
			}
			return nil
		},
	})
	if e.denied(w, err, "emqx authn not decided", "client", *req.ClientID) {
		return
	}
	ans := emqxAuthnAnswer{Result: "allow", ACL: rules}
	if !d.TokenExpiry.IsZero() {
		ans.ExpireAt = d.TokenExpiry.Unix()
	}
	if e.sessions != nil {
		e.sessions.add(d.ClientID, d)
	}
	e.h.writeJSON(w, http.StatusOK, ans, true)
}

// forwardedCert is the client certificate EMQX forwarded, when it chains
// to warden's trusted CAs for client authentication; nil when none was
// forwarded, warden trusts none (Options.ClientCAs) or it does not chain
// (the attempt is then decided on its password alone). Bytes that are no
// certificate at all are an error.
func (e *emqx) forwardedCert(field string) (*x509.Certificate, error) {
	if field == "" {
		return nil, nil
	}
	var der []byte
	if blk, _ := pem.Decode([]byte(field)); blk != nil {
		der = blk.Bytes
	} else {
		var err error
		if der, err = base64.StdEncoding.DecodeString(field); err != nil {
			return nil, errors.New(`"cert_pem" is neither base64 nor PEM`)
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf(`"cert_pem": %w`, err)
	}
	var pool *x509.CertPool
	if e.h.opts.ClientCAs != nil {
		pool = e.h.opts.ClientCAs()
	}
	if pool == nil {
		return nil, nil
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		e.h.log.Info("emqx forwarded certificate not trusted", "subject", cert.Subject.CommonName, "err", err)
		return nil, nil
	}
	return cert, nil
}

// authz answers EMQX's HTTP authorizer: one PUBLISH or SUBSCRIBE, decided
// as the embedded broker decides it. EMQX names the topic as the client
// sent it: a user with a publish prefix, refused at authn, is denied here
// too (its prefix may have been set since).
func (e *emqx) authz(w http.ResponseWriter, r *http.Request) {
	var req emqxAuthzRequest
	if err := decodeBody(w, r, &req); err != nil {
		e.h.badRequest(w, err)
		return
	}
	for _, f := range []struct {
		name string
		v    *string
	}{{"username", req.Username}, {"clientid", req.ClientID}, {"topic", req.Topic}, {"action", req.Action}} {
		if f.v == nil {
			e.h.badRequest(w, fmt.Errorf(`%q missing: the authorizer's body must hold %s = "${%s}"`, f.name, f.name, f.name))
			return
		}
	}
	if *req.Action != "publish" && *req.Action != "subscribe" {
		e.h.badRequest(w, fmt.Errorf(`"action" %q is not publish or subscribe`, clipValue(*req.Action)))
		return
	}
	if *req.Topic == "" {
		e.h.badRequest(w, errors.New(`"topic" is empty`))
		return
	}
	rights, err := e.h.opts.Decider.Rights(r.Context(), *req.Username, *req.ClientID)
	if e.denied(w, err, "emqx authz not decided", "user", *req.Username, "client", *req.ClientID) {
		return
	}
	allowed := false
	if *req.Action == "subscribe" {
		allowed = rights.Subscribe(*req.Topic)
	} else if rights.Prefix == "" {
		_, allowed = rights.Publish(*req.Topic)
	}
	if !allowed {
		e.h.writeJSON(w, http.StatusOK, emqxResult{Result: "deny"}, false)
		return
	}
	e.h.writeJSON(w, http.StatusOK, emqxResult{Result: "allow"}, true)
}

// denied answers a Decider's error, if any: a refusal is EMQX's deny
// (200, so its chain stops there, already audited); any other error a
// 503, which EMQX treats as a backend failure (authn: denied by default;
// authz: no match). It reports whether it answered.
func (e *emqx) denied(w http.ResponseWriter, err error, msg string, args ...any) bool {
	if err == nil {
		return false
	}
	if refused := (*authhook.Refusal)(nil); errors.As(err, &refused) {
		e.h.writeJSON(w, http.StatusOK, emqxResult{Result: "deny"}, false)
		return true
	}
	e.h.log.Warn(msg, append(args, "err", err)...)
	e.h.writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "not decided"}, false)
	return true
}

// clipValue shortens a value quoted in an answer.
func clipValue(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

// emqxACL compiles a user's mqtt permissions, placeholders resolved with
// the client's username and client ID, into allow rules of EMQX's acl
// list: write → publish, read → subscribe, readWrite → all. A permission
// EMQX would match differently from warden is left to the authorizer
// (so it is decided exactly, only more slowly):
//
//   - one whose placeholders acl does not bind for this client (an unusable
//     value, or a leading placeholder resolving to a '$' topic): it grants
//     nothing here;
//   - one whose resolved topic EMQX would read as its own syntax: "${" (a
//     placeholder) or a leading "eq " (exact match);
//   - for subscribe, a filter whose last level is '+' or which ends in
//     "+/#": EMQX's '+' also matches a subscribed '#' level, so "a/+"
//     would grant "a/#" and "a/+/#" would grant "a/#", which warden's
//     coverage rule refuses (both miss "a").
//
// EMQX checks these rules before its authorization sources and passes
// what they do not match on, so no deny rule ends the list. The list is
// sorted by topic, one rule per topic.
func emqxACL(perms []acl.Permission, username, clientID string) []emqxRule {
	const pub, sub = 1, 2
	grants := map[string]int{}
	for _, p := range perms {
		if p.Context != acl.ContextMQTT || p.Validate() != nil {
			continue
		}
		topic, ok := emqxBind(p, username, clientID)
		if !ok || strings.Contains(topic, "${") || strings.HasPrefix(topic, "eq ") {
			continue
		}
		if p.Operation.Allows(acl.OpWrite) {
			grants[topic] |= pub
		}
		if p.Operation.Allows(acl.OpRead) && emqxSubscribable(topic) {
			grants[topic] |= sub
		}
	}
	rules := make([]emqxRule, 0, len(grants))
	for topic, g := range grants {
		action := map[int]string{pub: "publish", sub: "subscribe", pub | sub: "all"}[g]
		rules = append(rules, emqxRule{Permission: "allow", Action: action, Topic: topic})
	}
	slices.SortFunc(rules, func(a, b emqxRule) int { return strings.Compare(a.Topic, b.Topic) })
	return rules
}

// emqxBind resolves p's placeholders for a client; ok is false when the
// permission, bound to this client, grants nothing. acl decides that:
// the resolved filter must be one the bound permission covers (acl's
// placeholder rules: a usable value, no '$' topic through a leading
// placeholder).
func emqxBind(p acl.Permission, username, clientID string) (string, bool) {
	if !strings.Contains(p.Resource, "{username}") && !strings.Contains(p.Resource, "{clientId}") {
		return p.Resource, true
	}
	topic := strings.NewReplacer("{username}", username, "{clientId}", clientID).Replace(p.Resource)
	m, err := acl.Compile(acl.ContextMQTT, []acl.Permission{{Resource: p.Resource, Operation: acl.OpRead, Context: acl.ContextMQTT}})
	if err != nil || !m.Bind(username, clientID).Covers(topic) {
		return "", false
	}
	return topic, true
}

// emqxSubscribable reports whether EMQX matches subscriptions against the
// filter exactly as warden's coverage rule does (see emqxACL).
func emqxSubscribable(filter string) bool {
	return filter != "+" && !strings.HasSuffix(filter, "/+") && !strings.HasSuffix(filter, "+/#")
}

// kick disconnects a client through EMQX's REST API: DELETE
// /api/v5/clients/{clientid} with the API key as basic auth, answered 204,
// or 404 when the client is not connected (emqx/emqx
// apps/emqx_management/src/emqx_mgmt_api_clients.erl; emqx-docs
// en_US/admin/api.md). A client already gone is forgotten like a kicked
// one.
func (e *emqx) kick(ctx context.Context, clientID string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, e.api.URL+"/api/v5/clients/"+url.PathEscape(clientID), nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(e.api.Key, e.api.Secret)
	resp, err := e.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch resp.StatusCode {
	case http.StatusNoContent, http.StatusNotFound:
		e.sessions.forget(clientID)
		return nil
	}
	return fmt.Errorf("emqx api: DELETE /api/v5/clients/{clientid}: %s", resp.Status)
}

// emqxSessions bounds the tracker's sessions. EMQX never tells warden that
// a client left, so a session is forgotten when it is kicked, when EMQX
// says it is gone (404), when its client ID connects again (it replaces
// it), and, beyond max sessions, oldest first, with a warning: that
// client, if still connected, is no longer disconnected by a revocation
// (its authorizer answers still follow the model).
type emqxSessions struct {
	t   *tracker
	max int
	log *slog.Logger

	mu    sync.Mutex
	order *list.List // of client IDs, oldest first
	at    map[string]*list.Element
}

// add tracks an admitted session.
func (s *emqxSessions) add(clientID string, d authhook.Decision) {
	s.mu.Lock()
	if el, ok := s.at[clientID]; ok {
		s.order.MoveToBack(el)
	} else {
		s.at[clientID] = s.order.PushBack(clientID)
	}
	var evicted []string
	for s.order.Len() > s.max {
		el := s.order.Front()
		id := s.order.Remove(el).(string)
		delete(s.at, id)
		evicted = append(evicted, id)
	}
	s.mu.Unlock()
	s.t.add(clientID, d)
	for _, id := range evicted {
		s.t.remove(id)
		s.log.Warn("emqx session tracker full: oldest session no longer disconnected on revocation", "client", id, "max", s.max)
	}
}

// forget drops a session that ended.
func (s *emqxSessions) forget(clientID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.at[clientID]; ok {
		s.order.Remove(el)
		delete(s.at, clientID)
	}
}
