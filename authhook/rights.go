package authhook

import (
	"context"
	"errors"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/store"
)

// A broker that asks warden at every PUBLISH and SUBSCRIBE over a webhook
// (VerneMQ's vmq_webhooks, EMQX's HTTP authorizer) names the client by
// username and client ID; Rights answers with what the embedded broker's
// hook would allow that client: the same permissions, placeholders bound
// the same way, the same publish prefix and coverage rule.

// Rights is what a client of another broker, connected as a user with a
// client ID, may do now.
type Rights struct {
	UserID   string
	Username string
	// Prefix is the user's mqttPublishPrefix ("" when none): Publish
	// prepends it.
	Prefix string
	bound  *acl.Bound
	h      *Hook
}

// Rights returns the current rights of username connected with clientID,
// from the cache the change feed keeps current (or the store). A deleted,
// unknown or suspended user gets a *Refusal (RefusedNotAuthorized; a store
// failure RefusedUnavailable): the broker asks for a client warden may
// already have disconnected there.
func (h *Hook) Rights(ctx context.Context, username, clientID string) (*Rights, error) {
	name := credential.NormalizeUsername(username)
	e := h.model.cached(name)
	h.opts.Metrics.cacheLookup(cacheUser, e != nil)
	if e == nil {
		var err error
		e, err = h.model.load(ctx, name, h.epoch.Load())
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil, &Refusal{Code: RefusedNotAuthorized, Reason: "unknown user"}
		case errors.Is(err, errBrokenModel):
			return nil, &Refusal{Code: RefusedNotAuthorized, Reason: "broken permissions"}
		case err != nil:
			return nil, &Refusal{Code: RefusedUnavailable, Reason: "store unavailable"}
		}
	}
	if e.user.Suspended {
		return nil, &Refusal{Code: RefusedNotAuthorized, Reason: "user suspended"}
	}
	return &Rights{UserID: e.user.ID, Username: name, Prefix: e.user.MQTTPublishPrefix,
		bound: e.matcher.Bind(name, clientID), h: h}, nil
}

// Publish returns the topic a PUBLISH to topic goes to (the publish prefix
// applied) and whether the client may publish there, as the embedded
// broker's OnPublish decides.
func (r *Rights) Publish(topic string) (string, bool) {
	topic, ok := r.h.PublishTopic(r.Prefix, r.bound, topic)
	if !ok {
		r.h.opts.Metrics.publishDenied()
	}
	return topic, ok
}

// Subscribe reports whether the client may subscribe to filter: its
// permissions cover every topic the filter matches (the embedded broker's
// rule for SUBSCRIBE).
func (r *Rights) Subscribe(filter string) bool {
	if !r.bound.Covers(filter) {
		r.h.deny(nil, filter, aclSubscribe)
		return false
	}
	return true
}

// Read reports whether a message on topic may be delivered to the client.
func (r *Rights) Read(topic string) bool {
	return r.bound.Allows(topic, acl.OpRead)
}
