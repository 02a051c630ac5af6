package admin_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/warden-mqtt/warden/admin"
	"github.com/warden-mqtt/warden/store/storetest"
)

// scrape fetches GET /metrics without a token, as Prometheus does, and
// returns the raw text and the parsed families.
func scrape(t *testing.T, a *api) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	code, body := a.do("GET", "/metrics", "", nil)
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return string(body), mfs
}

// value returns the counter's value, or the histogram's sample count, of
// the series name{labels} (label pairs as "k", "v", ...); 0 when absent.
func value(mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	mf, ok := mfs[name]
	if !ok {
		return 0
	}
next:
	for _, m := range mf.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == labels[i] && l.GetValue() == labels[i+1] }) {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return 0
}

// TestMetricsCountRequestsByRoute: requests are counted by the route
// pattern and status the client got; paths holding IDs or tokens collapse
// into their pattern, and no token, username or ID reaches /metrics.
func TestMetricsCountRequestsByRoute(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	a := newAPI(t, storetest.OpenBolt(t), func(o *admin.Options) { o.Metrics = reg })

	var alice struct {
		ID string `json:"id"`
	}
	a.must("POST", "/api/users", map[string]any{"username": "metrics-alice", "password": "Alice-password-1"}, http.StatusCreated, &alice)
	a.must("GET", "/api/listUsers", nil, http.StatusOK, nil)
	a.must("GET", "/api/users/"+alice.ID, nil, http.StatusOK, nil)
	if code, _ := a.do("GET", "/api/listUsers", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("GET /api/listUsers without a token: %d", code)
	}
	if code, _ := a.do("GET", "/api/no-such-thing", a.admin, nil); code != http.StatusNotFound {
		t.Fatalf("GET /api/no-such-thing: %d", code)
	}
	aliceToken := a.login("metrics-alice", "Alice-password-1")
	if code, b := a.do("DELETE", "/api/oauth2/"+aliceToken, aliceToken, nil); code != http.StatusNoContent {
		t.Fatalf("DELETE /api/oauth2/{token}: %d %s", code, b)
	}

	// The client registry: locked, opened, a pending request, confirmed,
	// then the device's poll is granted.
	device := map[string]any{"username": "sensor-metrics-7", "password": "Device-secret-77"}
	register := func(want int) {
		t.Helper()
		if code, b := a.do("POST", "/api/client-registry/register", "", device); code != want {
			t.Fatalf("register: %d %s, want %d", code, b, want)
		}
	}
	register(http.StatusLocked)
	a.must("POST", "/api/client-registry/open", nil, http.StatusNoContent, nil)
	register(http.StatusAccepted)
	a.must("POST", "/api/client-registry/confirm", map[string]any{"username": "sensor-metrics-7"}, http.StatusNoContent, nil)
	register(http.StatusCreated)
	if code, _ := a.do("POST", "/api/client-registry/confirm", a.admin, map[string]any{"username": "nobody-pending"}); code != http.StatusNotFound {
		t.Fatalf("confirm of an unknown request: %d, want 404", code)
	}
	a.must("POST", "/api/client-registry/lock", nil, http.StatusNoContent, nil)

	scrape(t, a) // counted once it is answered: the next scrape shows it
	text, mfs := scrape(t, a)
	for _, c := range []struct {
		route, code string
		want        float64
	}{
		{"POST /api/login", "200", 2},
		{"POST /api/users", "201", 1},
		{"GET /api/listUsers", "200", 1},
		{"GET /api/listUsers", "401", 1},
		{"GET /api/users/{id}", "200", 1},
		{"/", "404", 1},
		{"DELETE /api/oauth2/{token}", "204", 1},
		{"POST /api/client-registry/register", "423", 1},
		{"POST /api/client-registry/register", "202", 1},
		{"POST /api/client-registry/register", "201", 1},
		{"GET /metrics", "200", 1},
	} {
		if got := value(mfs, "warden_http_requests_total", "route", c.route, "code", c.code); got != c.want {
			t.Errorf("requests %s %s = %v, want %v", c.route, c.code, got, c.want)
		}
	}
	if got := value(mfs, "warden_http_request_duration_seconds", "route", "GET /api/listUsers"); got != 2 {
		t.Errorf("latency observations of GET /api/listUsers = %v, want 2", got)
	}
	for _, c := range []struct {
		action, result string
		want           float64
	}{
		{"register", "locked", 1}, {"register", "pending", 1}, {"register", "granted", 1},
		{"open", "ok", 1}, {"confirm", "ok", 1}, {"confirm", "refused", 1}, {"lock", "ok", 1},
	} {
		if got := value(mfs, "warden_registry_requests_total", "action", c.action, "result", c.result); got != c.want {
			t.Errorf("registry %s %s = %v, want %v", c.action, c.result, got, c.want)
		}
	}
	if got := value(mfs, "warden_http_requests_in_flight"); got != 1 {
		t.Errorf("requests in flight during a scrape = %v, want 1 (the scrape)", got)
	}
	for _, secret := range []string{a.admin, aliceToken, alice.ID, "metrics-alice", "sensor-metrics", "nobody-pending", "no-such-thing", "Alice-password-1"} {
		if strings.Contains(text, secret) {
			t.Errorf("/metrics contains %q", secret)
		}
	}
}

