package admin_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/warden-mqtt/warden/admin"
	"github.com/warden-mqtt/warden/audit"
	"github.com/warden-mqtt/warden/store/storetest"
)

// Tests of the broker webhooks' mounting (brokerhooks.go): who may call
// them, over a real TLS listener that asks for client certificates, with
// real users, roles and tokens. The route is the test's own (the webhook
// package's routes have their own tests): it echoes what it read, so a
// test sees that it ran and what reached it.

// bhRoute is the test's webhook: it reads at most 64 bytes of JSON and
// answers {"result":"ok","got":...}, or 400 with its own reason.
func bhRoute(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64)).Decode(&body)
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		var tooBig *http.MaxBytesError
		reason := "route: malformed"
		if errors.As(err, &tooBig) {
			reason = "route: too large"
		}
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"result": reason})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"result": "ok", "got": body})
}

// bhEnv is an admin server with the test route mounted as
// POST /api/broker/auth/register, served over TLS.
type bhEnv struct {
	*api
	tls      *httptest.Server
	trail    *mLog
	hookCA   cIssued // the webhook client CA
	otherCA  cIssued // a CA the listener trusts for other clients
	hookLeaf cIssued
	clients  map[*cIssued]*http.Client // one per certificate, kept alive
}

// bhNew starts the server; clientAuth is the listener's, which trusts
// both CAs (as warden's listener could, for other purposes).
func bhNew(t *testing.T, clientAuth tls.ClientAuthType) *bhEnv {
	t.Helper()
	e := &bhEnv{trail: &mLog{}, hookCA: cCA(t, "broker CA"), otherCA: cCA(t, "device CA"), clients: map[*cIssued]*http.Client{}}
	e.hookLeaf = cLeaf(t, e.hookCA, "vernemq")
	hookPool := x509.NewCertPool()
	hookPool.AddCert(e.hookCA.cert)
	e.api = newAPI(t, storetest.OpenBolt(t), func(o *admin.Options) {
		o.BrokerHooks = map[string]http.HandlerFunc{"POST /api/broker/auth/register": bhRoute}
		o.WebhookClientCAs = hookPool
		o.Audit = audit.New(e.trail)
	})
	listenerPool := x509.NewCertPool()
	listenerPool.AddCert(e.hookCA.cert)
	listenerPool.AddCert(e.otherCA.cert)
	e.tls = httptest.NewUnstartedServer(e.srv.Handler())
	e.tls.TLS = &tls.Config{ClientAuth: clientAuth, ClientCAs: listenerPool, MinVersion: tls.VersionTLS12}
	e.tls.StartTLS()
	t.Cleanup(e.tls.Close)
	return e
}

