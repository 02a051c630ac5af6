package authhook

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/directory"
	"github.com/warden-mqtt/warden/store"
)

// resyncInterval is how often a node retries after a failed refresh (store
// down) and sweeps stale state.
const resyncInterval = 2 * time.Second

// watch applies the change feed until the hook stops.
func (h *Hook) watch(events <-chan store.Event) {
	defer close(h.done)
	tick := time.NewTicker(resyncInterval)
	defer tick.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			if ev.Kind == store.KindSetting {
				// No setting changes what a client may do, and the nodes'
				// client lists are written every few seconds: a CONNECT
				// racing one must not reload its user (enter's epoch check).
				h.noticeRoster(ev)
				continue
			}
			h.apply(ev)
			h.settled.Store(h.epoch.Load())
			h.noticeRoster(ev)
			if ev.Kind == store.KindUser || ev.Kind == store.KindRole || ev.Kind == store.KindReset ||
				ev.Kind == store.KindToken && ev.Op == store.OpDelete {
				h.changed(ev)
			}
		case <-tick.C:
			if h.dirty.Load() {
				h.resync()
				h.settled.Store(h.epoch.Load())
				h.changed(store.Event{Kind: store.KindReset})
			}
			h.sweep()
		}
	}
}

// apply carries one change out on the cache and on connected clients.
func (h *Hook) apply(ev store.Event) {
	h.epoch.Add(1)
	switch ev.Kind {
	case store.KindUser:
		h.refreshUser(ev.ID)
	case store.KindRole:
		r, err := h.st.Role(h.ctx, ev.ID)
		var holders []string
		switch {
		case err == nil:
			holders = h.model.setRole(ev.ID, r, true)
		case errors.Is(err, store.ErrNotFound):
			holders = h.model.setRole(ev.ID, store.Role{}, false)
		default:
			h.dirty.Store(true)
			return
		}
		for _, id := range holders {
			h.refreshUser(id)
		}
	case store.KindToken:
		if ev.Op == store.OpDelete {
			h.conns.Range(func(_, v any) bool {
				if c := v.(*conn); c.tokenID == ev.ID {
					h.revoke(c, "token revoked")
				}
				return true
			})
		}
	case store.KindReset:
		h.resync()
	}
}

// refreshUser reloads one cached user and re-evaluates its clients.
func (h *Hook) refreshUser(id string) {
	old := h.model.cachedID(id)
	if old == nil {
		return // nothing on this node depends on it
	}
	e, err := h.model.loadID(h.ctx, id, h.epoch.Load())
	switch {
	case errors.Is(err, store.ErrNotFound):
		h.model.drop(id)
		for _, c := range h.connsOf(old.user.Username) {
			h.revoke(c, "user deleted")
		}
		return
	case errors.Is(err, errBrokenModel):
		h.log.Error("user's permissions do not compile; revoking its clients", "user", old.user.Username, "error", err)
		h.model.drop(id)
		for _, c := range h.connsOf(old.user.Username) {
			h.revoke(c, "broken permissions")
		}
		return
	case err != nil:
		h.dirty.Store(true)
		return
	}
	for _, c := range h.connsOf(old.user.Username) {
		h.reevaluate(c, e)
	}
}

// stillHolds returns why a client that authenticated as userID/username
// with proof may not stay connected as the user u is now, or "" if it
// may: the user was replaced, suspended, its password or grant types or
// pinned certificate changed, or MFA now applies.
func (h *Hook) stillHolds(userID, username string, p proof, u store.User, now time.Time) string {
	allowed, required := grants(u)
	// A password session is held to the MFA rules as a new CONNECT would
	// be (checkPassword): unless a certificate authenticated it without
	// the password, enrolling MFA or the MFA lock ends it.
	mfa := ""
	if p.byPassword && (p.certFP == "" || required.password) {
		mfa = h.mfaRefusal(u, p.certFP, now)
	}
	switch {
	case u.ID != userID || u.Username != username:
		return "user replaced or renamed"
	case u.Suspended:
		return "user suspended"
	case p.byPassword && u.PasswordVersion != p.pwVersion:
		return "password changed"
	case p.directory && u.IdentityProvider != directory.IdentityProviderLDAP:
		return "directory user gone"
	case (p.byPassword || p.tokenID != "") && !allowed.password:
		return "password grant removed"
	case mfa != "":
		return mfa
	case p.certFP != "" && (!allowed.certificate || !certPinned(u, p.certFP, now)):
		return "certificate removed"
	case required.password && !p.byPassword && p.tokenID == "":
		return "password now required"
	case required.certificate && p.certFP == "":
		return "certificate now required"
	}
	return ""
}

