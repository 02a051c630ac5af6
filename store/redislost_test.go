package store_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/internal/logbuf"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// lostChecks are the calls a node makes; with the model lost, each must
// fail with ErrModelLost (a kind of ErrUnavailable), never answer from
// the empty Redis.
func lostChecks(t *testing.T, ctx context.Context, s store.Store, userID string) {
	t.Helper()
	for name, call := range map[string]func() error{
		"User":           func() error { _, err := s.User(ctx, userID); return err },
		"UserByUsername": func() error { _, err := s.UserByUsername(ctx, "alice"); return err },
		"Users":          func() error { _, err := s.Users(ctx); return err },
		"Setting":        func() error { _, err := s.Setting(ctx, "some-setting"); return err },
		"CreateUser":     func() error { _, err := s.CreateUser(ctx, store.User{Username: "intruder"}); return err },
		"PutSetting":     func() error { return s.PutSetting(ctx, "bootstrap", []byte("x")) },
		"Version":        func() error { _, err := s.Version(ctx); return err },
		"Snapshot":       func() error { _, err := s.Snapshot(ctx); return err },
		"Ping":           func() error { return s.Ping(ctx) },
	} {
		err := call()
		if !errors.Is(err, store.ErrModelLost) || !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s with the model lost: %v, want ErrModelLost (an ErrUnavailable)", name, err)
		}
	}
}

// noReset fails if a reset (or any event) reaches the consumer within d:
// a node must not tell its caches that the model changed into nothing.
func noReset(t *testing.T, events <-chan store.Event, d time.Duration) {
	t.Helper()
	if e, ok := tryEvent(events, d, func(store.Event) bool { return true }); ok {
		t.Fatalf("the node delivered %+v after Redis lost its data; it must keep what it has", e)
	}
}

