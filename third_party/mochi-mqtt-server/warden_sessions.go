// SPDX-License-Identifier: MIT

// warden patch (WARDEN-PATCHES.md, entries on wills, inflights and topic
// limits): what warden adds to Mochi to bound sessions and to let its auth
// hook withdraw wills and queued messages when access is revoked.

package mqtt

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mochi-mqtt/server/v2/packets"
)

// TopicWithinLimits reports whether a topic name or filter has at most
// MaximumTopicLevels levels and MaximumTopicLength bytes (0: no limit). The
// "$share/{group}/" of a shared subscription is not counted. The server
// checks every PUBLISH topic, will topic and SUBSCRIBE and UNSUBSCRIBE
// filter before the topic index sees it: the index costs a node per level
// and its walks take time quadratic in the level count, under the index's
// root lock for retained messages and subscriptions.
func (c *Capabilities) TopicWithinLimits(topic string) bool {
	if c.MaximumTopicLength > 0 && len(topic) > c.MaximumTopicLength {
		return false
	}
	if c.MaximumTopicLevels > 0 {
		levels := strings.Count(topic, "/") + 1
		if IsSharedFilter(topic) {
			levels -= 2
		}
		if levels > c.MaximumTopicLevels {
			return false
		}
	}
	return true
}

// refuseTopic answers a PUBLISH whose topic exceeds the topic limits the
// way Mochi answers a publish the ACL denies, with "topic name invalid":
// QoS 0 is dropped, an MQTT 5 QoS 1 or 2 publish gets PUBACK or PUBREC
// 0x90 and the connection stays, an MQTT 3 QoS 1 or 2 publish (whose acks
// carry no reason) closes the connection.
func (s *Server) refuseTopic(cl *Client, pk packets.Packet) error {
	s.Log.Debug("publish refused: topic exceeds the topic limits", "client", cl.ID, "listener", cl.Net.Listener,
		"bytes", len(pk.TopicName))
	if pk.FixedHeader.Qos == 0 {
		return nil
	}
	if cl.Properties.ProtocolVersion != 5 {
		return s.DisconnectClient(cl, packets.ErrTopicNameInvalid)
	}
	ackType := packets.Puback
	if pk.FixedHeader.Qos == 2 {
		ackType = packets.Pubrec
	}
	return cl.WritePacket(s.buildAck(pk.PacketID, ackType, 0, pk.Properties, packets.ErrTopicNameInvalid))
}

// delayedWill is a will waiting for its Will Delay Interval, with the
// client it belongs to: the hooks are asked again when it is due, and it
// can be cancelled for that client only (not for a later client reusing
// the ID).
type delayedWill struct {
	cl *Client
	pk packets.Packet
}

// delayedWillsMap holds the pending delayed wills by client ID.
type delayedWillsMap struct {
	mu sync.Mutex
	m  map[string]delayedWill
}

func newDelayedWillsMap() *delayedWillsMap {
	return &delayedWillsMap{m: map[string]delayedWill{}}
}

func (w *delayedWillsMap) add(cl *Client, pk packets.Packet) {
	w.mu.Lock()
	w.m[cl.ID] = delayedWill{cl: cl, pk: pk}
	w.mu.Unlock()
}

// delete drops the will pending for a client ID, whoever's it is.
func (w *delayedWillsMap) delete(id string) {
	w.mu.Lock()
	delete(w.m, id)
	w.mu.Unlock()
}

// cancel drops the will pending for cl's ID if it is cl's.
func (w *delayedWillsMap) cancel(cl *Client) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if d, ok := w.m[cl.ID]; ok && d.cl == cl {
		delete(w.m, cl.ID)
		return true
	}
	return false
}

// pending reports whether the will pending for cl's ID is cl's.
func (w *delayedWillsMap) pending(cl *Client) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	d, ok := w.m[cl.ID]
	return ok && d.cl == cl
}

// expedite makes the will pending for cl's ID due now if it is cl's.
func (w *delayedWillsMap) expedite(cl *Client) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if d, ok := w.m[cl.ID]; ok && d.cl == cl {
		d.pk.Expiry = 0
		w.m[cl.ID] = d
		return true
	}
	return false
}

// due removes and returns the wills whose delay ended before now (unix
// seconds), as upstream compared.
func (w *delayedWillsMap) due(now int64) []delayedWill {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []delayedWill
	for id, d := range w.m {
		if now > d.pk.Expiry {
			out = append(out, d)
			delete(w.m, id)
		}
	}
	return out
}

