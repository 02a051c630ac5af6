package authhook

import (
	"container/list"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/warden-mqtt/warden/acl"
)

// DefaultMaxOfflineSessions is Options.MaxOfflineSessions' default. A
// warden user is normally one device or service (the registry creates one
// per device; certificates map CN to user), holding one session and a
// second while it reconnects; ten leaves room for a service's few
// instances. Fleets sharing one user with persistent sessions raise it.
const DefaultMaxOfflineSessions = 10

// willGrace is how long past its delay the hook keeps knowing a gone
// client with a delayed will: Mochi sends delayed wills from a one-second
// ticker, and asks the hook again then (OnWill). A will still pending
// after that is refused (the client is unknown), never sent unchecked.
const willGrace = 10 * time.Second

// OnWill decides whether a client's will may be published, when its
// connection ends and again when a delayed will is due (patched Mochi,
// WARDEN-PATCHES.md): only if the client's access has not been revoked
// and its current permissions still allow writing the will topic. A
// refused will is returned with Flag 0, which Mochi takes as "do not
// publish" (an error would only be logged, will payload included).
func (h *Hook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	c := h.lookup(cl)
	if c == nil || !h.mayPublishWill(c, will.TopicName) {
		if c != nil {
			c.willDue.Store(0)
			h.log.Info("mqtt will dropped: access revoked or topic no longer permitted", "user", c.username, "client", c.clientID)
		}
		return mqtt.Will{}, nil
	}
	if will.WillDelayInterval > 0 && c.willDue.Load() == 0 {
		// Keep knowing the client until the will is due (see sweep).
		c.willDue.Store(time.Now().Add(time.Duration(will.WillDelayInterval)*time.Second + willGrace).UnixNano())
	}
	return will, nil
}

// OnWillSent: a delayed will went out; the gone client need not be kept
// for it any more.
func (h *Hook) OnWillSent(cl *mqtt.Client, _ packets.Packet) {
	if c := h.lookup(cl); c != nil {
		c.willDue.Store(0)
	}
}

// mayPublishWill checks the will topic (already prefixed at CONNECT)
// against the client's permissions as they are now, and against the
// topic limits (the prefix may have made it longer than the client sent).
func (h *Hook) mayPublishWill(c *conn, topic string) bool {
	s := c.sess.Load()
	if s == nil || c.revoked.Load() || !s.bound.Allows(topic, acl.OpWrite) {
		return false
	}
	return h.topicWithinLimits(topic)
}

// willPending reports whether c's delayed will may still be sent. It
// reads the clock only when c left one: it runs on every disconnect.
func (c *conn) willPending() bool {
	due := c.willDue.Load()
	return due != 0 && due > time.Now().UnixNano()
}

// willWaiting reports whether c must still be known for its delayed
// will: Mochi holds that will for c's client (not one Mochi dropped when
// the session was resumed or its client ID reused), or its delay has
// passed and Mochi is about to ask OnWill (willGrace after the delay).
func (h *Hook) willWaiting(srv *mqtt.Server, c *conn, now time.Time) bool {
	due := c.willDue.Load()
	if due <= now.UnixNano() {
		return false
	}
	return now.UnixNano() >= due-int64(willGrace) || srv.DelayedWillPending(c.cl)
}

// cancelWill drops the will c's client left waiting for its delay.
func (h *Hook) cancelWill(c *conn) {
	if srv := h.server.Load(); srv != nil && srv.CancelDelayedWill(c.cl) {
		h.log.Info("mqtt delayed will cancelled", "user", c.username, "client", c.clientID)
	}
	c.willDue.Store(0)
}

