package authhook

import (
	"context"
	"errors"
	"time"

	"github.com/warden-mqtt/warden/store"
)

// A surface whose broker cannot ask warden at every packet (a NATS
// server holds the permissions warden signed at CONNECT) keeps each
// admitted client's Grant and, whenever the model changes (OnChange),
// asks Recheck whether the client may stay and what it may do now; it
// disconnects the client when the answer differs from what it was given.

// Recheck decides again, against the model as it is now, a client admitted
// with g: the same rules that disconnect an embedded broker's client when
// its user changes (reevaluate), plus the login token's revocation. It
// returns the current decision, a *Refusal saying why the client must go,
// or another error when the store cannot tell (the surface keeps the
// client then and asks again later).
func (h *Hook) Recheck(ctx context.Context, g Grant) (Decision, error) {
	e := h.model.cachedID(g.UserID)
	if e == nil {
		// Decided by another node, or evicted: load it and cache it, so the
		// change feed keeps it current from now on.
		var err error
		e, err = h.model.loadID(ctx, g.UserID, h.epoch.Load())
		switch {
		case errors.Is(err, store.ErrNotFound):
			return Decision{}, &Refusal{Code: RefusedNotAuthorized, Reason: "user deleted"}
		case errors.Is(err, errBrokenModel):
			return Decision{}, &Refusal{Code: RefusedNotAuthorized, Reason: "broken permissions"}
		case err != nil:
			return Decision{}, err
		}
	}
	p := proof{byPassword: g.ByPassword, pwVersion: g.PasswordVersion, directory: g.ByDirectory, tokenID: g.TokenID, certFP: g.CertFingerprint}
	if reason := h.stillHolds(g.UserID, g.Username, p, e.user, time.Now()); reason != "" {
		return Decision{}, &Refusal{Code: RefusedNotAuthorized, Reason: reason}
	}
	if g.TokenID != "" {
		if _, err := h.st.Token(ctx, g.TokenID); errors.Is(err, store.ErrNotFound) {
			return Decision{}, &Refusal{Code: RefusedNotAuthorized, Reason: "token revoked"}
		} else if err != nil {
			return Decision{}, err
		}
	}
	l := login{attempt: attempt{Attempt: Attempt{ClientID: g.ClientID}}, username: g.Username, entry: e}
	d := decision(&l)
	d.Grant = g
	return d, nil
}

// OnChange calls fn on the change-feed goroutine after each change that
// can end a client's access (a user, a role, a revoked token; a resync is
// a KindReset) has been applied to the hook's cache, so that a Recheck fn
// triggers sees the change. fn must not block: it should signal a worker.
// The returned func stops the calls.
func (h *Hook) OnChange(fn func(store.Event)) (stop func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.listenerSeq++
	id := h.listenerSeq
	if h.listeners == nil {
		h.listeners = map[uint64]func(store.Event){}
	}
	h.listeners[id] = fn
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.listeners, id)
	}
}

// changed calls the OnChange listeners.
func (h *Hook) changed(ev store.Event) {
	h.mu.Lock()
	fns := make([]func(store.Event), 0, len(h.listeners))
	for _, fn := range h.listeners {
		fns = append(fns, fn)
	}
	h.mu.Unlock()
	for _, fn := range fns {
		fn(ev)
	}
}
