package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/warden-mqtt/warden/store/storetest"
)

// httpGet fetches http://addr+path without a token.
func httpGet(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// scrapeMetrics fetches and parses GET /metrics as Prometheus would.
func scrapeMetrics(t *testing.T, addr string) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	code, body := httpGet(t, addr, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return body, mfs
}

// metricValue returns a counter's or gauge's value, or a histogram's
// sample count, of the series name{labels} (label pairs as "k", "v",
// ...); -1 when the series is absent, so "absent" never passes for 0.
func metricValue(mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
next:
	for _, m := range mfs[name].GetMetric() {
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
	return -1
}

// mqttClient connects an MQTT 5 client (Eclipse Paho) to addr; it returns
// the client and the CONNACK reason code.
func mqttClient(t *testing.T, addr, clientID, user, password string) (*paho.Client, byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ack, err := c.Connect(ctx, &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true,
		Username: user, UsernameFlag: true, Password: []byte(password), PasswordFlag: true})
	if ack == nil {
		t.Fatalf("connect %s: no CONNACK: %v", user, err)
	}
	return c, ack.ReasonCode
}

// TestBinaryMetricsAndHealth runs the real binary. A scripted session
// (MQTT: a connect, a wrong password, a denied publish, a denied
// subscription; HTTP: 200, 401, 404) moves exactly the expected counters
// on GET /metrics, which names no user, client, topic or token; the
// health endpoints answer without a token; on Redis, /readyz turns 503
// when Redis stops.
func TestBinaryMetricsAndHealth(t *testing.T) {
	t.Parallel()
	bin := buildWarden(t)

	t.Run("scripted session", func(t *testing.T) {
		pw := validPassword(t)
		p := startWarden(t, bin, "WARDEN_DATA_DIR="+filepath.Join(t.TempDir(), "data"), "WARDEN_ADMIN_PASSWORD="+pw)
		p.waitFor("warden ready")
		out := p.out.String()
		httpAddr := strings.Replace(listenAddr(t, out, "http"), "[::]", "127.0.0.1", 1)
		mqttAddr := strings.Replace(listenAddr(t, out, "mqtt"), "[::]", "127.0.0.1", 1)

		var login struct{ Token string }
		apiCall(t, httpAddr, "POST", "/api/login", "", map[string]string{"username": "admin", "password": pw}, &login, 200)
		devPW := validPassword(t)
		apiCall(t, httpAddr, "POST", "/api/users", login.Token, map[string]any{"username": "e2e-device-42", "password": devPW,
			"initialPermissions": []map[string]string{{"resource": "e2e/allowed/#", "operation": "readWrite", "context": "mqtt"}}}, nil, 201)
		apiCall(t, httpAddr, "GET", "/api/listUsers", "", nil, nil, 401)
		apiCall(t, httpAddr, "GET", "/api/no-such-route", login.Token, nil, nil, 404)

		dev, code := mqttClient(t, mqttAddr, "e2e-client-1", "e2e-device-42", devPW)
		if code != 0 {
			t.Fatalf("device connect: CONNACK 0x%02x", code)
		}
		if _, code := mqttClient(t, mqttAddr, "e2e-client-2", "e2e-device-42", "wrong-"+devPW); code != 0x86 {
			t.Fatalf("wrong password: CONNACK 0x%02x, want 0x86", code)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		pr, err := dev.Publish(ctx, &paho.Publish{Topic: "e2e/forbidden/temp", QoS: 1, Payload: []byte("21")})
		if pr == nil || pr.ReasonCode != 0x87 {
			t.Fatalf("denied publish: %+v, %v; want PUBACK 0x87", pr, err)
		}
		sa, err := dev.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "e2e/forbidden/#", QoS: 1}}})
		if sa == nil || len(sa.Reasons) != 1 || sa.Reasons[0] != 0x87 {
			t.Fatalf("denied subscribe: %+v, %v; want SUBACK 0x87", sa, err)
		}

		text, mfs := scrapeMetrics(t, httpAddr)
		for _, c := range []struct {
			name   string
			labels []string
			want   float64
		}{
			{"warden_mqtt_connects_accepted_total", nil, 1},
			{"warden_mqtt_connects_refused_total", []string{"reason", "bad_credentials"}, 1},
			{"warden_mqtt_connects_refused_total", []string{"reason", "not_authorized"}, 0},
			{"warden_mqtt_acl_denials_total", []string{"kind", "publish"}, 1},
			{"warden_mqtt_acl_denials_total", []string{"kind", "subscribe"}, 1},
			{"warden_mqtt_acl_denials_total", []string{"kind", "delivery"}, 0},
			{"warden_mqtt_active_clients", nil, 1},
			{"warden_mqtt_auth_cache_total", []string{"cache", "password", "result", "miss"}, 2},
			{"warden_http_requests_total", []string{"route", "POST /api/login", "code", "200"}, 1},
			{"warden_http_requests_total", []string{"route", "POST /api/users", "code", "201"}, 1},
			{"warden_http_requests_total", []string{"route", "GET /api/listUsers", "code", "401"}, 1},
			{"warden_http_requests_total", []string{"route", "/", "code", "404"}, 1},
			{"warden_store_up", []string{"backend", "bolt"}, 1},
		} {
			if got := metricValue(mfs, c.name, c.labels...); got != c.want {
				t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
			}
		}
		if hit, miss := metricValue(mfs, "warden_mqtt_auth_cache_total", "cache", "user", "result", "hit"),
			metricValue(mfs, "warden_mqtt_auth_cache_total", "cache", "user", "result", "miss"); hit+miss != 2 {
			t.Errorf("user cache lookups = %v hits + %v misses, want 2 in all", hit, miss)
		}
		if got := metricValue(mfs, "warden_store_operation_duration_seconds", "operation", "user_by_username"); got < 1 {
			t.Errorf("user_by_username store calls observed: %v", got)
		}
		if metricValue(mfs, "go_goroutines") <= 0 || metricValue(mfs, "process_start_time_seconds") <= 0 {
			t.Error("the Go runtime and process collectors are missing")
		}
		for _, secret := range []string{"e2e-device", "e2e-client", "e2e/", "forbidden", "allowed", login.Token, devPW, pw, "no-such-route"} {
			if strings.Contains(text, secret) {
				t.Errorf("/metrics contains %q", secret)
			}
		}

		if code, body := httpGet(t, httpAddr, "/healthz"); code != 200 || strings.TrimSpace(body) != `{"status":"ok"}` {
			t.Errorf("/healthz: %d %s", code, body)
		}
		readyCode, body := httpGet(t, httpAddr, "/readyz")
		var ready struct {
			Status string
			Checks map[string]string
		}
		if err := json.Unmarshal([]byte(body), &ready); err != nil || readyCode != 200 || ready.Status != "ok" ||
			ready.Checks["store"] != "ok" || ready.Checks["listeners"] != "ok" {
			t.Errorf("/readyz: %d %s", readyCode, body)
		}

		p.signal(syscall.SIGTERM)
		if code := p.exitCode(); code != 0 {
			t.Fatalf("exit %d:\n%s", code, p.out)
		}
	})

	t.Run("readyz follows redis", func(t *testing.T) {
		redis := storetest.StartRedis(t)
		p := startWarden(t, bin, "WARDEN_REDIS_URL="+redis.URL, "WARDEN_DATA_DIR="+filepath.Join(t.TempDir(), "data"))
		p.waitFor("warden ready")
		httpAddr := strings.Replace(listenAddr(t, p.out.String(), "http"), "[::]", "127.0.0.1", 1)
		if code, body := httpGet(t, httpAddr, "/readyz"); code != 200 {
			t.Fatalf("/readyz with Redis up: %d %s", code, body)
		}
		redis.Stop()
		code, body := httpGet(t, httpAddr, "/readyz")
		var ready struct {
			Status string
			Checks map[string]string
		}
		if err := json.Unmarshal([]byte(body), &ready); err != nil || code != 503 || ready.Status != "unavailable" ||
			ready.Checks["store"] != "failed" || ready.Checks["listeners"] != "ok" {
			t.Fatalf("/readyz with Redis stopped: %d %s", code, body)
		}
		// The readiness ping also updates the gauge.
		if _, mfs := scrapeMetrics(t, httpAddr); metricValue(mfs, "warden_store_up", "backend", "redis") != 0 {
			t.Errorf("warden_store_up with Redis stopped = %v, want 0", metricValue(mfs, "warden_store_up", "backend", "redis"))
		}
		if code, _ := httpGet(t, httpAddr, "/healthz"); code != 200 {
			t.Errorf("/healthz with Redis stopped: %d", code)
		}
		p.signal(syscall.SIGTERM)
		// Closing a store whose server is gone is not a failure.
		if code := p.exitCode(); code != exitOK {
			t.Fatalf("exit %d:\n%s", code, p.out)
		}
	})
}
