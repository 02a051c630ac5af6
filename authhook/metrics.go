package authhook

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/telemetry"
)

// Metrics are the hook's Prometheus metrics (docs/metrics.md). Every label
// value comes from a fixed set: never a username, client ID or topic,
// which would make the number of series unbounded and leak identities.
//
// Each series is resolved once in NewMetrics, so recording one is an
// atomic add: no lock, no map lookup, no allocation on the ACL path.
type Metrics struct {
	accepted prometheus.Counter
	refused  [refusalKinds]prometheus.Counter
	denied   [aclKinds]prometheus.Counter
	active   prometheus.Gauge
	cache    [2][2]prometheus.Counter // [cacheUser|cachePassword][miss|hit]
}

// Reasons a CONNECT is refused, as the "reason" label names them; indexed
// by refusal.
var refusalReasons = [refusalKinds]string{
	refuseBadCredentials: "bad_credentials",
	refuseNotAuthorized:  "not_authorized",
	refuseUnavailable:    "unavailable",
	refuseBusy:           "busy",
	refuseClientID:       "client_id_in_use",
	refuseBlocked:        "blocked",
	refusePending:        "registration_pending",
	refuseAddress:        "address_blocked",
	refuseTopic:          "topic_invalid",
}

// Kinds of ACL denial ("kind" label).
const (
	aclPublish = iota
	aclSubscribe
	aclDelivery
	aclKinds
)

var aclKindNames = [aclKinds]string{aclPublish: "publish", aclSubscribe: "subscribe", aclDelivery: "delivery"}

// Caches whose hits are counted ("cache" label).
const (
	cacheUser     = 0 // users and compiled permissions: a hit costs no store call
	cachePassword = 1 // successful password verifications: a hit costs no argon2id
)

// NewMetrics creates the hook's metrics and registers them with reg. Give
// the result to every Hook that should count into it (Options.Metrics);
// registering on a registry that already has them reuses those, so two
// hooks on one registry add up.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	accepted, err := telemetry.RegisterCollector(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "warden_mqtt_connects_accepted_total",
		Help: "MQTT CONNECTs accepted (CONNACK success sent).",
	}))
	if err != nil {
		return nil, err
	}
	refused, err := telemetry.RegisterCollector(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "warden_mqtt_connects_refused_total",
		Help: "MQTT CONNECTs refused by the auth hook, by reason.",
	}, []string{"reason"}))
	if err != nil {
		return nil, err
	}
	denials, err := telemetry.RegisterCollector(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "warden_mqtt_acl_denials_total",
		Help: "MQTT operations refused by the permission check, by kind (publish, subscribe, delivery).",
	}, []string{"kind"}))
	if err != nil {
		return nil, err
	}
	active, err := telemetry.RegisterCollector(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "warden_mqtt_active_clients",
		Help: "MQTT clients connected now (CONNACK sent, not yet disconnected).",
	}))
	if err != nil {
		return nil, err
	}
	cache, err := telemetry.RegisterCollector(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "warden_mqtt_auth_cache_total",
		Help: "CONNECT-time cache lookups, by cache (user: user record and compiled permissions; password: verified passwords) and result (hit, miss).",
	}, []string{"cache", "result"}))
	if err != nil {
		return nil, err
	}
	m := &Metrics{accepted: accepted, active: active}
	for r, reason := range refusalReasons {
		m.refused[r] = refused.WithLabelValues(reason)
	}
	for k, kind := range aclKindNames {
		m.denied[k] = denials.WithLabelValues(kind)
	}
	for c, name := range []string{cacheUser: "user", cachePassword: "password"} {
		m.cache[c][0] = cache.WithLabelValues(name, "miss")
		m.cache[c][1] = cache.WithLabelValues(name, "hit")
	}
	return m, nil
}

// The recording methods accept a nil *Metrics (metrics off), so call sites
// stay one line.

func (m *Metrics) connectAccepted() {
	if m != nil {
		m.accepted.Inc()
		m.active.Inc()
	}
}

func (m *Metrics) disconnected() {
	if m != nil {
		m.active.Dec()
	}
}

func (m *Metrics) connectRefused(r refusalKind) {
	if m != nil && r >= 0 && r < refusalKinds {
		m.refused[r].Inc()
	}
}

func (m *Metrics) publishDenied() {
	if m != nil {
		m.denied[aclPublish].Inc()
	}
}

func (m *Metrics) cacheLookup(cache int, hit bool) {
	if m == nil {
		return
	}
	if hit {
		m.cache[cache][1].Inc()
	} else {
		m.cache[cache][0].Inc()
	}
}

// deny counts a refused OnACLCheck of the given kind and returns false.
// OnACLCheck knows publish and wildcard-filter checks from its own branch;
// Mochi asks with write=false both for a SUBSCRIBE filter and for a
// delivery, so an exact topic counts as a subscription only while that
// client's SUBSCRIBE is being processed (OnSubscribe stashed its filters).
// c is the client's connection, nil if unknown.
func (h *Hook) deny(c *conn, topic string, kind int) bool {
	m := h.opts.Metrics
	if m == nil {
		return false
	}
	if kind == aclDelivery && c != nil {
		if subs := c.subscribing.Load(); subs != nil {
			for _, s := range *subs {
				if s.Filter == topic {
					kind = aclSubscribe
					break
				}
			}
		}
	}
	m.denied[kind].Inc()
	return false
}

// aclKind classifies a check OnACLCheck refuses before it reaches its
// own branches (unknown client or no session).
func aclKind(topic string, write bool) int {
	switch {
	case write:
		return aclPublish
	case acl.IsFilter(topic):
		return aclSubscribe
	}
	return aclDelivery
}

// OnSubscribe notes the filters of a SUBSCRIBE being processed, so that
// a denial of an exact filter counts as a subscribe denial, not a
// delivery one. Provided only when metrics are on.
func (h *Hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if c := h.lookup(cl); c != nil {
		filters := pk.Filters
		c.subscribing.Store(&filters)
	}
	return pk
}

// OnSubscribed ends what OnSubscribe began.
func (h *Hook) OnSubscribed(cl *mqtt.Client, _ packets.Packet, _ []byte) {
	if c := h.lookup(cl); c != nil {
		c.subscribing.Store(nil)
	}
}
