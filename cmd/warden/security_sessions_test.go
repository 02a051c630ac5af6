package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// sessWarden is a running warden with one MQTT user, "flood", allowed to
// read and write flood/#.
type sessWarden struct {
	p        *process
	mqttAddr string
	password string
}

func startSessWarden(t *testing.T, bin string, env ...string) *sessWarden {
	t.Helper()
	adminPW := validPassword(t)
	p := startWarden(t, bin, append(env, "WARDEN_DATA_DIR="+filepath.Join(t.TempDir(), "data"), "WARDEN_ADMIN_PASSWORD="+adminPW)...)
	p.waitFor("warden ready")
	out := p.out.String()
	httpAddr := strings.Replace(listenAddr(t, out, "http"), "[::]", "127.0.0.1", 1)
	mqttAddr := strings.Replace(listenAddr(t, out, "mqtt"), "[::]", "127.0.0.1", 1)

	var login struct{ Token string }
	apiCall(t, httpAddr, "POST", "/api/login", "", map[string]string{"username": "admin", "password": adminPW}, &login, 200)
	var role struct{ ID string }
	apiCall(t, httpAddr, "POST", "/api/roles", login.Token, map[string]any{"name": "flooders", "isShared": true,
		"permissions": []map[string]string{{"resource": "flood/#", "operation": "readWrite", "context": "mqtt"}}}, &role, 201)
	pw := validPassword(t)
	apiCall(t, httpAddr, "POST", "/api/users", login.Token, map[string]any{"username": "flood", "password": pw, "roles": []string{role.ID}}, nil, 201)
	return &sessWarden{p: p, mqttAddr: mqttAddr, password: pw}
}

// sessConnect connects an MQTT 5 client as "flood". expiry is its Session
// Expiry Interval; cleanStart false resumes a session.
func (w *sessWarden) sessConnect(t *testing.T, id string, cleanStart bool, expiry uint32) (*paho.Client, *paho.Connack, chan *paho.Publish) {
	t.Helper()
	c, ca, msgs, err := w.sessDial(t, id, cleanStart, expiry)
	if err != nil {
		t.Fatal(err)
	}
	return c, ca, msgs
}

// sessDial is sessConnect for other goroutines than the test's: it
// returns its error.
func (w *sessWarden) sessDial(t *testing.T, id string, cleanStart bool, expiry uint32) (*paho.Client, *paho.Connack, chan *paho.Publish, error) {
	conn, err := net.DialTimeout("tcp", w.mqttAddr, 5*time.Second)
	if err != nil {
		return nil, nil, nil, err
	}
	t.Cleanup(func() { _ = conn.Close() })
	msgs := make(chan *paho.Publish, 256)
	c := paho.NewClient(paho.ClientConfig{Conn: conn, PacketTimeout: time.Minute, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(pr paho.PublishReceived) (bool, error) {
			select {
			case msgs <- pr.Packet:
			default:
			}
			return true, nil
		},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: id, KeepAlive: 60, CleanStart: cleanStart,
		Username: "flood", UsernameFlag: true, Password: []byte(w.password), PasswordFlag: true,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}})
	if err != nil || ca.ReasonCode != 0 {
		_ = conn.Close()
		return nil, nil, nil, fmt.Errorf("%s: connect: %v (%+v)", id, err, ca)
	}
	return c, ca, msgs, nil
}

