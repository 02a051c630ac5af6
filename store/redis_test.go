package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

func TestRedisContract(t *testing.T) {
	t.Parallel()
	srv := storetest.StartRedis(t)
	admin := srv.Client(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		// One server for the suite: every subtest starts from an empty
		// database (the previous subtest's store is closed by then).
		if err := admin.FlushAll(t.Context()).Err(); err != nil {
			t.Fatalf("FLUSHALL: %v", err)
		}
		return storetest.OpenRedis(t, storetest.URL(srv.URL))
	})
}

// TestSnapshotAcrossBackends moves a model from bolt to Redis and back:
// a backup taken on one backend restores on the other unchanged.
func TestSnapshotAcrossBackends(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	b := storetest.OpenBolt(t)
	fillModel(t, ctx, b)
	fromBolt, err := b.Snapshot(ctx)
	if err != nil {
		t.Fatalf("bolt Snapshot: %v", err)
	}

	r := storetest.OpenRedis(t)
	if err := r.Restore(ctx, fromBolt); err != nil {
		t.Fatalf("redis Restore: %v", err)
	}
	fromRedis, err := r.Snapshot(ctx)
	if err != nil {
		t.Fatalf("redis Snapshot: %v", err)
	}
	if diff := storetest.SameModel(fromRedis, fromBolt); diff != "" {
		t.Fatalf("redis model differs from the bolt snapshot it restored:\n%s", diff)
	}
	// What callers read, not only the snapshot, matches.
	compareReads(t, ctx, b, r)

	b2 := storetest.OpenBolt(t)
	if err := b2.Restore(ctx, fromRedis); err != nil {
		t.Fatalf("bolt Restore: %v", err)
	}
	back, err := b2.Snapshot(ctx)
	if err != nil {
		t.Fatalf("bolt Snapshot: %v", err)
	}
	if diff := storetest.SameModel(back, fromBolt); diff != "" {
		t.Errorf("bolt -> redis -> bolt changed the model:\n%s", diff)
	}
}

func TestRedisTwoNodes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	srv := storetest.StartRedis(t)
	a := storetest.OpenRedis(t, storetest.URL(srv.URL))
	b := storetest.OpenRedis(t, storetest.URL(srv.URL))
	events, err := b.Watch(ctx)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	u, err := a.CreateUser(ctx, store.User{Username: "alice"})
	if err != nil {
		t.Fatalf("CreateUser on A: %v", err)
	}
	e := waitEvent(t, events, 5*time.Second, func(e store.Event) bool { return e.Kind == store.KindUser && e.ID == u.ID })
	if v, err := a.Version(ctx); err != nil || e.Version != v {
		t.Errorf("B's event Version = %d, A's Version = %d, %v", e.Version, v, err)
	}
	// B reads A's write, and B's writes conflict with A's.
	if got, err := b.UserByUsername(ctx, "alice"); err != nil || got.ID != u.ID {
		t.Errorf("B UserByUsername = %q, %v; want %q", got.ID, err, u.ID)
	}
	if _, err := b.CreateUser(ctx, store.User{Username: "alice"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("B CreateUser(alice): err = %v, want ErrConflict", err)
	}
	// A restore on A resets B's caches.
	snap, err := a.Snapshot(ctx)
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if err := a.Restore(ctx, snap); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	waitEvent(t, events, 5*time.Second, func(e store.Event) bool { return e.Kind == store.KindReset })
}