// CancelDelayedWill drops cl's will if it is waiting for its Will Delay
// Interval, so it is never published (nor retained); it reports whether
// there was one. An auth hook calls it when the client's access is
// revoked after the client has gone.
func (s *Server) CancelDelayedWill(cl *Client) bool {
	return s.loop.willDelayed.cancel(cl)
}

// DelayedWillPending reports whether cl's own will waits for its Will
// Delay Interval: false once it has been sent or cancelled, and once Mochi
// dropped it because the session was resumed or its client ID reused
// (then the will waiting under that ID, if any, is another client's). An
// auth hook keeps its state for a gone client only while this holds.
func (s *Server) DelayedWillPending(cl *Client) bool {
	return s.loop.willDelayed.pending(cl)
}

// willDelay is how long cl's will waits: its Will Delay Interval, but no
// longer than its session lasts (MQTT 5 §3.1.3.2.2: the will is published
// when the delay has passed or the session has ended, whichever is first).
// Upstream applied the session expiry only when the client sent one, so
// the will of a session that ended with its connection still waited, for
// up to 2^32 seconds, in a map that grew with every such client ID.
func willDelay(cl *Client) uint32 {
	return min(cl.Properties.Will.WillDelayInterval, cl.Properties.Props.SessionExpiryInterval)
}

// ExpediteDelayedWill makes cl's will, if it waits for its Will Delay
// Interval, due at the next tick: cl's session has ended (an auth hook
// ended it), and a will is published when its session ends if its delay
// has not passed before. It is still put to the hooks (OnWill) when sent.
func (s *Server) ExpediteDelayedWill(cl *Client) bool {
	return s.loop.willDelayed.expedite(cl)
}

// willOf is the will a delayed will packet publishes, as hooks see it.
func willOf(pk packets.Packet) Will {
	return Will{
		Payload:           pk.Payload,
		User:              pk.Properties.User,
		TopicName:         pk.TopicName,
		Flag:              1,
		WillDelayInterval: pk.Connect.WillProperties.WillDelayInterval,
		Qos:               pk.FixedHeader.Qos,
		Retain:            pk.FixedHeader.Retain,
	}
}

// DropInflights removes the client's in-flight and queued messages for
// which drop returns true, as ClearInflights removes them all (OnQosDropped
// is called for each); it returns how many were removed. An auth hook
// calls it for an offline session whose read permission was withdrawn.
func (s *Server) DropInflights(cl *Client, drop func(pk packets.Packet) bool) int {
	n := 0
	for _, pk := range cl.State.Inflight.GetAll(false) {
		if drop(pk) && cl.State.Inflight.Delete(pk.PacketID) {
			atomic.AddInt64(&s.Info.Inflight, -1)
			s.hooks.OnQosDropped(cl, pk)
			n++
		}
	}
	return n
}

// unreadable reports whether pk is a message cl may no longer receive: a
// PUBLISH whose topic the ACL hooks now deny for reading. Stored messages
// keep their topic (an outbound topic alias is applied only to the copy
// written, in publishToClient); one without a topic is refused.
func (s *Server) unreadable(cl *Client, pk packets.Packet) bool {
	if pk.FixedHeader.Type != packets.Publish {
		return false
	}
	return pk.TopicName == "" || !s.hooks.OnACLCheck(cl, pk.TopicName, false)
}

// dropUnreadableInflights checks a resumed session's messages against the
// ACL before they are resent: they were checked when queued, and the
// client's read permission may have been withdrawn since.
func (s *Server) dropUnreadableInflights(cl *Client) {
	s.DropInflights(cl, func(pk packets.Packet) bool { return s.unreadable(cl, pk) })
}

// nextReadableImmediate is Inflight.NextImmediate, dropping the queued
// messages cl may no longer read (see dropUnreadableInflights).
func (s *Server) nextReadableImmediate(cl *Client) (packets.Packet, bool) {
	for _, pk := range cl.State.Inflight.GetAll(true) {
		if !s.unreadable(cl, pk) {
			return pk, true
		}
		if cl.State.Inflight.Delete(pk.PacketID) {
			atomic.AddInt64(&s.Info.Inflight, -1)
			s.hooks.OnQosDropped(cl, pk)
		}
	}
	return packets.Packet{}, false
}
