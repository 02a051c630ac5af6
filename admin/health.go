package admin

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/warden-mqtt/warden/store"
)

// ReadyTimeout bounds the store check of GET /readyz: a probe must answer
// before the orchestrator's own timeout, and a store that takes longer is
// not ready for traffic anyway.
const ReadyTimeout = 2 * time.Second

// Check names and results in the body of GET /readyz.
const (
	checkStore     = "store"
	checkListeners = "listeners"
	checkOK        = "ok"
	checkFailed    = "failed"
)

// readiness is the body of GET /readyz.
type readiness struct {
	Status string            `json:"status"` // "ok" or "unavailable"
	Checks map[string]string `json:"checks"` // check name -> "ok" or "failed"
	// Error and Code repeat, on a 503, what every error body carries.
	Error string `json:"error,omitempty"`
	Code  int    `json:"code,omitempty"`
}

// registerHealth serves the probes, without a token: orchestrators and
// load balancers call them with no credentials, and the answers name
// checks, never their errors (those go to the log).
func (s *Server) registerHealth() {
	s.handle("GET /healthz", public, s.healthz)
	s.handle("GET /readyz", public, s.readyz)
}

// healthz answers while the process serves HTTP at all: a liveness probe
// that fails only when restarting the process is the cure.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request, _ *caller) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// readyz answers 200 when the store answers a Ping within ReadyTimeout
// and, if Options.Ready is set, the MQTT listeners serve; 503 naming the
// failed checks otherwise, so traffic goes to another node meanwhile.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request, _ *caller) error {
	body := readiness{Status: "ok", Checks: map[string]string{}}
	fail := func(check string, err error) {
		s.log.Warn("not ready", "check", check, "err", err)
		body.Checks[check] = checkFailed
		if body.Error == "" {
			body.Error = "not ready: " + check
		} else {
			body.Error += ", " + check
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), ReadyTimeout)
	defer cancel()
	lost := false
	if err := s.st.Ping(ctx); err != nil {
		fail(checkStore, err)
		lost = errors.Is(err, store.ErrModelLost)
	} else {
		body.Checks[checkStore] = checkOK
	}
	if s.opts.Ready != nil {
		if err := s.opts.Ready(); err != nil {
			fail(checkListeners, err)
		} else {
			body.Checks[checkListeners] = checkOK
		}
	}
	if lost {
		// The one store failure that waiting or restarting cannot cure:
		// say so where operators look first.
		body.Error += "; store: " + lostModelMessage
	}
	if body.Error != "" {
		body.Status, body.Code = "unavailable", http.StatusServiceUnavailable
		writeJSON(w, http.StatusServiceUnavailable, body)
		return nil
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}
