package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/warden-mqtt/warden/admin"
	"github.com/warden-mqtt/warden/internal/poll"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// rlGet sends GET path and returns the status and body.
func rlGet(t *testing.T, base, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// rlWatcher is the admin connected over MQTT 5 and subscribed to
// plant1/#: a client that stays connected through everything.
type rlWatcher struct {
	c   *paho.Client
	got chan string
}

func rlWatch(t *testing.T, port, password string) *rlWatcher {
	t.Helper()
	conn, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	w := &rlWatcher{got: make(chan string, 100)}
	w.c = paho.NewClient(paho.ClientConfig{Conn: conn, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(pr paho.PublishReceived) (bool, error) { w.got <- string(pr.Packet.Payload); return true, nil },
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if ca, err := w.c.Connect(ctx, &paho.Connect{ClientID: "watcher", CleanStart: true, KeepAlive: 30,
		Username: "admin", UsernameFlag: true, Password: []byte(password), PasswordFlag: true}); err != nil || ca.ReasonCode != 0 {
		t.Fatalf("watcher connect: %v %+v", err, ca)
	}
	if _, err := w.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "plant1/#", QoS: 1}}}); err != nil {
		t.Fatalf("watcher subscribe: %v", err)
	}
	t.Cleanup(func() { _ = w.c.Disconnect(&paho.Disconnect{}) })
	return w
}

