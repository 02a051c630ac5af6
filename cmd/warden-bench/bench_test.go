package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/broker"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

const (
	testPassword = "bench-test-password"
	testUsers    = 8
)

// fastParams keep the test users' logins quick; the bench measures the
// real parameters in scripts/bench-compare.sh.
var fastParams = credential.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// startWarden starts an in-process warden broker (embedded store, auth
// hook, MQTT listener on a free loopback port) with users bench-0 ...
// bench-<testUsers-1> sharing a role with readWrite on bench/#, as
// scripts/bench-compare.sh sets warden up. It returns the MQTT address.
func startWarden(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	st := storetest.OpenBolt(t)
	role, err := st.CreateRole(ctx, store.Role{Name: "bench", IsShared: true, Permissions: []acl.Permission{
		{Resource: "bench/#", Operation: acl.OpReadWrite, Context: acl.ContextMQTT},
	}})
	if err != nil {
		t.Fatal(err)
	}
	hash, err := credential.Hash(testPassword, fastParams)
	if err != nil {
		t.Fatal(err)
	}
	for i := range testUsers {
		if _, err := st.CreateUser(ctx, store.User{Username: "bench-" + strconv.Itoa(i), PasswordHash: hash,
			IdentityProvider: "local", Roles: []string{role.ID}}); err != nil {
			t.Fatal(err)
		}
	}
	tokens, err := credential.NewTokens(ctx, st, "warden-bench-test")
	if err != nil {
		t.Fatal(err)
	}
	// The lockout is off, as in the script: every client comes from
	// 127.0.0.1, and the denied scenario's flood would lock the
	// legitimate clients out.
	h, err := authhook.New(ctx, authhook.Options{Store: st, Tokens: tokens, MaxFailuresPerUser: -1, MaxFailuresPerUserTotal: -1, MaxFailuresPerIP: -1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.New(broker.Config{TCPAddr: "127.0.0.1:0", ConnectTimeout: 5 * time.Second}, h)
	if err != nil {
		t.Fatal(err)
	}
	h.Attach(b.Server())
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b.Addr(broker.ListenerTCP)
}

// runBench runs warden-bench with args plus the address, users, password
// and a JSON file; it returns the exit code, the parsed result and the
// output.
func runBench(t *testing.T, addr string, args ...string) (int, *Result, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "result.json")
	// The defaults come first, so a case's own flags win.
	args = append([]string{args[0], "--addr", addr, "--password", testPassword, "--users", strconv.Itoa(testUsers),
		"--json", path, "--label", "warden", "--timeout", "20s"}, args[1:]...)
	var out, errOut bytes.Buffer
	code := run(t.Context(), args, &out, &errOut)
	r, err := readResult(path)
	if err != nil {
		t.Fatalf("warden-bench %s: exit %d, no readable JSON: %v\nstdout:\n%s\nstderr:\n%s", args[0], code, err, &out, &errOut)
	}
	return code, r, out.String() + errOut.String()
}

// metric returns a figure of r, failing the test when it is missing.
func metric(t *testing.T, r *Result, name string) float64 {
	t.Helper()
	v, ok := r.Metric(name)
	if !ok {
		t.Fatalf("%s: no figure %q in %+v", r.Name, name, r.Metrics)
	}
	return v
}

// TestScenariosAgainstWarden is the smoke test of every scenario: a few
// clients for about a second each against a real warden broker, with
// the figures checked for sanity rather than speed.
func TestScenariosAgainstWarden(t *testing.T) {
	addr := startWarden(t)
	var files []string
	dir := t.TempDir()
	keep := func(t *testing.T, r *Result) {
		path := filepath.Join(dir, r.Name+".json")
		if err := r.writeJSON(path); err != nil {
			t.Fatal(err)
		}
		files = append(files, path)
	}

	t.Run("connect counts every CONNECT and reports the broker's CPU", func(t *testing.T) {
		code, r, out := runBench(t, addr, "connect", "--clients", "40", "--concurrency", "4", "--broker-pid", strconv.Itoa(os.Getpid()), "--settle", "300ms")
		if code != exitOK || !r.Complete {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		if got := metric(t, r, "connects"); got != 40 {
			t.Errorf("connects = %v, want 40", got)
		}
		if metric(t, r, "refused")+metric(t, r, "failed") != 0 || metric(t, r, "connects_per_s") <= 0 {
			t.Errorf("refusals or no rate:\n%s", out)
		}
		if metric(t, r, "connect_p99_ms") < metric(t, r, "connect_p50_ms") {
			t.Errorf("p99 below p50:\n%s", out)
		}
		metric(t, r, "broker_cpu_us_per_connect")
		if metric(t, r, "broker_rss_max_mib") <= 0 {
			t.Errorf("no resident memory read from /proc:\n%s", out)
		}
		// The case's own share: its maximum less what the broker held
		// when it began (after waiting, at most --settle, for that to
		// stop falling).
		if before, growth := metric(t, r, "broker_rss_before_mib"), metric(t, r, "broker_rss_growth_mib"); before <= 0 || growth < 0 || before+growth != metric(t, r, "broker_rss_max_mib") {
			t.Errorf("broker_rss_before_mib %v + broker_rss_growth_mib %v is not the maximum:\n%s", before, growth, out)
		}
		if w := metric(t, r, "broker_settle_s"); w < 0.3 || w >= settleQuiet.Seconds() {
			t.Errorf("broker_settle_s %v, want --settle's 0.3 s (this process's memory does not fall for %s)", w, settleQuiet)
		}
		if r.Params["password"] != "" || strings.Contains(out, testPassword) {
			t.Errorf("the password leaked into the result or the output")
		}
		keep(t, r)
	})

	t.Run("reconnect-storm brings every client back", func(t *testing.T) {
		code, r, out := runBench(t, addr, "reconnect-storm", "--clients", "20", "--concurrency", "4")
		if code != exitOK {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		if metric(t, r, "back") != 20 || metric(t, r, "not_back") != 0 || metric(t, r, "storm_s") <= 0 {
			t.Errorf("not all back:\n%s", out)
		}
		keep(t, r)
	})

	for _, qos := range []string{"0", "1"} {
		t.Run("pubsub at QoS "+qos+" delivers every message", func(t *testing.T) {
			code, r, out := runBench(t, addr, "pubsub", "--qos", qos, "--publishers", "2", "--subscribers", "2",
				"--duration", "1s", "--rate", "100", "--payload", "64", "--name", "pubsub-qos"+qos)
			if code != exitOK {
				t.Fatalf("exit %d:\n%s", code, out)
			}
			sent, delivered := metric(t, r, "sent"), metric(t, r, "delivered")
			if sent < 50 || delivered != 2*sent {
				t.Errorf("sent %v, delivered %v; want every message at both subscribers:\n%s", sent, delivered, out)
			}
			if metric(t, r, "lost") != 0 || metric(t, r, "duplicates") != 0 {
				t.Errorf("lost or duplicated messages:\n%s", out)
			}
			if qos == "1" && metric(t, r, "acked") != sent {
				t.Errorf("not every QoS 1 publish acknowledged:\n%s", out)
			}
			if p50 := metric(t, r, "latency_p50_ms"); p50 <= 0 || p50 > 1000 {
				t.Errorf("latency p50 %v ms is not plausible:\n%s", p50, out)
			}
			keep(t, r)
		})
	}

	t.Run("fanout reaches every subscriber of the wildcard", func(t *testing.T) {
		code, r, out := runBench(t, addr, "fanout", "--qos", "1", "--subscribers", "5", "--duration", "1s", "--rate", "100")
		if code != exitOK {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		if a := metric(t, r, "acked"); a < 50 || metric(t, r, "delivered") != 5*a || metric(t, r, "lost") != 0 {
			t.Errorf("fanout incomplete:\n%s", out)
		}
		keep(t, r)
	})

	t.Run("idle holds every client and reads the broker's memory", func(t *testing.T) {
		code, r, out := runBench(t, addr, "idle", "--clients", "50", "--concurrency", "8", "--idle", "300ms",
			"--keepalive", "1s", "--broker-pid", strconv.Itoa(os.Getpid()))
		if code != exitOK || !r.Complete {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		// With a 1 s keep alive and no ping for 1.5 s the broker would
		// have dropped them: the pinger ran (at 500 ms).
		if metric(t, r, "connected") != 50 || metric(t, r, "still_connected") != 50 || metric(t, r, "refused")+metric(t, r, "failed") != 0 {
			t.Errorf("not every client connected and stayed:\n%s", out)
		}
		if metric(t, r, "connect_s") <= 0 || metric(t, r, "connects_per_s") <= 0 || metric(t, r, "broker_rss_idle_mib") <= 0 {
			t.Errorf("no connect time or memory:\n%s", out)
		}
		metric(t, r, "broker_rss_per_client_kib")
		metric(t, r, "broker_idle_cpu_pct")
		keep(t, r)
	})

	t.Run("idle outlasting the keep alive keeps every client connected", func(t *testing.T) {
		code, r, out := runBench(t, addr, "idle", "--clients", "5", "--idle", "2500ms", "--keepalive", "1s")
		if code != exitOK || metric(t, r, "still_connected") != 5 {
			t.Fatalf("exit %d, want all 5 still connected after 2.5 keep-alive periods:\n%s", code, out)
		}
	})

	t.Run("retained stores, delivers and clears every message", func(t *testing.T) {
		code, r, out := runBench(t, addr, "retained", "--messages", "500", "--payload", "32", "--drain", "2s", "--first-wait", "10s",
			"--broker-pid", strconv.Itoa(os.Getpid()))
		if code != exitOK || !r.Complete {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		if metric(t, r, "received") != 500 || metric(t, r, "lost") != 0 {
			t.Errorf("not every retained message received:\n%s", out)
		}
		if metric(t, r, "store_s") <= 0 || metric(t, r, "receive_s") <= 0 || metric(t, r, "clear_s") <= 0 {
			t.Errorf("missing times:\n%s", out)
		}
		metric(t, r, "broker_cpu_us_per_retained")
		metric(t, r, "broker_rss_retained_mib")
		keep(t, r)

		// Cleared: a second run under the same prefix would see only its
		// own; check the broker directly with a fresh subscriber.
		b := &bench{opts: options{addr: addr, userPrefix: "bench-", password: testPassword, users: testUsers, connectTimeout: 5 * time.Second}}
		c, a := b.rawConnect(t.Context(), b.legit("check", 2), 60, 4096)
		if c == nil {
			t.Fatalf("connect: %+v", a)
		}
		defer c.close()
		s := &retainedScenario{messages: 1, firstWait: 500 * time.Millisecond, drain: 500 * time.Millisecond, topicRoot: "bench"}
		var n atomic.Int64
		if got, _, _, _, err := s.receiveAll(c, "bench/r/", &n); err != nil || got != 0 {
			t.Errorf("after clearing: %d retained messages left under bench/r/ (err %v)", got, err)
		}
	})

	t.Run("retained with a topic the users may not write fails the run", func(t *testing.T) {
		code, r, out := runBench(t, addr, "retained", "--messages", "10", "--topic-root", "elsewhere", "--drain", "500ms")
		if code != exitFail || r.Complete || !strings.Contains(r.Error, "permission") {
			t.Fatalf("exit %d, error %q:\n%s", code, r.Error, out)
		}
	})

	t.Run("denied refuses every wrong password and lets the legitimate clients in", func(t *testing.T) {
		code, r, out := runBench(t, addr, "denied", "--legit", "2", "--flood", "4", "--users", "6",
			"--flood-offset", "6", "--flood-users", "2", "--duration", "500ms")
		if code != exitOK {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		attempts := metric(t, r, "wrong_attempts")
		if attempts == 0 || metric(t, r, "wrong_refused") != attempts || metric(t, r, "wrong_accepted") != 0 {
			t.Errorf("wrong passwords not all refused:\n%s", out)
		}
		if metric(t, r, "baseline_connects") == 0 || metric(t, r, "flood_connects") == 0 ||
			metric(t, r, "legit_refused") != 0 || metric(t, r, "legit_failed") != 0 {
			t.Errorf("legitimate clients were kept out:\n%s", out)
		}
		if r.Reasons["0x86"] != uint64(attempts) {
			t.Errorf("refusals %v, want every one 0x86 (bad username or password)", r.Reasons)
		}
		keep(t, r)
	})

	t.Run("a wrong password fails the run, with the JSON marked incomplete", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "bad.json")
		var out bytes.Buffer
		code := run(t.Context(), []string{"connect", "--addr", addr, "--password", "wrong", "--users", "2", "--clients", "2",
			"--json", path, "--quiet"}, &out, &out)
		r, err := readResult(path)
		if code != exitFail || err != nil || r.Complete || !strings.Contains(r.Error, "--password") {
			t.Fatalf("exit %d, result %+v, err %v:\n%s", code, r, err, &out)
		}
		if r.Reasons["0x86"] != 2 {
			t.Errorf("refusals %v, want 2 × 0x86", r.Reasons)
		}
	})

	t.Run("--timeout stops a long run", func(t *testing.T) {
		start := time.Now()
		code, r, out := runBench(t, addr, "pubsub", "--duration", "1m", "--rate", "50", "--publishers", "1", "--subscribers", "1",
			"--timeout", "1s")
		if code != exitFail || r.Complete || time.Since(start) > 10*time.Second {
			t.Fatalf("exit %d after %v, complete %v:\n%s", code, time.Since(start), r.Complete, out)
		}
	})

	t.Run("summarize prints medians and ratios", func(t *testing.T) {
		var out, errOut bytes.Buffer
		sum := filepath.Join(t.TempDir(), "summary.json")
		code := summarize(append([]string{"--ratio", "warden/warden", "--json", sum,
			"--target", "idle.broker_rss_per_client_kib<=1000000", "--target", "retained.received>=1000000"}, files...), &out, &errOut)
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, &errOut)
		}
		for _, want := range []string{"== connect (connect)", "== pubsub-qos1 (pubsub)", "== denied (denied)", "warden/warden", "connects_per_s", "1.00",
			"== idle (idle)", "== retained (retained)", "broker_rss_per_client_kib", "broker_cpu_us_per_retained",
			"target: broker_rss_per_client_kib ≤ 1000000: warden", ", met)", "target: received ≥ 1000000: warden 500 (0.00× the target, NOT met)"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("summary lacks %q:\n%s", want, &out)
			}
		}
		if _, err := os.Stat(sum); err != nil {
			t.Error(err)
		}
	})
}

func TestUsageAndBadFlags(t *testing.T) {
	var out bytes.Buffer
	if code := run(t.Context(), nil, &out, &out); code != exitUsage || !strings.Contains(out.String(), "reconnect-storm") {
		t.Errorf("no arguments: exit %d:\n%s", code, &out)
	}
	for _, args := range [][]string{
		{"nope"},
		{"pubsub", "--qos", "2"},
		{"pubsub", "--payload", "10"},
		{"connect", "--users", "0"},
		{"denied", "--password", "x", "--wrong-password", "x"},
		{"idle", "--clients", "0"},
		{"idle", "--clients", "100000000"}, // beyond any open-file limit
		{"idle", "--keepalive", "500ms"},
		{"retained", "--messages", "0"},
		{"retained", "--payload", "0"},
		{"retained", "--first-wait", "0s"},
	} {
		out.Reset()
		if code := run(t.Context(), args, &out, &out); code != exitUsage {
			t.Errorf("%v: exit %d, want %d:\n%s", args, code, exitUsage, &out)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, time.Second}} {
		got := h.quantile(c.q)
		if d := got - c.want; d < -c.want/100 || d > c.want/100 {
			t.Errorf("quantile(%v) = %v, want %v within 1%%", c.q, got, c.want)
		}
	}
	var other histogram
	other.record(5 * time.Second)
	h.merge(&other)
	if h.n != 1001 || h.max != 5*time.Second || h.min != time.Millisecond {
		t.Errorf("merge: n %d, min %v, max %v", h.n, h.min, h.max)
	}
	var empty histogram
	if empty.quantile(0.5) != 0 {
		t.Error("an empty histogram has no quantile")
	}
}

func TestSeqSetMissing(t *testing.T) {
	var got, want seqSet
	for i := uint64(0); i < 300; i++ {
		want.add(i)
		if i%7 != 0 {
			got.add(i)
		}
	}
	if got.add(1) {
		t.Error("adding a member again reported it new")
	}
	if n := got.missing(&want); n != 43 { // 0, 7, ..., 294
		t.Errorf("missing = %d, want 43", n)
	}
	if n := want.missing(&got); n != 0 {
		t.Errorf("missing = %d, want 0", n)
	}
}