// TestOfflineSessionFlood: one authenticated user opens 1,000 persistent
// sessions with the longest session expiry MQTT 5 allows, each subscribed
// to its topics, leaves them offline and publishes 50 QoS 1 messages of
// 4 KiB, which the broker queues for every offline session. Only
// --mqtt-max-offline-sessions (10) sessions survive, so the broker holds
// 10 × 50 messages instead of 1,000 × 50 (200 MiB).
//
// Before: WARDEN_TEST_BIN=/work/before/warden go test -run TestOfflineSessionFlood -v ./cmd/warden
// After:  go test -run TestOfflineSessionFlood -v ./cmd/warden
func TestOfflineSessionFlood(t *testing.T) {
	w := startSessWarden(t, buildWarden(t))
	const sessions, messages, size = 1000, 50, 4 << 10
	// Warm the verified-password cache: one argon2id verification, then
	// every CONNECT is answered from memory.
	c, _, _ := w.sessConnect(t, "warm", true, 0)
	_ = c.Disconnect(&paho.Disconnect{})
	base := rssMiB(t, w.p.pid())

	forever := uint32(0xFFFFFFFF)
	ids := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ids {
				c, _, _, err := w.sessDial(t, fmt.Sprint("s-", i), true, forever)
				if err != nil {
					t.Error(err)
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "flood/#", QoS: 1}}}); err != nil {
					t.Errorf("s-%d: subscribe: %v", i, err)
				}
				cancel()
				_ = c.Disconnect(&paho.Disconnect{})
			}
		}()
	}
	start := time.Now()
	for i := range sessions {
		ids <- i
	}
	close(ids)
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("%d sessions opened and left offline in %v", sessions, time.Since(start))

	pub, _, _ := w.sessConnect(t, "publisher", true, 0)
	payload := []byte(strings.Repeat("x", size))
	start = time.Now()
	for i := range messages {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if _, err := pub.Publish(ctx, &paho.Publish{Topic: fmt.Sprint("flood/", i), QoS: 1, Payload: payload}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		cancel()
	}
	t.Logf("%d messages of %d bytes published in %v", messages, size, time.Since(start))
	after := rssMiB(t, w.p.pid())
	t.Logf("RSS %.1f MiB before the sessions, %.1f MiB after the messages: %+.1f MiB", base, after, after-base)

	// Count the sessions that survived: resume each with expiry 0, so the
	// check itself leaves no new offline session behind.
	var present atomic.Int32
	ids = make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ids {
				c, ca, _, err := w.sessDial(t, fmt.Sprint("s-", i), false, 0)
				if err != nil {
					t.Error(err)
					continue
				}
				if ca.SessionPresent {
					present.Add(1)
				}
				_ = c.Disconnect(&paho.Disconnect{})
			}
		}()
	}
	for i := range sessions {
		ids <- i
	}
	close(ids)
	wg.Wait()
	t.Logf("%d of %d offline sessions survived", present.Load(), sessions)
	if n := present.Load(); n != 10 {
		t.Errorf("%d offline sessions of one user survived, want 10 (--mqtt-max-offline-sessions)", n)
	}
	// 10 sessions × 50 messages × 4 KiB is 2 MiB; the 1,000 sessions'
	// copies would be 200 MiB. The bound leaves room for the Go runtime
	// and 1,000 connections' worth of garbage.
	if growth := after - base; growth > 64 {
		t.Errorf("RSS grew by %.1f MiB, want under 64 MiB", growth)
	}
}

// TestDeepRetainedTopic: an authenticated client publishes a retained
// message on a 16,000-level topic (32 KB, inside its permission flood/#).
// It is refused with PUBACK 0x90 before Mochi's topic index sees it, and
// the broker keeps serving: a SUBSCRIBE, which needs the index's lock,
// sent while such publishes arrive, is answered.
//
// Before: WARDEN_TEST_BIN=/work/before/warden go test -run TestDeepRetainedTopic -v ./cmd/warden
// After:  go test -run TestDeepRetainedTopic -v ./cmd/warden
func TestDeepRetainedTopic(t *testing.T) {
	t.Parallel()
	w := startSessWarden(t, buildWarden(t))
	deep := "flood/" + strings.Repeat("a/", 15_998) + "a"
	attacker, _, _ := w.sessConnect(t, "attacker", true, 0)
	other, _, msgs := w.sessConnect(t, "other", true, 0)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Three land first, as QoS 0: no ack to wait for; meanwhile another
	// client subscribes, which takes the index's lock.
	for range 3 {
		if _, err := attacker.Publish(ctx, &paho.Publish{Topic: deep, QoS: 0, Retain: true, Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	subscribed := make(chan error, 1)
	go func() {
		start := time.Now()
		_, err := other.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "flood/#", QoS: 1}}})
		t.Logf("another client's SUBSCRIBE, sent meanwhile, answered in %v", time.Since(start))
		subscribed <- err
	}()
	start := time.Now()
	pr, err := attacker.Publish(ctx, &paho.Publish{Topic: deep, QoS: 1, Retain: true, Payload: []byte("x")})
	t.Logf("16,000-level retained QoS 1 publish answered in %v", time.Since(start))
	if pr == nil || pr.ReasonCode != 0x90 {
		t.Errorf("16,000-level retained publish: PUBACK %+v (%v), want reason 0x90 (topic name invalid)", pr, err)
	}
	if err := <-subscribed; err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if _, err := attacker.Publish(ctx, &paho.Publish{Topic: "flood/ok", QoS: 1, Payload: []byte("ok")}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	for {
		select {
		case m := <-msgs:
			if m.Topic != "flood/ok" {
				t.Fatalf("received a retained message on a %d-byte topic", len(m.Topic))
			}
			return
		case <-ctx.Done():
			t.Fatal("no delivery after the deep publishes")
		}
	}
}