// TestRedisResubscribes kills every pub/sub connection on the server: a
// node must notice, resubscribe, and report what it missed meanwhile
// (the events or a reset), then receive later events as usual.
func TestRedisResubscribes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	srv := storetest.StartRedis(t)
	admin := srv.Client(t)
	a := storetest.OpenRedis(t, storetest.URL(srv.URL))
	b := storetest.OpenRedis(t, storetest.URL(srv.URL))
	events, err := b.Watch(ctx)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}

	killed, err := admin.ClientKillByFilter(ctx, "TYPE", "pubsub").Result()
	if err != nil {
		t.Fatalf("CLIENT KILL TYPE pubsub: %v", err)
	}
	if killed < 2 {
		t.Fatalf("CLIENT KILL TYPE pubsub killed %d connections, want both nodes' (2)", killed)
	}
	u, err := a.CreateUser(ctx, store.User{Username: "during-gap"})
	if err != nil {
		t.Fatalf("CreateUser on A: %v", err)
	}
	waitEvent(t, events, 10*time.Second, func(e store.Event) bool {
		return e.Kind == store.KindReset || (e.Kind == store.KindUser && e.ID == u.ID)
	})

	// Only a live subscription carries a specific event from A to B. B may
	// still be resubscribing when a write lands (it then sees a reset), so
	// write until one arrives as itself.
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		if time.Now().After(deadline) {
			t.Fatal("B never received one of A's events by pub/sub after the kill")
		}
		id := "after-" + time.Now().Format("150405.000000000")
		if err := a.PutSetting(ctx, id, []byte("x")); err != nil {
			t.Fatalf("PutSetting on A: %v", err)
		}
		if got, ok := tryEvent(events, time.Second, func(e store.Event) bool { return e.Kind == store.KindSetting && e.ID == id }); ok {
			t.Logf("resubscribed; event %+v after %d writes", got, i+1)
			break
		}
	}
}

// TestRedisUnavailable stops the server under a store: calls must fail
// with ErrUnavailable on their own, well before the caller's deadline.
func TestRedisUnavailable(t *testing.T) {
	srv := storetest.StartRedis(t)
	s := storetest.OpenRedis(t, storetest.URL(srv.URL))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	u, err := s.CreateUser(ctx, store.User{Username: "alice"})
	cancel()
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	srv.Stop()

	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Ping", func(ctx context.Context) error { return s.Ping(ctx) }},
		{"User", func(ctx context.Context) error { _, err := s.User(ctx, u.ID); return err }},
		{"UserByUsername", func(ctx context.Context) error { _, err := s.UserByUsername(ctx, "alice"); return err }},
		{"Users", func(ctx context.Context) error { _, err := s.Users(ctx); return err }},
		{"CreateUser", func(ctx context.Context) error { _, err := s.CreateUser(ctx, store.User{Username: "bob"}); return err }},
		{"UpdateUser", func(ctx context.Context) error {
			_, err := s.UpdateUser(ctx, u.ID, func(u *store.User) error { u.Suspended = true; return nil })
			return err
		}},
		{"PutSetting", func(ctx context.Context) error { return s.PutSetting(ctx, "k", []byte("v")) }},
		{"Version", func(ctx context.Context) error { _, err := s.Version(ctx); return err }},
		{"Snapshot", func(ctx context.Context) error { _, err := s.Snapshot(ctx); return err }},
		{"Restore", func(ctx context.Context) error { return s.Restore(ctx, store.Snapshot{}) }},
	}
	// Concurrently: each call has its own deadline, and the test stays short.
	var wg sync.WaitGroup
	for _, c := range calls {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			start := time.Now()
			err := c.call(ctx)
			if !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("%s with Redis down: err = %v, want ErrUnavailable", c.name, err)
			}
			if ctx.Err() != nil {
				t.Errorf("%s with Redis down took the caller's whole 5s deadline", c.name)
			}
			t.Logf("%s: %v after %v", c.name, err, time.Since(start).Round(time.Millisecond))
		})
	}
	wg.Wait()
}

