package authhook_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/redis/go-redis/v9"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/internal/poll"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// twoRedisNodes starts redis-server and two warden nodes, each with its
// own Store instance on it, as two replicas of a deployment.
func twoRedisNodes(t testing.TB) (a, b *node, r *storetest.Redis) {
	t.Helper()
	r = storetest.StartRedis(t)
	a = startNode(t, nodeOpts{store: storetest.OpenRedis(t, storetest.URL(r.URL))})
	b = startNode(t, nodeOpts{store: storetest.OpenRedis(t, storetest.URL(r.URL))})
	return a, b, r
}

// TestRedisDeleteOnOtherNode: deleting a user through one node's store
// disconnects its device on the other node within 1 s.
func TestRedisDeleteOnOtherNode(t *testing.T) {
	a, b, _ := twoRedisNodes(t)
	u := addUser(t, a.st, "dev", "dev-secret-123", []acl.Permission{perm("dev/#", acl.OpReadWrite)}, nil)
	addUser(t, a.st, "other", "other-secret-1", []acl.Permission{perm("other/#", acl.OpReadWrite)}, nil)
	dev := b.mustConnect(t, connectOpts{username: "dev", password: "dev-secret-123", clientID: "dev", clean: true})
	other := b.mustConnect(t, connectOpts{username: "other", password: "other-secret-1", clientID: "other", clean: true})
	if err := dev.ping(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := a.st.DeleteUser(context.Background(), u.ID); err != nil {
		t.Fatal(err)
	}
	if !dev.closed(time.Second) {
		t.Fatal("device of a user deleted on node A still connected to node B after 1 s")
	}
	t.Logf("disconnected on node B %v after the delete on node A", time.Since(start))
	if err := other.ping(); err != nil {
		t.Fatalf("another user's device on node B was disconnected: %v", err)
	}
	// Neither node lets it back in.
	for name, n := range map[string]*node{"A": a, "B": b} {
		if _, code := n.connect(t, connectOpts{username: "dev", password: "dev-secret-123", clientID: "dev-again", clean: true}); code != 0x86 {
			t.Fatalf("node %s: deleted user reconnects: CONNACK 0x%02x, want 0x86", name, code)
		}
	}
}

// TestRedisRoleChangeOnOtherNode: removing a read permission through node
// A's store stops deliveries to an existing subscription on node B.
func TestRedisRoleChangeOnOtherNode(t *testing.T) {
	a, b, _ := twoRedisNodes(t)
	ctx := context.Background()
	u := addUser(t, a.st, "dev", "dev-secret-123", []acl.Permission{perm("data/#", acl.OpRead), perm("other/#", acl.OpRead)}, nil)
	addUser(t, a.st, "w", "writer-secret1", []acl.Permission{perm("#", acl.OpWrite)}, nil)
	w := b.mustConnect(t, connectOpts{username: "w", password: "writer-secret1", clientID: "w", clean: true})
	dev := b.mustConnect(t, connectOpts{username: "dev", password: "dev-secret-123", clientID: "dev", clean: true})
	if codes := dev.subscribe("data/#", "other/#"); codes[0] > 2 || codes[1] > 2 {
		t.Fatalf("subscribe: SUBACK %x", codes)
	}
	w.publish("data/1", 0, "before", 0)
	if got := dev.expect(packets.Publish, 3*time.Second); string(got.Payload) != "before" {
		t.Fatalf("delivered %q", got.Payload)
	}

	start := time.Now()
	if _, err := a.st.UpdateRole(ctx, u.Roles[0], func(r *store.Role) error {
		r.Permissions = []acl.Permission{perm("other/#", acl.OpRead)}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Probe until a publish on data/ is no longer delivered; that must
	// happen within 2 s of the change.
	deadline := start.Add(2 * time.Second)
	for i := 0; ; i++ {
		if time.Now().After(deadline) {
			t.Fatal("node B still delivers data/# 2 s after the read permission was removed on node A")
		}
		probe := "probe-" + strconv.Itoa(i)
		w.publish("data/1", 0, probe, 0)
		if !receivedPayload(dev, probe, 150*time.Millisecond) {
			break
		}
	}
	t.Logf("deliveries stopped on node B within %v", time.Since(start))
	// From now on nothing on data/ arrives; other/ still does.
	w.publish("data/2", 1, "after", 0)
	w.publish("other/1", 1, "still-allowed", 0)
	for {
		got := dev.expect(packets.Publish, 3*time.Second)
		if got.TopicName == "data/2" {
			t.Fatalf("delivered %q on data/2 after the revocation", got.Payload)
		}
		if got.TopicName == "other/1" {
			break
		}
	}
	dev.noPublish(200 * time.Millisecond)
	if err := dev.ping(); err != nil {
		t.Fatalf("subscriber was disconnected by a permission change: %v", err)
	}
}

// receivedPayload reports whether a PUBLISH with payload arrives on rc
// within d (other publishes, e.g. late earlier probes, are skipped).
func receivedPayload(rc *rawClient, payload string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		pk, err := rc.read(time.Until(deadline))
		if err != nil {
			if !isTimeout(err) {
				rc.t.Fatalf("subscriber connection lost: %v", err)
			}
			return false
		}
		if pk.FixedHeader.Type == packets.Publish && string(pk.Payload) == payload {
			return true
		}
	}
	return false
}

// redisDir returns the working directory of a running redis-server,
// where SAVE writes dump.rdb.
func redisDir(t testing.TB, c *redis.Client) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := c.ConfigGet(ctx, "dir").Result()
	if err != nil {
		t.Fatal(err)
	}
	if res["dir"] == "" {
		t.Fatalf("CONFIG GET dir: %v", res)
	}
	return res["dir"]
}

// restartRedis starts redis-server on addr with storetest's flags (no
// automatic persistence) in dir, so it loads the dump.rdb an explicit
// SAVE left there, and waits until it answers PING. It is killed when the
// test ends.
func restartRedis(t testing.TB, addr, dir string) {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("redis-server", "--save", "", "--appendonly", "no",
		"--port", port, "--bind", "127.0.0.1", "--dir", dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("restart redis-server: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		select {
		case <-exited:
			t.Fatalf("restarted redis-server exited: %s", strings.TrimSpace(out.String()))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted redis-server does not answer PING: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRedisOutage: while Redis is down, connected devices keep working
// and cached users can still connect; unknown users are told the server
// is unavailable (not that their password is wrong). Once Redis is back,
// a change the node missed is still applied.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	r := storetest.StartRedis(t)
	n := startNode(t, nodeOpts{store: storetest.OpenRedis(t, storetest.URL(r.URL))})
	other := storetest.OpenRedis(t, storetest.URL(r.URL)) // another node's store instance
	ctx := context.Background()
	addUser(t, n.st, "alpha", "alpha-secret-1", []acl.Permission{perm("room/#", acl.OpReadWrite)}, nil)
	addUser(t, n.st, "beta", "beta-secret-12", []acl.Permission{perm("room/#", acl.OpReadWrite)}, nil)
	victim := addUser(t, n.st, "victim", "victim-secret1", []acl.Permission{perm("room/#", acl.OpReadWrite)}, nil)
	addUser(t, n.st, "ghost", "ghost-secret-1", []acl.Permission{perm("room/#", acl.OpReadWrite)}, nil)

	alpha := n.mustConnect(t, connectOpts{username: "alpha", password: "alpha-secret-1", clientID: "alpha", clean: true})
	sub := n.mustConnect(t, connectOpts{version: 4, username: "beta", password: "beta-secret-12", clientID: "beta-sub", clean: true})
	if codes := sub.subscribe("room/#"); codes[0] > 2 {
		t.Fatalf("subscribe: SUBACK 0x%02x", codes[0])
	}
	vc := n.mustConnect(t, connectOpts{username: "victim", password: "victim-secret1", clientID: "victim", clean: true})
	// beta connects once more and leaves: its entry is cached from now on.
	gone := n.mustConnect(t, connectOpts{username: "beta", password: "beta-secret-12", clientID: "beta-once", clean: true})
	gone.write([]byte{0xe0, 0x00})

	// Keep the data across the restart (storetest's server does not
	// persist on its own), then take Redis down.
	rc := r.Client(t)
	dir := redisDir(t, rc)
	if err := rc.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	r.Stop()
	outage := time.Now()

	// Connected devices keep working.
	if err := alpha.ping(); err != nil {
		t.Fatalf("connected client lost during the outage: %v", err)
	}
	alpha.publish("room/1", 1, "during-outage", 0)
	alpha.expect(packets.Puback, 3*time.Second)
	if got := sub.expect(packets.Publish, 3*time.Second); got.TopicName != "room/1" || string(got.Payload) != "during-outage" {
		t.Fatalf("delivered %q %q during the outage", got.TopicName, got.Payload)
	}
	alpha.publish("secret/1", 0, "denied-still", 0)
	if err := alpha.ping(); err != nil {
		t.Fatal(err)
	}
	// ACL checks still deny what is not permitted.
	if codes := alpha.subscribe("secret/#"); codes[0] != 0x87 {
		t.Fatalf("subscribe secret/# during the outage: SUBACK 0x%02x, want 0x87", codes[0])
	}

	// A cached user connects from cache.
	again := n.mustConnect(t, connectOpts{username: "beta", password: "beta-secret-12", clientID: "beta-again", clean: true})
	if err := again.ping(); err != nil {
		t.Fatal(err)
	}
	// A never-seen user is told the server is unavailable, per version.
	for _, v := range versions {
		want := map[byte]byte{4: 3, 5: 0x88}[v]
		if _, code := n.connect(t, connectOpts{version: v, username: "ghost", password: "ghost-secret-1", clientID: "ghost-" + vname(v), clean: true}); code != want {
			t.Fatalf("%s: never-seen user during the outage: CONNACK 0x%02x, want 0x%02x (server unavailable)", vname(v), code, want)
		}
	}
	// A wrong password of a cached user is still a wrong password.
	if _, code := n.connect(t, connectOpts{username: "beta", password: "not-the-password", clientID: "beta-bad", clean: true}); code != 0x86 {
		t.Fatalf("cached user, wrong password, during the outage: CONNACK 0x%02x, want 0x86", code)
	}
	// Writes fail as unavailable: nothing is half-applied.
	if err := other.DeleteUser(ctx, victim.ID); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("DeleteUser during the outage: %v, want ErrUnavailable", err)
	}
	if err := vc.ping(); err != nil {
		t.Fatalf("victim disconnected by a failed write: %v", err)
	}
	t.Logf("outage checks took %v", time.Since(outage))

	// Redis comes back on the same address with the saved data.
	restartRedis(t, r.Addr, dir)
	rc2 := redis.NewClient(&redis.Options{Addr: r.Addr})
	t.Cleanup(func() { _ = rc2.Close() })
	poll.Until(t, 10*time.Second, "never-seen user admitted after Redis came back", func() bool {
		_, code := n.connect(t, connectOpts{username: "ghost", password: "ghost-secret-1", clientID: "ghost-back", clean: true})
		return code == 0
	})

	// Watch the node's store, then cut every pub/sub connection and delete
	// the victim through the other store at once: the node's store misses
	// that message and must find the gap when it resubscribes.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, err := n.st.Watch(wctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc2.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := other.DeleteUser(ctx, victim.ID); err != nil {
		t.Fatalf("DeleteUser after Redis came back: %v", err)
	}
	if !vc.closed(10 * time.Second) {
		t.Fatal("a user deleted while the node's change feed was cut stays connected 10 s later")
	}
	t.Logf("victim disconnected %v after the delete", time.Since(start))
	sawReset := false
	for quiet := time.After(200 * time.Millisecond); ; {
		select {
		case ev := <-events:
			sawReset = sawReset || ev.Kind == store.KindReset
			continue
		case <-quiet:
		}
		break
	}
	t.Logf("node's store emitted a reset: %v", sawReset)

	// The others were not disconnected by the resync and still work.
	if err := alpha.ping(); err != nil {
		t.Fatalf("alpha lost after the resync: %v", err)
	}
	alpha.publish("room/2", 1, "after-outage", 0)
	if got := sub.expect(packets.Publish, 3*time.Second); string(got.Payload) != "after-outage" {
		t.Fatalf("delivered %q after the outage", got.Payload)
	}
	if _, code := n.connect(t, connectOpts{username: "victim", password: "victim-secret1", clientID: "victim-again", clean: true}); code != 0x86 {
		t.Fatalf("deleted victim reconnects: CONNACK 0x%02x, want 0x86", code)
	}
}

// TestRedisOutageCachedConnectNotBlocked: a cached user's CONNECT is served
// from the cache during an outage, without waiting on the dead store, also
// when the node applied some unrelated change after the user was cached.
func TestRedisOutageCachedConnectNotBlocked(t *testing.T) {
	r := storetest.StartRedis(t)
	n := startNode(t, nodeOpts{store: storetest.OpenRedis(t, storetest.URL(r.URL))})
	ctx := context.Background()
	addUser(t, n.st, "beta", "beta-secret-12", []acl.Permission{perm("room/#", acl.OpReadWrite)}, nil)
	other := addUser(t, n.st, "other", "other-secret-1", []acl.Permission{perm("x/#", acl.OpRead), perm("y/#", acl.OpRead)}, nil)
	b := n.mustConnect(t, connectOpts{username: "beta", password: "beta-secret-12", clientID: "beta-1", clean: true})
	b.write([]byte{0xe0, 0x00}) // beta is cached from now on
	o := n.mustConnect(t, connectOpts{username: "other", password: "other-secret-1", clientID: "other", clean: true})
	o.subscribe("x/#")

	// An unrelated change, visibly applied by the node: other's x/#
	// subscription is pruned.
	if _, err := n.st.UpdateRole(ctx, other.Roles[0], func(r *store.Role) error {
		r.Permissions = []acl.Permission{perm("y/#", acl.OpRead)}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 2*time.Second, "other's subscription pruned", func() bool {
		_, ok := n.broker.Server().Topics.Subscribers("x/1").Subscriptions["other"]
		return !ok
	})

	r.Stop()
	for i := range 3 {
		start := time.Now()
		n.mustConnect(t, connectOpts{username: "beta", password: "beta-secret-12", clientID: "beta-" + strconv.Itoa(i+2), clean: true})
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("cached user's CONNECT during the outage took %v (attempt %d); want it served from the cache in well under 500 ms", d, i+1)
		}
	}
}