// TestSessionLimitFlagsValidated: the session and topic limits refuse
// values that would turn them off or that Mochi cannot hold.
func TestSessionLimitFlagsValidated(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		change func(*Config)
		want   string
	}{
		"a session expiry under a second": {func(c *Config) { c.MQTTMaxSessionExpiry = 500 * time.Millisecond }, "--mqtt-max-session-expiry (WARDEN_MQTT_MAX_SESSION_EXPIRY)"},
		"a session expiry past 2^32 s":    {func(c *Config) { c.MQTTMaxSessionExpiry = 1 << 32 * time.Second }, "--mqtt-max-session-expiry"},
		"no offline session":              {func(c *Config) { c.MQTTMaxOfflineSessions = 0 }, "--mqtt-max-offline-sessions (WARDEN_MQTT_MAX_OFFLINE_SESSIONS)"},
		"no queued message":               {func(c *Config) { c.MQTTMaxQueuedMessages = 0 }, "--mqtt-max-queued-messages"},
		"more queued messages than IDs":   {func(c *Config) { c.MQTTMaxQueuedMessages = 65536 }, "--mqtt-max-queued-messages"},
		"no topic level":                  {func(c *Config) { c.MQTTMaxTopicLevels = 0 }, "--mqtt-max-topic-levels"},
		"a topic longer than MQTT allows": {func(c *Config) { c.MQTTMaxTopicLength = 65536 }, "--mqtt-max-topic-length"},
	} {
		t.Run(name, func(t *testing.T) {
			c := defaultConfig()
			tc.change(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %s", err, tc.want)
			}
		})
	}
	c := defaultConfig()
	c.MQTTMaxSessionExpiry, c.MQTTMaxQueuedMessages, c.MQTTMaxTopicLevels, c.MQTTMaxTopicLength = time.Second, 65535, 65535, 65535
	if err := c.Validate(); err != nil {
		t.Fatalf("the extreme valid values were refused: %v", err)
	}
}

// TestSessionLimitFlagsReachTheBroker: each limit set by its environment
// variable is the one the broker applies.
func TestSessionLimitFlagsReachTheBroker(t *testing.T) {
	t.Parallel()
	w := startSessWarden(t, buildWarden(t), "WARDEN_MQTT_MAX_SESSION_EXPIRY=1m", "WARDEN_MQTT_MAX_OFFLINE_SESSIONS=2",
		"WARDEN_MQTT_MAX_QUEUED_MESSAGES=5", "WARDEN_MQTT_MAX_TOPIC_LEVELS=3", "WARDEN_MQTT_MAX_TOPIC_LENGTH=20")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	forever := uint32(0xFFFFFFFF)
	c, ca, _ := w.sessConnect(t, "greedy", true, forever)
	if ca.Properties == nil || ca.Properties.SessionExpiryInterval == nil || *ca.Properties.SessionExpiryInterval != 60 {
		t.Errorf("CONNACK session expiry %+v, want 60 (1m)", ca.Properties)
	}
	for topic, want := range map[string]byte{"flood/a/b": 0, "flood/a/b/c": 0x90, "flood/" + strings.Repeat("x", 15): 0x90} {
		pr, _ := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("x")})
		if pr == nil || pr.ReasonCode != want {
			t.Errorf("publish on %q: PUBACK %+v, want 0x%02x", topic, pr, want)
		}
	}
	for i := range 3 {
		s, _, _ := w.sessConnect(t, fmt.Sprint("off-", i), true, forever)
		if _, err := s.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "flood/#", QoS: 1}}}); err != nil {
			t.Fatal(err)
		}
		_ = s.Disconnect(&paho.Disconnect{})
	}
	for i := range 10 {
		if _, err := c.Publish(ctx, &paho.Publish{Topic: "flood/q", QoS: 1, Payload: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	present := 0
	for i := range 3 {
		s, ca, msgs := w.sessConnect(t, fmt.Sprint("off-", i), false, 0)
		if !ca.SessionPresent {
			continue
		}
		present++
		n := 0
		for done := false; !done; {
			select {
			case <-msgs:
				n++
			case <-time.After(500 * time.Millisecond):
				done = true
			}
		}
		if n != 5 {
			t.Errorf("off-%d: %d queued messages delivered, want 5 (--mqtt-max-queued-messages)", i, n)
		}
		_ = s.Disconnect(&paho.Disconnect{})
	}
	if present != 2 {
		t.Errorf("%d of 3 offline sessions kept, want 2 (--mqtt-max-offline-sessions)", present)
	}
}
