package webhook

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/warden-mqtt/warden/authhook"
)

// VerneMQ's vmq_webhooks plugin POSTs one JSON object per hook call, the
// hook named by the vernemq-hook header, and reads the answer of a 200
// (vernemq/vmq-docs plugindevelopment/webhookplugins.md; the exact fields
// from vernemq/vernemq apps/vmq_webhooks/src/vmq_webhooks_plugin.erl;
// samples in testdata/vernemq). Warden never answers "next": it hands the
// decision to VerneMQ's next auth plugin (vmq_passwd and vmq_acl are on
// in the default vernemq.conf), so a store warden cannot read would let
// another plugin decide. Every refusal and failure is an error result,
// which VerneMQ turns into a refused CONNECT (3.1.1: 5, not authorized;
// 5: 0x86), a refused PUBLISH or a refused SUBSCRIBE.

// VerneMQAPI is VerneMQ's HTTP API (vmq-admin api-key add; the HTTP
// listener's /api/v1): URL "" means none.
type VerneMQAPI struct {
	URL string // e.g. http://vernemq:8888
	Key string // API key (secret)
}

// The hooks warden answers, by endpoint.
var vmqHooks = map[string][]string{
	"register":  {"auth_on_register", "auth_on_register_m5"},
	"publish":   {"auth_on_publish", "auth_on_publish_m5"},
	"subscribe": {"auth_on_subscribe", "auth_on_subscribe_m5"},
	// on_session_expired is not in the documentation but vmq_webhooks_plugin
	// sends it: a persistent session that expired offline.
	"offline": {"on_client_offline", "on_client_gone", "on_session_expired"},
}

// The QoS of a refused filter in an auth_on_subscribe answer: 128 (3.1.1
// SUBACK failure), 135 (5: not authorized), as webhookplugins.md shows.
const (
	vmqQoSRefused   = 128
	vmqQoSRefusedM5 = 135
)

// takeoverGrace is how long after a client's second registration the
// offline or gone event of the session it replaced is expected: VerneMQ
// reports the old session down only after asking auth_on_register for
// the new one (vmq_queue handle_session_down).
const takeoverGrace = 3 * time.Second

// vmqNotAllowed is the documented refusal; vmqUnavailable the error for a
// store warden cannot read (VerneMQ logs the text, refuses alike).
var (
	vmqOK          = map[string]any{"result": "ok"}
	vmqNotAllowed  = map[string]any{"result": map[string]string{"error": "not_allowed"}}
	vmqUnavailable = map[string]any{"result": map[string]string{"error": "unavailable"}}
)

// vernemq is the state of the VerneMQ surface: who holds which client ID
// on this node, and the tracker that disconnects sessions through
// VerneMQ's API (nil without one).
type vernemq struct {
	h       *Handler
	tracker *tracker

	mu     sync.Mutex
	owners map[string]*vmqOwner // by vmqKey
}

// vmqOwner is the user a session (a mountpoint and client ID) was
// admitted for on this node.
type vmqOwner struct {
	userID string
	online bool // false: a persistent session, offline
	// takeover: until then an offline or gone event is the replaced
	// session's, not this one's.
	takeover time.Time
}

// vmqKey is the tracker's key for a session: VerneMQ's subscriber ID.
func vmqKey(mountpoint, clientID string) string { return mountpoint + "\x00" + clientID }

// vernemqRoutes adds the VerneMQ webhook endpoints.
func (h *Handler) vernemqRoutes(routes map[string]http.HandlerFunc) {
	v := &vernemq{h: h, owners: map[string]*vmqOwner{}}
	if h.opts.VerneMQ.URL != "" {
		v.tracker = newTracker(h.ctx, "vernemq", h.opts.Decider, v.disconnect, h.log)
	}
	routes["POST /api/broker/auth/register"] = v.hook("register", v.register)
	routes["POST /api/broker/auth/publish"] = v.hook("publish", v.publish)
	routes["POST /api/broker/auth/subscribe"] = v.hook("subscribe", v.subscribe)
	routes["POST /api/broker/auth/offline"] = v.hook("offline", v.offline)
}