// call posts body to path over TLS with the client certificate cert
// (none when nil) and the bearer token (none when empty). Calls with one
// certificate share a keep-alive client, as a broker's do.
func (e *bhEnv) call(path string, cert *cIssued, token string, body []byte) (int, string) {
	e.t.Helper()
	client := e.clients[cert]
	if client == nil {
		tr := e.tls.Client().Transport.(*http.Transport).Clone()
		if cert != nil {
			tr.TLSClientConfig.Certificates = []tls.Certificate{{Certificate: [][]byte{cert.cert.Raw}, PrivateKey: cert.key, Leaf: cert.cert}}
		}
		e.t.Cleanup(tr.CloseIdleConnections)
		client = &http.Client{Transport: tr}
		e.clients[cert] = client
	}
	req, err := http.NewRequest("POST", e.tls.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

const bhPath = "/api/broker/auth/register"

var bhBody = []byte(`{"client_id":"c1"}`)

// bhRan fails unless the route ran on bhBody.
func bhRan(t *testing.T, what string, code int, body string) {
	t.Helper()
	if code != http.StatusOK || !strings.Contains(body, `"got":{"client_id":"c1"}`) {
		t.Fatalf("%s: %d %s, want the route's answer", what, code, body)
	}
}

// bhRefused fails unless the answer is the API's JSON error with want.
func bhRefused(t *testing.T, what string, code int, body string, want int, text string) {
	t.Helper()
	if code != want || errorCode(t, []byte(body)) != want || !strings.Contains(body, text) || strings.Contains(body, "result") {
		t.Fatalf("%s: %d %s, want %d naming %q (the route must not run)", what, code, body, want, text)
	}
}

// TestBrokerHooksAuthentication: without credentials a broker gets 401;
// a token of a user without write on the path 403; a login token or an
// application token of a user holding write on /api/broker/auth/+ runs
// the route, as does a client certificate from the webhook CA without a
// token; a certificate from another CA the listener trusts is no
// credential here (401), and does not spoil a valid token sent with it;
// a server without webhook client CAs takes tokens only.
func TestBrokerHooksAuthentication(t *testing.T) {
	t.Parallel()
	e := bhNew(t, tls.VerifyClientCertIfGiven)

	code, body := e.call(bhPath, nil, "", bhBody)
	bhRefused(t, "no credentials", code, body, http.StatusUnauthorized, "missing credentials")
	code, body = e.call(bhPath, nil, "not-a-token", bhBody)
	bhRefused(t, "a bad token", code, body, http.StatusUnauthorized, "invalid, expired or revoked token")

	_, _, readOnly := eUser(t, e.api, "reader", nil, httpPerm("/api/broker/auth/+", "read"))
	code, body = e.call(bhPath, nil, readOnly, bhBody)
	bhRefused(t, "read only", code, body, http.StatusForbidden, "missing permission for POST /api/broker/auth/register")
	_, _, otherPath := eUser(t, e.api, "emqx", nil, httpPerm("/api/broker/emqx/+", "write"))
	code, body = e.call(bhPath, nil, otherPath, bhBody)
	bhRefused(t, "write elsewhere", code, body, http.StatusForbidden, "missing permission")

	_, _, login := eUser(t, e.api, "vernemq", nil, httpPerm("/api/broker/auth/+", "write"))
	code, body = e.call(bhPath, nil, login, bhBody)
	bhRan(t, "login token with write", code, body)
	_, app := asApp(e.api, login)
	code, body = e.call(bhPath, nil, app, bhBody)
	bhRan(t, "application token with write", code, body)

	code, body = e.call(bhPath, &e.hookLeaf, "", bhBody)
	bhRan(t, "webhook CA certificate", code, body)
	// Twice on one connection: the remembered verdict.
	code, body = e.call(bhPath, &e.hookLeaf, "", bhBody)
	bhRan(t, "webhook CA certificate again", code, body)

	device := cLeaf(t, e.otherCA, "device")
	code, body = e.call(bhPath, &device, "", bhBody)
	bhRefused(t, "other CA certificate", code, body, http.StatusUnauthorized, "not from a webhook client CA")
	code, body = e.call(bhPath, &device, app, bhBody)
	bhRan(t, "other CA certificate with a token", code, body)
	code, body = e.call(bhPath, &device, readOnly, bhBody)
	bhRefused(t, "other CA certificate with a read-only token", code, body, http.StatusForbidden, "missing permission")

	// Without webhook client CAs, tokens only: a certificate is no
	// credential.
	tokensOnly := newAPI(t, storetest.OpenBolt(t), func(o *admin.Options) {
		o.BrokerHooks = map[string]http.HandlerFunc{"POST /api/broker/auth/register": bhRoute}
	})
	code, b := tokensOnly.do("POST", bhPath, "", bhBody)
	bhRefused(t, "no token, no webhook CA", code, string(b), http.StatusUnauthorized, "missing bearer token")
	code, b = tokensOnly.do("POST", bhPath, tokensOnly.admin, bhBody)
	bhRan(t, "the admin's token, no webhook CA", code, string(b))

	// Plain HTTP has no client certificate: tokens only.
	code, b = e.do("POST", bhPath, "", bhBody)
	bhRefused(t, "plain HTTP without a token", code, string(b), http.StatusUnauthorized, "missing credentials")
	code, b = e.do("POST", bhPath, app, bhBody)
	bhRan(t, "plain HTTP with a token", code, string(b))
}

// TestBrokerHooksCertificateChecks: the webhook CA's certificate must be
// one for client authentication and not expired; the checks are the
// API's own, so they hold on a listener that verifies nothing
// (tls.RequestClientCert).
func TestBrokerHooksCertificateChecks(t *testing.T) {
	t.Parallel()
	e := bhNew(t, tls.RequestClientCert)
	code, body := e.call(bhPath, &e.hookLeaf, "", bhBody)
	bhRan(t, "webhook CA certificate", code, body)

	serverOnly := cMake(t, &x509.Certificate{Subject: pkix.Name{CommonName: "server"}, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, &e.hookCA, 0)
	code, body = e.call(bhPath, &serverOnly, "", bhBody)
	bhRefused(t, "server-only certificate", code, body, http.StatusUnauthorized, "not from a webhook client CA")

	selfSigned := cMake(t, &x509.Certificate{Subject: e.hookCA.cert.Subject, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, nil, 0)
	code, body = e.call(bhPath, &selfSigned, "", bhBody)
	bhRefused(t, "self-signed look-alike", code, body, http.StatusUnauthorized, "not from a webhook client CA")

	device := cLeaf(t, e.otherCA, "device")
	code, body = e.call(bhPath, &device, "", bhBody)
	bhRefused(t, "other CA certificate", code, body, http.StatusUnauthorized, "not from a webhook client CA")
}

// TestBrokerHooksBodiesAreTheRoutes: once the broker is authenticated,
// the route decides about its body: a malformed or oversized one, or one
// without a JSON content type, gets the route's answer, not the API's.
func TestBrokerHooksBodiesAreTheRoutes(t *testing.T) {
	t.Parallel()
	e := bhNew(t, tls.VerifyClientCertIfGiven)
	for _, c := range []struct {
		name string
		body []byte
		want string
	}{
		{"malformed", []byte(`{"client_id":`), "route: malformed"},
		{"oversized", []byte(`{"client_id":"` + strings.Repeat("x", 4096) + `"}`), "route: too large"},
	} {
		code, body := e.call(bhPath, &e.hookLeaf, "", c.body)
		if code != http.StatusBadRequest || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s, want 400 from the route (%q)", c.name, code, body, c.want)
		}
	}
	// Without credentials the body is not read at all: still 401.
	code, body := e.call(bhPath, nil, "", []byte(`{"client_id":`))
	bhRefused(t, "malformed without credentials", code, body, http.StatusUnauthorized, "missing credentials")
	// The API's content-type rule is not applied to the broker's calls.
	req, _ := http.NewRequest("POST", e.url+bhPath, bytes.NewReader(bhBody))
	_, app := asApp(e.api, e.admin)
	req.Header.Set("Authorization", "Bearer "+app)
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	bhRan(t, "text/plain body", resp.StatusCode, string(out))
}

// TestBrokerHooksAuditAndMetrics: admitted calls write no audit record
// (they come at the broker's message rate); a refused token is recorded
// as on every route, as is a token lacking the permission; every call is
// counted under its route pattern.
func TestBrokerHooksAuditAndMetrics(t *testing.T) {
	t.Parallel()
	e := bhNew(t, tls.VerifyClientCertIfGiven)
	_, _, login := eUser(t, e.api, "vernemq", nil, httpPerm("/api/broker/auth/+", "write"))
	_, _, reader := eUser(t, e.api, "reader", nil, httpPerm("/api/broker/auth/+", "read"))
	before := len(auditRecords(t, e.trail))
	for range 3 {
		code, body := e.call(bhPath, nil, login, bhBody)
		bhRan(t, "token", code, body)
		code, body = e.call(bhPath, &e.hookLeaf, "", bhBody)
		bhRan(t, "certificate", code, body)
	}
	if rs := auditRecords(t, e.trail); len(rs) != before {
		t.Fatalf("admitted broker calls wrote audit records: %v", rs[before:])
	}
	e.call(bhPath, nil, "not-a-token", bhBody)
	e.call(bhPath, nil, "", bhBody) // no attempt: not recorded
	e.call(bhPath, nil, reader, bhBody)
	rs := auditRecords(t, e.trail)[before:]
	if len(rs) != 2 ||
		len(findRecords(rs[:1], map[string]any{"event": "auth.failure", "channel": "http-token", "reason": "invalid, expired or revoked token"})) != 1 ||
		len(findRecords(rs[1:], map[string]any{"user": "reader", "action": "POST " + bhPath, "status": float64(http.StatusForbidden)})) != 1 {
		t.Fatalf("refusals recorded as %v, want the bad token's auth failure and the reader's refused change", rs)
	}
	for _, r := range rs {
		if remote, _ := r["remote"].(string); !strings.HasPrefix(remote, "127.0.0.1:") {
			t.Errorf("record %v: remote %q", r, remote)
		}
	}

	_, metrics := e.do("GET", "/metrics", "", nil)
	for _, want := range []string{
		`warden_http_requests_total{code="200",route="POST /api/broker/auth/register"} 6`,
		`warden_http_requests_total{code="401",route="POST /api/broker/auth/register"} 2`,
		`warden_http_requests_total{code="403",route="POST /api/broker/auth/register"} 1`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestBrokerHooksBesideTheAPI: the enhanced-auth hook stays public and
// answers as before; a method the hook does not take is 405 naming POST;
// the OpenAPI document served lists the hook with its security.
func TestBrokerHooksBesideTheAPI(t *testing.T) {
	t.Parallel()
	e := bhNew(t, tls.VerifyClientCertIfGiven)
	var enhanced map[string]any
	e.mustAs("", "POST", "/api/broker/auth/enhanced", map[string]any{"client_id": "c1"}, http.StatusOK, &enhanced)
	if enhanced["result"] == "ok" || enhanced["result"] == nil {
		t.Fatalf("enhanced auth answered %v, want a refusal", enhanced)
	}
	code, hdr, body := e.doWithHeaders("GET", bhPath, "", nil)
	if code != http.StatusMethodNotAllowed || hdr.Get("Allow") != "POST" {
		t.Fatalf("GET %s: %d Allow %q %s", bhPath, code, hdr.Get("Allow"), body)
	}

	var doc struct {
		Paths map[string]map[string]struct {
			Security  []map[string][]string      `json:"security"`
			MutualTLS string                     `json:"x-warden-mutual-tls"`
			Responses map[string]json.RawMessage `json:"responses"`
		} `json:"paths"`
	}
	e.mustAs("", "GET", "/api/openapi.json", nil, http.StatusOK, &doc)
	op, ok := doc.Paths[bhPath]["post"]
	if !ok || len(op.Security) != 1 || op.Security[0]["bearer"] == nil || !strings.Contains(op.MutualTLS, "--webhook-client-ca") ||
		op.Responses["401"] == nil || op.Responses["403"] == nil {
		t.Fatalf("openapi.json documents %s as %+v", bhPath, op)
	}
	if _, ok := doc.Paths["/api/users"]["post"]; !ok {
		t.Fatal("openapi.json lost the API's own routes")
	}
}

// TestBrokerHooksRefusedOptions: New refuses hooks outside /api/broker/,
// without a method or a handler, and one on a route the API serves.
func TestBrokerHooksRefusedOptions(t *testing.T) {
	t.Parallel()
	st := storetest.OpenBolt(t)
	a := newAPI(t, st)
	for _, pattern := range []string{"POST /api/users", "/api/broker/auth/x", "POST /api/broker/auth/enhanced", "POST /api/brokers"} {
		o := admin.WithRegistryAndTrust(t, admin.Options{Store: st, Tokens: a.tokens, Params: fastParams,
			BrokerHooks: map[string]http.HandlerFunc{pattern: bhRoute}})
		if _, err := admin.New(o); err == nil || !strings.Contains(err.Error(), "BrokerHooks") {
			t.Errorf("pattern %q: New error %v, want a refusal naming BrokerHooks", pattern, err)
		}
	}
	o := admin.WithRegistryAndTrust(t, admin.Options{Store: st, Tokens: a.tokens, Params: fastParams,
		BrokerHooks: map[string]http.HandlerFunc{"POST /api/broker/auth/x": nil}})
	if _, err := admin.New(o); err == nil || !strings.Contains(err.Error(), "no handler") {
		t.Errorf("nil handler: New error %v", err)
	}
}