// wentOffline records that c's persistent session outlives its connection
// and ends the user's oldest offline sessions beyond MaxOfflineSessions:
// each keeps subscriptions and up to the queued-message limit of messages
// for up to the session expiry, so without a cap one user could make the
// broker hold any number of them. Ending the oldest, never refusing a new
// CONNECT, keeps a device that reconnects under a fresh client ID working.
// A session leaves the list when it is resumed or replaced (claimClientID),
// expires or ends (forget), so this is O(1), whatever the list's length.
func (h *Hook) wentOffline(c *conn) {
	srv := h.server.Load()
	if srv == nil || c.revoked.Load() {
		return // a revoked session is being ended (disconnect)
	}
	h.mu.Lock()
	if _, known := h.byUser[c.username][c]; !known || c.offline != nil {
		h.mu.Unlock() // forgotten meanwhile, or listed already
		return
	}
	if h.offline == nil {
		h.offline = map[string]*list.List{}
	}
	q := h.offline[c.username]
	if q == nil {
		q = list.New()
		h.offline[c.username] = q
	}
	c.offline = q.PushBack(c)
	var evict []*conn
	for q.Len() > h.opts.MaxOfflineSessions {
		o := q.Remove(q.Front()).(*conn)
		o.offline = nil
		evict = append(evict, o)
	}
	h.mu.Unlock()
	for _, o := range evict {
		h.endSession(o)
	}
}

// endSession ends an offline persistent session as if it had expired. A
// will waiting for its delay is due now, as at the end of any session (and
// so it does not wait up to a day per ended session): the hook is asked
// about it once more at the next tick, then forgets the client.
func (h *Hook) endSession(c *conn) {
	srv := h.server.Load()
	h.log.Info("mqtt offline session ended: user has too many", "user", c.username, "client", c.clientID, "max", h.opts.MaxOfflineSessions)
	if srv.ExpediteDelayedWill(c.cl) {
		c.willDue.Store(time.Now().Add(willGrace).UnixNano())
	}
	h.purge(srv, c.cl)
}

// purge ends cl's session in Mochi: its subscriptions, its queued
// messages, and the session itself while it is still cl's (not a newer
// client's with the same ID). The hook forgets cl, unless a delayed will
// of cl's is still pending: OnWill must find it then, and sweep forgets
// it once the will has gone; it is no offline session any more either way.
func (h *Hook) purge(srv *mqtt.Server, cl *mqtt.Client) {
	srv.UnsubscribeClient(cl)
	cl.ClearInflights()
	if cur, ok := srv.Clients.Get(cl.ID); ok && cur == cl {
		srv.Clients.Delete(cl.ID)
	}
	c := h.lookup(cl)
	if c == nil || !c.willPending() {
		h.forget(cl)
		return
	}
	h.mu.Lock()
	h.unlistOffline(c)
	h.mu.Unlock()
}

// unlistOffline removes c from its user's offline sessions (h.mu held).
func (h *Hook) unlistOffline(c *conn) {
	if c.offline == nil {
		return
	}
	q := h.offline[c.username]
	q.Remove(c.offline)
	c.offline = nil
	if q.Len() == 0 {
		delete(h.offline, c.username)
	}
}

// dropUnreadable removes the messages queued for c's offline session that
// its permissions no longer let it read, so they are never delivered and
// free their memory now (Mochi re-checks them on resend too; see
// WARDEN-PATCHES.md). A connected client's queue is left to Mochi: what
// it has been sent it has, and the rest is checked before it is sent.
// Messages already in a client's outbound channel (up to
// --mqtt-max-pending-writes, written by its write loop) are not
// re-checked: they were checked when they were queued.
func (h *Hook) dropUnreadable(c *conn, s *session) {
	srv := h.server.Load()
	if srv == nil || !c.cl.Closed() || c.cl.State.Inflight.Len() == 0 {
		return
	}
	n := srv.DropInflights(c.cl, func(pk packets.Packet) bool {
		return pk.FixedHeader.Type == packets.Publish && !s.bound.Allows(pk.TopicName, acl.OpRead)
	})
	if n > 0 {
		h.log.Info("mqtt queued messages dropped: no longer permitted", "user", c.username, "client", c.clientID, "count", n)
	}
}

// topicWithinLimits applies the broker's topic limits to a topic the hook
// built (a publish prefix plus the client's topic).
func (h *Hook) topicWithinLimits(topic string) bool {
	srv := h.server.Load()
	return srv == nil || srv.Options.Capabilities.TopicWithinLimits(topic)
}