// hook checks that the vernemq-hook header names a hook of endpoint and
// passes it on with m5 (the MQTT 5 form).
func (v *vernemq) hook(endpoint string, serve func(w http.ResponseWriter, r *http.Request, name string, m5 bool)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.Header.Get("vernemq-hook")
		for _, known := range vmqHooks[endpoint] {
			if name == known {
				serve(w, r, name, strings.HasSuffix(name, "_m5"))
				return
			}
		}
		v.h.badRequest(w, fmt.Errorf("vernemq-hook %q is not one of %s", name, strings.Join(vmqHooks[endpoint], ", ")))
	}
}

// vmqRegister is auth_on_register(_m5)'s request. username and password
// are null when the client sent none; client_cert (base64 of the DER,
// with the listener's forward_connection_opts) only over TLS.
type vmqRegister struct {
	PeerAddr     string  `json:"peer_addr"`
	PeerPort     int     `json:"peer_port"`
	Mountpoint   string  `json:"mountpoint"`
	ClientID     string  `json:"client_id"`
	Username     *string `json:"username"`
	Password     *string `json:"password"`
	CleanSession *bool   `json:"clean_session"` // 3.1.1
	CleanStart   *bool   `json:"clean_start"`   // 5
	ClientCert   *string `json:"client_cert"`
}

// register decides a CONNECT as the embedded broker does.
func (v *vernemq) register(w http.ResponseWriter, r *http.Request, name string, m5 bool) {
	req, ok := decodeOrRefuse[vmqRegister](v.h, w, r)
	if !ok {
		return
	}
	a := authhook.Attempt{ClientID: req.ClientID, Remote: req.PeerAddr, Now: time.Now()}
	if req.PeerPort > 0 && req.PeerAddr != "" {
		a.Remote = net.JoinHostPort(req.PeerAddr, strconv.Itoa(req.PeerPort))
	}
	if req.Username != nil {
		a.Username = *req.Username
	}
	if req.Password != nil && *req.Password != "" {
		a.Password = []byte(*req.Password)
	}
	if req.ClientCert != nil && *req.ClientCert != "" {
		cert, err := v.verifyCert(*req.ClientCert, a.Now)
		if err != nil {
			v.h.log.Info("vernemq client certificate ignored", "client", req.ClientID, "remote", a.Remote, "err", err)
		}
		a.Cert = cert
	}
	clean := false // absent: as if resuming, the stricter claim
	if m5 && req.CleanStart != nil {
		clean = *req.CleanStart
	} else if !m5 && req.CleanSession != nil {
		clean = *req.CleanSession
	}
	key := vmqKey(req.Mountpoint, req.ClientID)
	a.Admit = func(d authhook.Decision) error { return v.claim(key, req.Mountpoint, req.ClientID, d, clean, a.Now) }
	d, err := v.h.opts.Decider.Decide(r.Context(), a)
	if err != nil {
		v.refuse(w, err)
		return
	}
	if v.tracker != nil {
		v.tracker.add(key, d)
	}
	answer := map[string]any{"result": "ok"}
	if d.Username != a.Username {
		// The name the later hooks must carry for Rights: a certificate's
		// common name when the client sent no username.
		answer["modifiers"] = map[string]any{"username": d.Username}
	}
	// Never cacheable: a cached admission would skip the client-ID claim,
	// the tracking for live revocation, the lockout and the audit.
	v.h.writeJSON(w, http.StatusOK, answer, false)
}

// verifyCert parses a forwarded client certificate (base64 of the DER as
// vmq_webhooks sends it, or PEM) and verifies it against the CAs warden
// trusts now: VerneMQ's listener may trust more.
func (v *vernemq) verifyCert(s string, now time.Time) (*x509.Certificate, error) {
	var der []byte
	if blk, _ := pem.Decode([]byte(s)); blk != nil {
		der = blk.Bytes
	} else {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, errors.New("client_cert is neither base64 nor PEM")
		}
		der = b
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("client_cert: %w", err)
	}
	var pool *x509.CertPool
	if v.h.opts.ClientCAs != nil {
		pool = v.h.opts.ClientCAs()
	}
	if pool == nil {
		return nil, errors.New("no client CAs configured")
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("client certificate not trusted by warden: %w", err)
	}
	return cert, nil
}