// fillModel writes records of every kind, with values that survive only
// an exact copy (binary CSR and settings, permissions, certificates).
func fillModel(t *testing.T, ctx context.Context, s store.Store) {
	t.Helper()
	shared, err := s.CreateRole(ctx, store.Role{Name: "shared", IsShared: true, LdapGroups: []string{"cn=shared,ou=groups,dc=example,dc=org"}})
	if err != nil {
		t.Fatalf("CreateRole: %v", err)
	}
	for _, name := range []string{"carol", "alice", "bob"} {
		u, err := s.CreateUser(ctx, store.User{
			Username: name, PasswordHash: "hash-" + name, MQTTPublishPrefix: name + "/",
			GrantTypes:   []store.GrantType{{Method: store.GrantPassword, IsRequired: true}, {Method: store.GrantCertificate}},
			Certificates: []store.Certificate{{Fingerprint: "fp-" + name, CreatedAt: time.Date(2025, 1, 1, 0, 0, 0, 1, time.UTC)}},
		})
		if err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
		own, err := s.CreateRole(ctx, store.Role{Name: name + "-role", AutoGenerated: true, OwnerID: u.ID})
		if err != nil {
			t.Fatalf("CreateRole: %v", err)
		}
		if _, err := s.UpdateUser(ctx, u.ID, func(u *store.User) error {
			u.Roles, u.LdapRoles = []string{own.ID, shared.ID}, []string{shared.ID}
			return nil
		}); err != nil {
			t.Fatalf("UpdateUser: %v", err)
		}
		for _, kind := range []string{"login", "app"} {
			if _, err := s.CreateToken(ctx, store.Token{ID: name + "-" + kind, UserID: u.ID, Kind: kind, ExpiresAt: time.Now().Add(time.Hour).UTC()}); err != nil {
				t.Fatalf("CreateToken: %v", err)
			}
		}
	}
	if _, err := s.CreateRegistryRequest(ctx, store.RegistryRequest{Username: "dev", CredentialType: "certificate", CSR: []byte{0, 1, 0xfe, 0xff}, Granted: true, Result: []byte("cert")}); err != nil {
		t.Fatalf("CreateRegistryRequest: %v", err)
	}
	if err := s.PutSetting(ctx, "ca/key", []byte{0, 0x80, 0xff, '"', '\\'}); err != nil {
		t.Fatalf("PutSetting: %v", err)
	}
	if err := s.PutSetting(ctx, "registry", []byte(`{"open":true}`)); err != nil {
		t.Fatalf("PutSetting: %v", err)
	}
}

// compareReads checks that two stores answer the read calls alike.
func compareReads(t *testing.T, ctx context.Context, x, y store.Store) {
	t.Helper()
	xu, err1 := x.Users(ctx)
	yu, err2 := y.Users(ctx)
	if err1 != nil || err2 != nil || !equalJSON(xu, yu) {
		t.Errorf("Users differ: %v %v\n%+v\nvs\n%+v", err1, err2, xu, yu)
	}
	xr, err1 := x.Roles(ctx)
	yr, err2 := y.Roles(ctx)
	if err1 != nil || err2 != nil || !equalJSON(xr, yr) {
		t.Errorf("Roles differ: %v %v\n%+v\nvs\n%+v", err1, err2, xr, yr)
	}
	for _, u := range xu {
		xt, err1 := x.UserTokens(ctx, u.ID)
		yt, err2 := y.UserTokens(ctx, u.ID)
		if err1 != nil || err2 != nil || len(xt) != 2 || !equalJSON(xt, yt) {
			t.Errorf("UserTokens(%s) differ: %v %v\n%+v\nvs\n%+v", u.Username, err1, err2, xt, yt)
		}
		if got, err := y.UserByUsername(ctx, u.Username); err != nil || got.ID != u.ID {
			t.Errorf("UserByUsername(%s) = %q, %v; want %q", u.Username, got.ID, err, u.ID)
		}
	}
	xq, err1 := x.RegistryRequests(ctx)
	yq, err2 := y.RegistryRequests(ctx)
	if err1 != nil || err2 != nil || !equalJSON(xq, yq) {
		t.Errorf("RegistryRequests differ: %v %v", err1, err2)
	}
	for _, k := range []string{"ca/key", "registry"} {
		xv, err1 := x.Setting(ctx, k)
		yv, err2 := y.Setting(ctx, k)
		if err1 != nil || err2 != nil || string(xv) != string(yv) {
			t.Errorf("Setting(%s) differs: %q, %v vs %q, %v", k, xv, err1, yv, err2)
		}
	}
}

func equalJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// waitEvent returns the first event of ch that match accepts, failing the
// test if none arrives within d.
func waitEvent(t *testing.T, ch <-chan store.Event, d time.Duration, match func(store.Event) bool) store.Event {
	t.Helper()
	e, ok := tryEvent(ch, d, match)
	if !ok {
		t.Fatalf("no matching event within %v", d)
	}
	return e
}

// tryEvent is waitEvent reporting a timeout or a closed channel as !ok.
func tryEvent(ch <-chan store.Event, d time.Duration, match func(store.Event) bool) (store.Event, bool) {
	deadline := time.After(d)
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				return store.Event{}, false
			}
			if match(e) {
				return e, true
			}
		case <-deadline:
			return store.Event{}, false
		}
	}
}
