package webhook

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/store"
)

// Decider decides connection attempts and what connected clients may do:
// an *authhook.Hook.
type Decider interface {
	Decide(ctx context.Context, a authhook.Attempt) (authhook.Decision, error)
	Rights(ctx context.Context, username, clientID string) (*authhook.Rights, error)
	Recheck(ctx context.Context, g authhook.Grant) (authhook.Decision, error)
	OnChange(fn func(store.Event)) (stop func())
}

// Options configure a Handler. Decider is required.
type Options struct {
	Decider Decider
	// ClientCAs returns the CAs a client certificate the broker forwards
	// must chain to (warden's trusted certificates, /api/certificates);
	// nil or a nil pool: forwarded certificates are ignored.
	ClientCAs func() *x509.CertPool
	// CacheMaxAge, when positive, is announced on successful answers
	// (cache-control: max-age) so the broker may reuse them: a revocation
	// then waits up to that long. 0: every call is decided afresh.
	CacheMaxAge time.Duration
	// Logger receives refusals the Decider did not log and failures; never
	// a password, a token or a payload. nil: none.
	Logger *slog.Logger
	// VerneMQ, when its URL is set, is VerneMQ's HTTP API, through which
	// changes disconnect the sessions they end or alter (vernemq.go).
	VerneMQ VerneMQAPI
	// EMQX, when its URL is set, is EMQX's REST API, likewise (emqx.go).
	EMQX EMQXAPI
}

// MaxBodyBytes bounds a webhook request body: a register hook carries a
// certificate, a publish hook the message payload, which warden never
// reads but must not buffer without bound.
const MaxBodyBytes = 1 << 20

// Handler answers the brokers' webhooks. Its routes are mounted by the
// admin server, which authenticates the broker first.
type Handler struct {
	opts   Options
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
}

// ErrOptions reports Options New cannot work with.
var ErrOptions = errors.New("webhook: invalid options")

// New returns a Handler; it follows the model's changes (to disconnect
// sessions through the brokers' APIs) until ctx ends or Close.
func New(ctx context.Context, o Options) (*Handler, error) {
	if o.Decider == nil {
		return nil, fmt.Errorf("%w: Decider is required", ErrOptions)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{opts: o, log: o.Logger}
	h.ctx, h.cancel = context.WithCancel(ctx)
	return h, nil
}

// Close stops following the model's changes.
func (h *Handler) Close() { h.cancel() }

// Routes returns the handlers by net/http pattern ("POST /api/broker/…").
func (h *Handler) Routes() map[string]http.HandlerFunc {
	routes := map[string]http.HandlerFunc{}
	h.vernemqRoutes(routes)
	h.emqxRoutes(routes)
	return routes
}

// decodeBody reads one JSON object of at most MaxBodyBytes into v; unknown
// fields are ignored (brokers add fields between versions).
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fmt.Errorf("body larger than %d bytes", MaxBodyBytes)
		}
		return fmt.Errorf("malformed JSON body: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("malformed JSON body: more than one value")
	}
	return nil
}

// writeJSON answers v with status; cacheable answers carry the cache
// lifetime the broker may reuse them for.
func (h *Handler) writeJSON(w http.ResponseWriter, status int, v any, cacheable bool) {
	w.Header().Set("Content-Type", "application/json")
	if cacheable && h.opts.CacheMaxAge > 0 {
		w.Header().Set("Cache-Control", "max-age="+strconv.Itoa(int(h.opts.CacheMaxAge/time.Second)))
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// badRequest answers a request warden cannot read: 400 with the reason.
func (h *Handler) badRequest(w http.ResponseWriter, err error) {
	h.writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()}, false)
}