// claim is the embedded broker's client-ID rule on this node's sessions:
// a client ID held by another user's connected client is refused (VerneMQ
// would take that session over); another user's offline persistent
// session is refused unless the new client starts clean (VerneMQ then
// discards it, as the embedded broker purges it). It also refuses what
// VerneMQ's API could not disconnect later.
func (v *vernemq) claim(key, mountpoint, clientID string, d authhook.Decision, clean bool, now time.Time) error {
	if v.tracker != nil && (strings.ContainsAny(clientID, `"\`) || strings.ContainsAny(mountpoint, `"\`)) {
		// vmq-admin session disconnect quotes the client ID in a query
		// without escaping: such a session could not be revoked.
		return &authhook.Refusal{Code: authhook.RefusedClientID, Reason: "client ID cannot be disconnected through VerneMQ's API"}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	o := v.owners[key]
	switch {
	case o == nil:
		v.owners[key] = &vmqOwner{userID: d.UserID, online: true}
	case o.userID == d.UserID:
		if o.online {
			o.takeover = now.Add(takeoverGrace)
		}
		o.online = true
	case o.online:
		return &authhook.Refusal{Code: authhook.RefusedClientID, Reason: "client ID in use by another user"}
	case !clean:
		return &authhook.Refusal{Code: authhook.RefusedClientID, Reason: "client ID holds another user's session"}
	default:
		*o = vmqOwner{userID: d.UserID, online: true}
	}
	return nil
}

// refuse answers a refused or undecidable CONNECT, PUBLISH or SUBSCRIBE.
func (v *vernemq) refuse(w http.ResponseWriter, err error) {
	var r *authhook.Refusal
	if errors.As(err, &r) && r.Code != authhook.RefusedUnavailable {
		v.h.writeJSON(w, http.StatusOK, vmqNotAllowed, false)
		return
	}
	v.h.log.Warn("vernemq hook undecided", "err", err)
	v.h.writeJSON(w, http.StatusOK, vmqUnavailable, false)
}

// rights are what the client may do now, or false with the refusal
// answered.
func (v *vernemq) rights(w http.ResponseWriter, r *http.Request, username *string, clientID string) (*authhook.Rights, bool) {
	rights, err := v.h.opts.Decider.Rights(r.Context(), deref(username), clientID)
	if err != nil {
		v.refuse(w, err)
		return nil, false
	}
	return rights, true
}

// vmqPublish is auth_on_publish(_m5)'s request, without the payload,
// which is never read.
type vmqPublish struct {
	Username   *string `json:"username"`
	Mountpoint string  `json:"mountpoint"`
	ClientID   string  `json:"client_id"`
	Topic      string  `json:"topic"`
}

// publish decides a PUBLISH: the write permission on the topic with the
// user's publish prefix, which VerneMQ applies from modifiers.topic.
func (v *vernemq) publish(w http.ResponseWriter, r *http.Request, _ string, _ bool) {
	req, ok := decodeOrRefuse[vmqPublish](v.h, w, r)
	if !ok {
		return
	}
	rights, ok := v.rights(w, r, req.Username, req.ClientID)
	if !ok {
		return
	}
	topic, ok := rights.Publish(req.Topic)
	if !ok {
		v.h.writeJSON(w, http.StatusOK, vmqNotAllowed, false)
		return
	}
	if topic == req.Topic {
		v.h.writeJSON(w, http.StatusOK, vmqOK, true)
		return
	}
	v.h.writeJSON(w, http.StatusOK, map[string]any{"result": "ok", "modifiers": map[string]any{"topic": topic}}, true)
}

// vmqTopic is one filter of auth_on_subscribe(_m5); the MQTT 5 options
// are echoed back for an allowed filter, VerneMQ resetting those an
// answer omits.
type vmqTopic struct {
	Topic          string          `json:"topic"`
	QoS            int             `json:"qos"`
	NoLocal        json.RawMessage `json:"no_local,omitempty"`
	RAP            json.RawMessage `json:"rap,omitempty"`
	RetainHandling json.RawMessage `json:"retain_handling,omitempty"`
}

// vmqSubscribe is auth_on_subscribe(_m5)'s request.
type vmqSubscribe struct {
	Username   *string    `json:"username"`
	Mountpoint string     `json:"mountpoint"`
	ClientID   string     `json:"client_id"`
	Topics     []vmqTopic `json:"topics"`
}

// subscribe decides each filter with warden's coverage rule; refused ones
// get the refused QoS, allowed ones keep theirs.
func (v *vernemq) subscribe(w http.ResponseWriter, r *http.Request, _ string, m5 bool) {
	req, ok := decodeOrRefuse[vmqSubscribe](v.h, w, r)
	if !ok {
		return
	}
	rights, ok := v.rights(w, r, req.Username, req.ClientID)
	if !ok {
		return
	}
	refused := vmqQoSRefused
	if m5 {
		refused = vmqQoSRefusedM5
	}
	all := true
	for i := range req.Topics {
		if !rights.Subscribe(req.Topics[i].Topic) {
			all = false
			req.Topics[i] = vmqTopic{Topic: req.Topics[i].Topic, QoS: refused}
		}
	}
	switch {
	case all:
		v.h.writeJSON(w, http.StatusOK, vmqOK, true)
	case m5:
		v.h.writeJSON(w, http.StatusOK, map[string]any{"result": "ok", "modifiers": map[string]any{"topics": req.Topics}}, true)
	default:
		v.h.writeJSON(w, http.StatusOK, map[string]any{"result": "ok", "topics": req.Topics}, true)
	}
}

// vmqOffline is the request of on_client_offline, on_client_gone and
// on_session_expired.
type vmqOffline struct {
	Mountpoint string `json:"mountpoint"`
	ClientID   string `json:"client_id"`
}

// offline forgets a session that ended (gone, expired) or went offline
// (its persistent session stays, still claimed by its user).
func (v *vernemq) offline(w http.ResponseWriter, r *http.Request, name string, _ bool) {
	req, ok := decodeOrRefuse[vmqOffline](v.h, w, r)
	if !ok {
		return
	}
	key := vmqKey(req.Mountpoint, req.ClientID)
	if v.release(key, name == "on_client_offline", time.Now()) && v.tracker != nil {
		v.tracker.remove(key)
	}
	v.h.writeJSON(w, http.StatusOK, struct{}{}, false)
}

// release records that key's session went offline (persistent) or
// ended, and reports whether the client that was connected is gone: not
// when the event is for the session a reconnection of the same user just
// replaced.
func (v *vernemq) release(key string, persistent bool, now time.Time) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	o := v.owners[key]
	if o == nil {
		return true
	}
	if now.Before(o.takeover) {
		o.takeover = time.Time{}
		return false
	}
	if persistent {
		o.online = false
	} else {
		delete(v.owners, key)
	}
	return true
}

// disconnect kicks a session through VerneMQ's HTTP API (vmq-docs
// administration/http-administration.md): GET
// /api/v1/session/disconnect?client-id=…&--mountpoint=…&--cleanup, the
// API key as the basic-auth user. --cleanup drops the session's
// subscriptions, granted under the old rights, which a resumed session
// would keep without VerneMQ asking again.
func (v *vernemq) disconnect(ctx context.Context, key string) error {
	mountpoint, clientID, _ := strings.Cut(key, "\x00")
	q := "client-id=" + url.QueryEscape(clientID)
	if mountpoint != "" {
		q += "&--mountpoint=" + url.QueryEscape(mountpoint)
	}
	q += "&--cleanup"
	api := v.h.opts.VerneMQ
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(api.URL, "/")+"/api/v1/session/disconnect?"+q, nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(api.Key, "")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("vernemq API: %s", resp.Status)
	}
	return nil
}

// decodeOrRefuse decodes r's body as a T, or answers 400 with the reason.
func decodeOrRefuse[T any](h *Handler, w http.ResponseWriter, r *http.Request) (T, bool) {
	var req T
	if err := decodeBody(w, r, &req); err != nil {
		h.badRequest(w, err)
		return req, false
	}
	return req, true
}

// deref is *s, "" for nil (VerneMQ's null).
func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
