package authhook_test

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/internal/poll"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// sample returns the value of the series name{labels} (label pairs as
// "k", "v", ...) in g: a counter's or gauge's value, 0 when absent.
func sample(t testing.TB, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabels(m, labels) {
				switch {
				case m.Counter != nil:
					return m.GetCounter().GetValue()
				case m.Gauge != nil:
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return 0
}

func hasLabels(m *dto.Metric, kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == kv[i] && l.GetValue() == kv[i+1] }) {
			return false
		}
	}
	return true
}

// exposition renders g in the text format Prometheus scrapes.
func exposition(t testing.TB, g prometheus.Gatherer) string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.String()
}

// TestMetricsCountAnMQTTSession drives a real broker with real clients
// (accepted, refused for each reason the session can provoke, denied
// publishes on both decision paths, denied subscriptions with and without
// wildcards, a denied delivery) and checks that every counter moved by
// exactly what happened, and that no username, client ID or topic shows
// up in the metrics.
func TestMetricsCountAnMQTTSession(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := authhook.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.OpenBolt(t)
	registrar := newRegistry(t, st)
	n := startNode(t, nodeOpts{store: st, tweak: func(o *authhook.Options) {
		o.Metrics, o.Registry, o.MaxFailuresPerUser, o.Backoff = m, registrar, 2, time.Minute
	}})
	addUser(t, n.st, "alice-metrics", "alice-secret-1", []acl.Permission{perm("granted/#", acl.OpReadWrite)}, nil)
	addUser(t, n.st, "bob-metrics", "bob-secret-123", nil, nil)
	addUser(t, n.st, "sus-metrics", "sus-secret-123", nil, func(u *store.User) { u.Suspended = true })
	refused := func(reason string) float64 {
		return sample(t, reg, "warden_mqtt_connects_refused_total", "reason", reason)
	}
	cache := func(c, result string) float64 {
		return sample(t, reg, "warden_mqtt_auth_cache_total", "cache", c, "result", result)
	}
	denied := func(kind string) float64 {
		return sample(t, reg, "warden_mqtt_acl_denials_total", "kind", kind)
	}
	active := func() float64 { return sample(t, reg, "warden_mqtt_active_clients") }

	// Accepted: the first connect loads the user and hashes; the second
	// finds both in the caches.
	v5 := n.mustConnect(t, connectOpts{version: 5, clientID: "client-v5-metrics", username: "alice-metrics", password: "alice-secret-1", clean: true})
	v3 := n.mustConnect(t, connectOpts{version: 4, clientID: "client-v3-metrics", username: "alice-metrics", password: "alice-secret-1", clean: true})
	poll.Until(t, 5*time.Second, "2 accepted, 2 active", func() bool {
		return sample(t, reg, "warden_mqtt_connects_accepted_total") == 2 && active() == 2
	})
	for _, c := range []struct {
		cache, result string
		want          float64
	}{{"user", "miss", 1}, {"user", "hit", 1}, {"password", "miss", 1}, {"password", "hit", 1}} {
		if got := cache(c.cache, c.result); got != c.want {
			t.Errorf("auth cache %s %s = %v, want %v", c.cache, c.result, got, c.want)
		}
	}

	// Refused: two wrong passwords (the user limit), then the right one
	// while blocked; a suspended user; an unknown user while the registry
	// is open (recorded, pending).
	for i := range 2 {
		if _, code := n.connect(t, connectOpts{clientID: "bob-wrong", username: "bob-metrics", password: "wrong-password", clean: true}); code != 0x86 {
			t.Fatalf("wrong password %d: CONNACK 0x%02x, want 0x86", i, code)
		}
	}
	if _, code := n.connect(t, connectOpts{clientID: "bob-right", username: "bob-metrics", password: "bob-secret-123", clean: true}); code != 0x86 {
		t.Fatalf("blocked: CONNACK 0x%02x, want 0x86", code)
	}
	if _, code := n.connect(t, connectOpts{version: 4, clientID: "bob-right-v3", username: "bob-metrics", password: "bob-secret-123", clean: true}); code != 4 {
		t.Fatalf("blocked, MQTT 3.1.1: CONNACK %d, want 4", code)
	}
	if _, code := n.connect(t, connectOpts{clientID: "sus", username: "sus-metrics", password: "sus-secret-123", clean: true}); code != 0x86 {
		t.Fatalf("suspended: CONNACK 0x%02x, want 0x86", code)
	}
	if _, err := registrar.Open(context.Background(), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, code := n.connect(t, connectOpts{clientID: "newdev", username: "new-device-metrics", password: "device-secret-1", clean: true}); code != 0x87 {
		t.Fatalf("registration pending: CONNACK 0x%02x, want 0x87", code)
	}
	for reason, want := range map[string]float64{
		"bad_credentials": 3, "blocked": 2, "not_authorized": 0, "registration_pending": 1,
		"unavailable": 0, "busy": 0, "client_id_in_use": 0, "address_blocked": 0,
	} {
		if got := refused(reason); got != want {
			t.Errorf("refused %s = %v, want %v", reason, got, want)
		}
	}

	// Publishes: MQTT 5 without a prefix is refused by OnACLCheck (PUBACK
	// 0x87), MQTT 3.1.1 in OnPublish (acked and dropped).
	v5.publish("forbidden/v5", 1, "x", 0)
	if ack := v5.expect(packets.Puback, 3*time.Second); ack.ReasonCode != 0x87 {
		t.Fatalf("v5 denied publish: PUBACK 0x%02x", ack.ReasonCode)
	}
	v3.publish("forbidden/v3", 1, "x", 0)
	v3.expect(packets.Puback, 3*time.Second)
	// Subscriptions: a wildcard filter and an exact one, both refused; the
	// granted one is not counted.
	if codes := v5.subscribe("forbidden/#", "forbidden/exact", "granted/#"); !bytes.Equal(codes, []byte{0x87, 0x87, 1}) {
		t.Fatalf("SUBACK %x, want 87 87 01", codes)
	}
	// A delivery: Mochi asks the hook once per subscriber copy, as here.
	cl, ok := n.broker.Server().Clients.Get("client-v5-metrics")
	if !ok {
		t.Fatal("client-v5-metrics not in the broker")
	}
	if n.hook.OnACLCheck(cl, "forbidden/delivery", false) {
		t.Fatal("delivery outside the permissions allowed")
	}
	if !n.hook.OnACLCheck(cl, "granted/delivery", false) {
		t.Fatal("granted delivery refused")
	}
	for kind, want := range map[string]float64{"publish": 2, "subscribe": 2, "delivery": 1} {
		if got := denied(kind); got != want {
			t.Errorf("ACL denials %s = %v, want %v", kind, got, want)
		}
	}

	// Disconnects bring the gauge back down.
	_ = v5.c.Close()
	_ = v3.c.Close()
	poll.Until(t, 5*time.Second, "active clients back to 0", func() bool { return active() == 0 })

	text := exposition(t, reg)
	for _, secret := range []string{"alice", "bob", "sus-metrics", "new-device", "client-v", "forbidden", "granted", "secret"} {
		if strings.Contains(text, secret) {
			t.Errorf("metrics mention %q:\n%s", secret, text)
		}
	}
}

// TestACLDenialCountsWithoutAllocating: the hot path stays allocation-free
// with metrics on, denials included, and each denial is counted once.
func TestACLDenialCountsWithoutAllocating(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := authhook.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.OpenBolt(t)
	quiet := slog.New(slog.DiscardHandler)
	h, err := authhook.New(context.Background(), authhook.Options{Store: st, Logger: quiet, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	srv := mqtt.New(&mqtt.Options{Logger: quiet})
	if err := srv.AddHook(h, nil); err != nil {
		t.Fatal(err)
	}
	h.Attach(srv)
	t.Cleanup(func() { _ = h.Stop() })
	addUser(t, st, "dev", "dev-secret-123", []acl.Permission{perm("a/#", acl.OpRead)}, nil)
	cl := fakeConnect(t, h, srv, "c1", "dev", "dev-secret-123")
	for _, c := range []struct {
		name, topic string
		kind        string
	}{
		{"delivery", "b/c", "delivery"},
		{"subscribe", "b/#", "subscribe"},
	} {
		before := sample(t, reg, "warden_mqtt_acl_denials_total", "kind", c.kind)
		allocs := testing.AllocsPerRun(100, func() {
			if h.OnACLCheck(cl, c.topic, false) {
				t.Fatalf("%s allowed", c.topic)
			}
		})
		if allocs != 0 {
			t.Errorf("%s denial: %v allocs per check, want 0", c.name, allocs)
		}
		// AllocsPerRun runs the function once more to warm up.
		if got := sample(t, reg, "warden_mqtt_acl_denials_total", "kind", c.kind) - before; got != 101 {
			t.Errorf("%s denials counted %v, want 101", c.name, got)
		}
	}
	if got := testing.AllocsPerRun(100, func() { h.OnACLCheck(cl, "a/b", false) }); got != 0 {
		t.Errorf("allowed delivery: %v allocs per check, want 0", got)
	}
}