// reevaluate checks that c's way of authenticating still holds for the
// user as it is now, then swaps in a snapshot of its current permissions
// and drops subscriptions they no longer cover.
func (h *Hook) reevaluate(c *conn, e *entry) {
	if reason := h.stillHolds(c.userID, c.username, c.proof, e.user, time.Now()); reason != "" {
		h.revoke(c, reason)
	}
	if c.revoked.Load() {
		return
	}
	next := &session{prefix: e.user.MQTTPublishPrefix, bound: e.matcher.Bind(c.username, c.clientID), epoch: e.epoch}
	for {
		cur := c.sess.Load()
		if cur == nil {
			return // revoked meanwhile
		}
		if cur.epoch > next.epoch {
			return // a newer snapshot is already in place
		}
		if c.sess.CompareAndSwap(cur, next) {
			break
		}
	}
	h.prune(c, next)
}

// prune removes the client's subscriptions its permissions no longer
// cover (deliveries are checked anyway; this also frees broker state and
// mirrors what the client could subscribe to now), clears a will it may no
// longer publish, and drops an offline session's queued messages it may
// no longer read.
func (h *Hook) prune(c *conn, s *session) {
	srv := h.server.Load()
	if srv == nil {
		return
	}
	for filter := range c.cl.State.Subscriptions.GetAll() {
		if s.bound.Covers(filter) {
			continue
		}
		if srv.Topics.Unsubscribe(filter, c.cl.ID) {
			atomic.AddInt64(&srv.Info.Subscriptions, -1)
		}
		c.cl.State.Subscriptions.Delete(filter)
		h.log.Info("mqtt subscription removed: no longer permitted", "user", c.username, "client", c.clientID, "filter", filter)
	}
	if c.willTopic != "" && !s.bound.Allows(c.willTopic, acl.OpWrite) {
		if atomic.LoadUint32(&c.cl.Properties.Will.Flag) == 1 {
			atomic.StoreUint32(&c.cl.Properties.Will.Flag, 0)
			h.log.Info("mqtt will cleared: topic no longer permitted", "user", c.username, "client", c.clientID)
		}
		h.cancelWill(c) // one already waiting for its delay
	}
	h.dropUnreadable(c, s)
}

// resync reloads every cached role and user (after a reset or a failed
// refresh) and re-checks token-authenticated clients.
func (h *Hook) resync() {
	h.dirty.Store(false)
	h.epoch.Add(1)
	h.model.clearRoles()
	for _, id := range h.model.userIDs() {
		h.refreshUser(id)
	}
	h.conns.Range(func(_, v any) bool {
		c := v.(*conn)
		if c.tokenID == "" || c.revoked.Load() {
			return true
		}
		_, err := h.st.Token(h.ctx, c.tokenID)
		if errors.Is(err, store.ErrNotFound) {
			h.revoke(c, "token revoked")
		} else if err != nil {
			h.dirty.Store(true)
		}
		return true
	})
}

// sweep forgets gone connections that hold no session in Mochi (any
// more), nor a delayed will Mochi still holds for them: those Mochi
// dropped without calling OnDisconnect (a CONNACK that could not be
// written), sessions resumed or replaced by a newer client, and clients
// whose will was sent, refused, or dropped by Mochi when the session was
// resumed or its client ID reused.
func (h *Hook) sweep() {
	srv := h.server.Load()
	if srv == nil {
		return
	}
	now := time.Now()
	h.conns.Range(func(k, v any) bool {
		c := v.(*conn)
		if !c.cl.Closed() || h.willWaiting(srv, c, now) {
			return true
		}
		if cur, ok := srv.Clients.Get(c.cl.ID); !ok || cur != c.cl {
			h.forget(c.cl)
		}
		return true
	})
}