// sees publishes payload on plant1/watch from the watcher itself and
// from device-1 (a new connection: a cached user connecting) and waits
// for both to arrive.
func (w *rlWatcher) sees(t *testing.T, port, devPW, payload string) {
	t.Helper()
	select {
	case <-w.c.Done():
		t.Fatal("the connected watcher was disconnected")
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if pr, err := w.c.Publish(ctx, &paho.Publish{Topic: "plant1/watch", QoS: 1, Payload: []byte(payload + "-own")}); err != nil || pr.ReasonCode != 0 {
		t.Fatalf("the connected watcher cannot publish: %v %+v", err, pr)
	}
	if out, err := bPub(t, port, "device-1", devPW, "plant1/"+payload); err != nil {
		t.Fatalf("device-1 (a cached user) cannot connect and publish: %v %s", err, out)
	}
	want := map[string]bool{payload + "-own": true, "1": true}
	for len(want) > 0 {
		select {
		case p := <-w.got:
			delete(want, p)
		case <-ctx.Done():
			t.Fatalf("the watcher did not receive %v", want)
		}
	}
}

// TestRedisLossKeepsServing runs warden on Redis and empties Redis under
// it, by FLUSHALL and by a restart without persistence. Connected MQTT
// clients keep working and a cached user still connects; /readyz answers
// 503 naming the store and the reason; an error log says what happened
// and how to restore; the admin API refuses changes with 503; nothing is
// recreated in Redis, and a node started meanwhile does not bootstrap a
// fresh admin over the lost model. `warden restore` of a backup brings
// everything back. The first start, on an empty Redis, bootstraps.
//
//	WARDEN_TEST_BIN=/work/before/warden go test -run TestRedisLossKeepsServing -v ./cmd/warden
//
// shows the behaviour before the fix.
func TestRedisLossKeepsServing(t *testing.T) {
	t.Parallel()
	bin := buildWarden(t)
	r := storetest.StartRedis(t)
	adminPW, devPW := validPassword(t), validPassword(t)
	env := []string{"WARDEN_REDIS_URL=" + r.URL, "WARDEN_ADMIN_PASSWORD=" + adminPW, "WARDEN_DATA_DIR=" + t.TempDir()}
	cmdEnv := []string{"WARDEN_REDIS_URL=" + r.URL}
	archive := filepath.Join(t.TempDir(), "backup.gz")

	// A first start on an empty Redis bootstraps: the admin logs in.
	s := bStart(t, bin, env...)
	bSeed(t, s, adminPW, devPW)
	bMustCommand(t, bin, cmdEnv, "", "backup", "--out", archive, "--include-keys")
	w := rlWatch(t, s.mqtt, adminPW)
	w.sees(t, s.mqtt, devPW, "before")
	tok := s.login(t, "admin", adminPW)

	lost := func(t *testing.T, how string) {
		t.Helper()
		// Ready no more, saying why.
		poll.Until(t, 10*time.Second, "/readyz unready after "+how, func() bool {
			code, _ := rlGet(t, s.http, "/readyz")
			return code == http.StatusServiceUnavailable
		})
		_, body := rlGet(t, s.http, "/readyz")
		var ready struct {
			Checks map[string]string
			Error  string
		}
		if err := json.Unmarshal([]byte(body), &ready); err != nil || ready.Checks["store"] != "failed" ||
			!strings.Contains(ready.Error, "store") || !strings.Contains(ready.Error, "lost warden's data") || !strings.Contains(ready.Error, "restore") {
			t.Errorf("/readyz after %s: %s; want the store named with the reason", how, body)
		}
		// Connected clients and cached users go on.
		w.sees(t, s.mqtt, devPW, "during-"+strings.Fields(how)[0])
		// Changes are refused, not applied to an empty model.
		req, _ := http.NewRequest("POST", "http://"+s.http+"/api/users", strings.NewReader(`{"username":"ghost","password":"`+devPW+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "lost warden's data") {
			t.Errorf("POST /api/users after %s: %d %s, want 503 saying Redis lost the data", how, resp.StatusCode, b)
		}
		// Nothing recreated in Redis.
		if keys, err := r.Client(t).Keys(context.Background(), "{warden}:b:*").Result(); err != nil || len(keys) != 0 {
			t.Errorf("Redis holds %v %v after %s, want no model recreated", keys, err, how)
		}
		// The log says what happened and how to restore.
		out := s.p.out.String()
		if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "Redis lost warden's data") || !strings.Contains(out, "warden restore") {
			t.Errorf("no error log saying what happened and how to restore after %s:\n%s", how, out)
		}
	}
	restore := func(t *testing.T) {
		t.Helper()
		_, errOut := bMustCommand(t, bin, cmdEnv, "", "restore", archive)
		t.Logf("warden restore: %s", strings.TrimSpace(errOut))
		poll.Until(t, 10*time.Second, "/readyz ready after the restore", func() bool {
			code, _ := rlGet(t, s.http, "/readyz")
			return code == http.StatusOK
		})
		w.sees(t, s.mqtt, devPW, "restored")
		tok = s.login(t, "admin", adminPW)
		apiCall(t, s.http, "POST", "/api/users", tok, map[string]any{"username": "after-" + time.Now().Format("150405.000000"), "password": devPW}, nil, 201)
	}

	t.Run("FLUSHALL", func(t *testing.T) {
		if err := r.Client(t).FlushAll(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		lost(t, "FLUSHALL")

		// A node started now refuses to start instead of bootstrapping a
		// new admin over the lost model.
		p := startWarden(t, bin, env...)
		if code := p.exitCode(); code != exitFail {
			t.Errorf("a node started on the lost model: exit %d, want 1:\n%s", code, p.out)
		}
		if out := p.out.String(); !strings.Contains(out, "lost warden's data") || strings.Contains(out, "created admin user") {
			t.Errorf("a node started on the lost model does not say so, or bootstrapped:\n%s", out)
		}
		restore(t)
	})
	if t.Failed() {
		return
	}
	t.Run("restart without persistence", func(t *testing.T) {
		r = r.RestartEmpty(t)
		lost(t, "restart without persistence")
		restore(t)
	})
}

// TestRestoreIntoLostRedisWarnsWithoutKeys: restoring an archive without
// keys into a Redis that lost its data restores it, and warns that the
// keys are gone with the data (new tokens keys, CA and MFA key follow).
func TestRestoreIntoLostRedisWarnsWithoutKeys(t *testing.T) {
	ctx := context.Background()
	r := storetest.StartRedis(t)
	cfg := Config{RedisURL: r.URL}
	s, _, err := openStore(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	role, err := s.CreateRole(ctx, store.Role{Name: admin.RoleAdmin, IsShared: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(ctx, store.User{Username: "admin", Roles: []string{role.ID}}); err != nil {
		t.Fatal(err)
	}
	snap, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "no-keys.gz")
	var buf bytes.Buffer
	if _, err := store.WriteArchive(&buf, snap, store.ArchiveOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.Client(t).FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); !errors.Is(err, store.ErrModelLost) {
		t.Fatalf("Ping after FLUSHALL: %v", err)
	}
	_ = s.Close()

	var stdout, stderr bytes.Buffer
	code := runCommand(ctx, []string{"restore", file, "--redis-url", r.URL}, env(nil), strings.NewReader(""), &stdout, &stderr)
	if code != exitOK || !strings.Contains(stderr.String(), "warning") || !strings.Contains(stderr.String(), "--include-keys") {
		t.Fatalf("exit %d, stderr %q; want 0 with a warning about the lost keys", code, stderr.String())
	}
}
