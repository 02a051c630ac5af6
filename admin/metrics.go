package admin

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/warden-mqtt/warden/telemetry"
)

// metrics are the admin API's Prometheus metrics (docs/metrics.md) and the
// registry GET /metrics serves. Labels are route patterns, status codes
// and fixed registry actions: never a raw path, which may hold a token
// (/api/oauth2/{token}) or a username.
type metrics struct {
	// routes are the server's registered routes (set by registerMetrics,
	// complete once New returns); known is built from them on first use.
	routes    *[]route
	knownOnce sync.Once
	known     map[string]bool

	scrape   http.Handler
	requests *prometheus.CounterVec   // route, code
	duration *prometheus.HistogramVec // route
	inflight prometheus.Gauge
	registry *prometheus.CounterVec // action, result
}

// newMetrics registers the API's metrics with reg, or with a registry of
// its own when reg is nil, so GET /metrics always answers.
func newMetrics(reg *prometheus.Registry) (*metrics, error) {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	requests, err := telemetry.RegisterCollector(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "warden_http_requests_total",
		Help: "Admin API requests answered, by route pattern (\"GET /api/users/{id}\"; \"/\" for unknown paths, \"unmatched\" for 405s and redirects) and status code.",
	}, []string{"route", "code"}))
	if err != nil {
		return nil, err
	}
	duration, err := telemetry.RegisterCollector(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "warden_http_request_duration_seconds",
		Help:    "Admin API request latency until the handler returns, by route pattern.",
		Buckets: prometheus.DefBuckets,
	}, []string{"route"}))
	if err != nil {
		return nil, err
	}
	inflight, err := telemetry.RegisterCollector(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "warden_http_requests_in_flight",
		Help: "Admin API requests being served now.",
	}))
	if err != nil {
		return nil, err
	}
	registry, err := telemetry.RegisterCollector(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "warden_registry_requests_total",
		Help: "Client registry calls over HTTP, by action (register, open, lock, confirm, reject) and result (granted, pending, ok, locked, refused, error).",
	}, []string{"action", "result"}))
	if err != nil {
		return nil, err
	}
	return &metrics{
		scrape:   promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		requests: requests, duration: duration, inflight: inflight, registry: registry,
	}, nil
}

// registerMetrics serves GET /metrics without a token: Prometheus scrapes
// with no login flow, and nothing in it identifies a user, client, topic
// or token (docs/metrics.md). Operators who must hide it keep the admin
// listener off untrusted networks, as for the rest of the API.
func (s *Server) registerMetrics() {
	s.metrics.routes = &s.routes
	s.handle("GET /metrics", public, func(w http.ResponseWriter, r *http.Request, _ *caller) error {
		s.metrics.scrape.ServeHTTP(w, r)
		return nil
	})
}

// instrument counts every request by the pattern the mux matched. The mux
// sets r.Pattern on the request it is given, so it can be read here after
// ServeHTTP returns. Only registered patterns become labels: for some
// redirects the mux reports a path there, which may hold a token.
func (m *metrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		m.inflight.Inc()
		cw := &codeWriter{ResponseWriter: w}
		finished := false
		defer func() {
			m.inflight.Dec()
			code := cw.status()
			if !finished {
				code = http.StatusInternalServerError // a panic: net/http drops the connection
			}
			route := r.Pattern
			if !m.isRoute(route) {
				route = "unmatched"
			}
			m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
			m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		}()
		next.ServeHTTP(cw, r)
		finished = true
	})
}

// isRoute reports whether pattern is one the server registered (or the
// catch-all "/").
func (m *metrics) isRoute(pattern string) bool {
	m.knownOnce.Do(func() {
		m.known = map[string]bool{"/": true}
		if m.routes != nil {
			for _, rt := range *m.routes {
				m.known[rt.method+" "+rt.path] = true
			}
		}
	})
	return m.known[pattern]
}

// countRegistry wraps a client-registry handler to count its answers.
func (s *Server) countRegistry(action string, h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *caller) error {
		cw := &codeWriter{ResponseWriter: w}
		err := h(cw, r, c)
		code := cw.status()
		if err != nil {
			code, _ = status(err)
		}
		s.metrics.registry.WithLabelValues(action, registryResult(code)).Inc()
		return err
	}
}

// registryResult names an answer of the registry API: 201 granted, 202
// pending (register), other 2xx ok, 423 locked, other 4xx refused, 5xx
// error.
func registryResult(code int) string {
	switch {
	case code == http.StatusCreated:
		return "granted"
	case code == http.StatusAccepted:
		return "pending"
	case code < 300:
		return "ok"
	case code == http.StatusLocked:
		return "locked"
	case code < 500:
		return "refused"
	}
	return "error"
}

// codeWriter remembers the status code written through it: for the
// request metrics (instrument, countRegistry) and the audit record of a
// change (auditStart).
type codeWriter struct {
	http.ResponseWriter
	code int
}

func (w *codeWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 { // 1xx are interim answers
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *codeWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *codeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// status is the code written, 200 when the handler wrote nothing (as
// net/http answers then).
func (w *codeWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}