// TestMetricsServedWithoutARegistry: with no registry in the options the
// API still serves its own metrics.
func TestMetricsServedWithoutARegistry(t *testing.T) {
	t.Parallel()
	a := newAPI(t, storetest.OpenBolt(t))
	_, mfs := scrape(t, a)
	if got := value(mfs, "warden_http_requests_total", "route", "POST /api/login", "code", "200"); got != 1 {
		t.Fatalf("login requests = %v, want 1", got)
	}
}

// readiness decodes a /readyz answer.
type readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
	Error  string            `json:"error"`
	Code   int               `json:"code"`
}

func getReady(t *testing.T, a *api) (int, readiness) {
	t.Helper()
	code, b := a.do("GET", "/readyz", "", nil)
	var r readiness
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("/readyz body %s: %v", b, err)
	}
	return code, r
}

// TestHealthAndReadiness: /healthz answers while the process serves;
// /readyz answers 200 while the store answers a ping and the listeners
// serve, and 503 naming the failed check once Redis is stopped or the
// listeners are not serving. Neither needs a token.
func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	t.Run("redis stops", func(t *testing.T) {
		redis := storetest.StartRedis(t)
		st := storetest.OpenRedis(t, storetest.URL(redis.URL))
		a := newAPI(t, st, func(o *admin.Options) { o.Ready = func() error { return nil } })
		code, r := getReady(t, a)
		if code != http.StatusOK || r.Status != "ok" || r.Checks["store"] != "ok" || r.Checks["listeners"] != "ok" {
			t.Fatalf("/readyz with Redis up: %d %+v", code, r)
		}
		redis.Stop()
		code, r = getReady(t, a)
		if code != http.StatusServiceUnavailable || r.Status != "unavailable" || r.Checks["store"] != "failed" ||
			r.Checks["listeners"] != "ok" || r.Code != http.StatusServiceUnavailable || !strings.Contains(r.Error, "store") {
			t.Fatalf("/readyz with Redis stopped: %d %+v", code, r)
		}
		if code, b := a.do("GET", "/healthz", "", nil); code != http.StatusOK || strings.TrimSpace(string(b)) != `{"status":"ok"}` {
			t.Fatalf("/healthz with Redis stopped: %d %s", code, b)
		}
	})
	t.Run("listeners not serving", func(t *testing.T) {
		a := newAPI(t, storetest.OpenBolt(t), func(o *admin.Options) { o.Ready = func() error { return errors.New("mqtt listeners not started") } })
		code, r := getReady(t, a)
		if code != http.StatusServiceUnavailable || r.Checks["store"] != "ok" || r.Checks["listeners"] != "failed" {
			t.Fatalf("/readyz: %d %+v", code, r)
		}
		if strings.Contains(r.Error, "mqtt listeners not started") {
			t.Errorf("/readyz shows the check's error text: %q", r.Error)
		}
	})
	t.Run("no listener check configured", func(t *testing.T) {
		a := newAPI(t, storetest.OpenBolt(t))
		code, r := getReady(t, a)
		if _, ok := r.Checks["listeners"]; code != http.StatusOK || ok {
			t.Fatalf("/readyz: %d %+v", code, r)
		}
		if code, b := a.do("GET", "/healthz", "", nil); code != http.StatusOK || strings.TrimSpace(string(b)) != `{"status":"ok"}` {
			t.Fatalf("/healthz: %d %s", code, b)
		}
	})
}