// TestRedisFlushIsALostModel: FLUSHALL under two running nodes. Neither
// answers from the empty Redis (no user "not found", no reset event that
// would drop every cached user), neither writes into it, and a node
// started meanwhile does not take it for a first start. A restore of a
// backup brings every node back with one reset.
func TestRedisFlushIsALostModel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	srv := storetest.StartRedis(t)
	rc := srv.Client(t)
	var logs logbuf.Buffer
	a := storetest.OpenRedis(t, storetest.URL(srv.URL), storetest.Logger(slog.New(slog.NewTextHandler(&logs, nil))))
	b := storetest.OpenRedis(t, storetest.URL(srv.URL))
	events, err := b.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	u, err := a.CreateUser(ctx, store.User{Username: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	waitEvent(t, events, 5*time.Second, func(e store.Event) bool { return e.ID == u.ID })
	backup, err := a.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}

	if err := rc.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// A read finds it at once, on either node.
	if _, err := b.User(ctx, u.ID); !errors.Is(err, store.ErrModelLost) {
		t.Fatalf("reading alice after FLUSHALL: %v, want ErrModelLost (not ErrNotFound)", err)
	}
	lostChecks(t, ctx, a, u.ID)
	lostChecks(t, ctx, b, u.ID)
	// One error line says what happened and how to restore.
	if out := logs.String(); strings.Count(out, "level=ERROR") != 1 || !strings.Contains(out, "Redis lost warden's data") ||
		!strings.Contains(out, "flushed or restarted without persistence") || !strings.Contains(out, "warden restore FILE") {
		t.Errorf("node a's log does not say once what happened and how to restore:\n%s", out)
	}
	// Past two polls: still no event, and nothing was written back but
	// the record of the lost model.
	noReset(t, events, 5*time.Second)
	keys, err := rc.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != "{warden}:lost" {
		t.Errorf("Redis holds %v after the loss, want only {warden}:lost", keys)
	}

	// A node started now is not on a first start: it refuses to work.
	c := storetest.OpenRedis(t, storetest.URL(srv.URL))
	lostChecks(t, ctx, c, u.ID)

	// Restoring through the new node ends the lost state everywhere.
	if err := store.RestoreBackup(ctx, c, backup); err != nil {
		t.Fatalf("restore into the lost model: %v", err)
	}
	waitEvent(t, events, 5*time.Second, func(e store.Event) bool { return e.Kind == store.KindReset })
	for name, s := range map[string]store.Store{"a": a, "b": b, "c": c} {
		// Each node hears of the restore on its own pub/sub connection.
		deadline := time.Now().Add(5 * time.Second)
		for err := s.Ping(ctx); err != nil; err = s.Ping(ctx) {
			if time.Now().After(deadline) {
				t.Fatalf("node %s 5 s after the restore: Ping %v", name, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if got, err := s.User(ctx, u.ID); err != nil || got.Username != "alice" {
			t.Errorf("node %s after the restore: alice %+v, %v", name, got, err)
		}
	}
	v2, err := a.CreateUser(ctx, store.User{Username: "bob"})
	if err != nil {
		t.Fatalf("writing after the restore: %v", err)
	}
	waitEvent(t, events, 5*time.Second, func(e store.Event) bool { return e.ID == v2.ID })
	if n, err := rc.Exists(ctx, "{warden}:lost").Result(); err != nil || n != 0 {
		t.Errorf("{warden}:lost still there after the restore: %d %v", n, err)
	}
	if out := logs.String(); !strings.Contains(out, "Redis store restored") {
		t.Errorf("node a's log does not say it recovered:\n%s", out)
	}
}

// TestRedisRestartWithoutPersistenceIsALostModel: Redis is restarted
// empty under a running node. The node reconnects and resubscribes, and
// must not take the empty server's version 0 for missed events to reset
// on; it reports the loss.
func TestRedisRestartWithoutPersistenceIsALostModel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	srv := storetest.StartRedis(t)
	a := storetest.OpenRedis(t, storetest.URL(srv.URL))
	events, err := a.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	u, err := a.CreateUser(ctx, store.User{Username: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	waitEvent(t, events, 5*time.Second, func(e store.Event) bool { return e.ID == u.ID })
	backup, err := a.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	srv = srv.RestartEmpty(t)

	// Idle, the node finds out by itself (resubscription or poll).
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := a.Ping(ctx)
		if errors.Is(err, store.ErrModelLost) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Ping 10 s after Redis restarted empty: %v, want ErrModelLost", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	noReset(t, events, 5*time.Second)
	lostChecks(t, ctx, a, u.ID)

	// `warden restore` from another process: a store of its own.
	r := storetest.OpenRedis(t, storetest.URL(srv.URL))
	if err := store.RestoreBackup(ctx, r, backup); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, events, 10*time.Second, func(e store.Event) bool { return e.Kind == store.KindReset })
	if got, err := a.User(ctx, u.ID); err != nil || got.Username != "alice" {
		t.Fatalf("after the restore: %+v %v", got, err)
	}
}

// TestRedisFirstStartAndStartingOver: an empty Redis is a first start;
// a store written by a release without a model identity opens with its
// data; deleting {warden}:lost (all nodes stopped) starts over empty.
func TestRedisFirstStartAndStartingOver(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	srv := storetest.StartRedis(t)
	rc := srv.Client(t)
	a := storetest.OpenRedis(t, storetest.URL(srv.URL))
	if _, err := a.CreateUser(ctx, store.User{Username: "first"}); err != nil {
		t.Fatalf("first start on an empty Redis: %v", err)
	}
	_ = a.Close()

	// An older release's store: data, no identity.
	if err := rc.Del(ctx, "{warden}:model").Err(); err != nil {
		t.Fatal(err)
	}
	b := storetest.OpenRedis(t, storetest.URL(srv.URL))
	if _, err := b.UserByUsername(ctx, "first"); err != nil {
		t.Fatalf("a store without an identity, reopened: %v", err)
	}

	// Lost under b, then every node stopped and the record deleted.
	if err := rc.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.Ping(ctx); !errors.Is(err, store.ErrModelLost) {
		t.Fatalf("Ping after FLUSHALL: %v", err)
	}
	_ = b.Close()
	if n, err := rc.Exists(ctx, "{warden}:lost").Result(); err != nil || n != 1 {
		t.Fatalf("{warden}:lost: %d %v, want it written by the node that saw the loss", n, err)
	}
	if err := rc.Del(ctx, "{warden}:lost").Err(); err != nil {
		t.Fatal(err)
	}
	c := storetest.OpenRedis(t, storetest.URL(srv.URL))
	if _, err := c.CreateUser(ctx, store.User{Username: "again"}); err != nil {
		t.Fatalf("starting over after deleting {warden}:lost: %v", err)
	}
}

// TestRedisRestoreReachesNodesThatMissedTheLoss: one node notices that
// Redis lost the model and an operator restores before another node's next
// poll. The restore's version counter starts again from 1, below the
// version the second node delivered last; that node must still reset on the
// restore and follow the commits after it, or its caches keep revoked users
// and tokens.
func TestRedisRestoreReachesNodesThatMissedTheLoss(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	srv := storetest.StartRedis(t)
	a := storetest.OpenRedis(t, storetest.URL(srv.URL))
	b := storetest.OpenRedis(t, storetest.URL(srv.URL))
	events, err := b.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var last string
	for i := range 8 {
		u, err := a.CreateUser(ctx, store.User{Username: fmt.Sprintf("user-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		last = u.ID
	}
	waitEvent(t, events, 5*time.Second, func(e store.Event) bool { return e.ID == last })
	backup, err := a.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Client(t).FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	_ = a.Ping(ctx) // a notices the loss; b has not polled yet
	if err := a.Restore(ctx, backup); err != nil {
		t.Fatal(err)
	}
	if _, ok := tryEvent(events, 2*time.Second, func(e store.Event) bool { return e.Kind == store.KindReset }); !ok {
		t.Fatal("the node that missed the loss got no reset for the restore")
	}
	u, err := a.CreateUser(ctx, store.User{Username: "after-restore"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tryEvent(events, 5*time.Second, func(e store.Event) bool { return e.ID == u.ID }); !ok {
		t.Fatal("the node that missed the loss did not follow the commit after the restore")
	}
}
