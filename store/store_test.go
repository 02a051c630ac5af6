package store_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

func TestBoltContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		return storetest.OpenBolt(t)
	})
}

func TestBoltPersists(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	path := filepath.Join(t.TempDir(), "sub", "warden.db")
	s := storetest.OpenBolt(t, storetest.Path(path))
	u, err := s.CreateUser(ctx, store.User{Username: "alice", PasswordHash: "h"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if _, err := s.CreateToken(ctx, store.Token{ID: "tok", UserID: u.ID}); err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	if err := s.PutSetting(ctx, "ca", []byte("pem")); err != nil {
		t.Fatalf("PutSetting: %v", err)
	}
	before, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = storetest.OpenBolt(t, storetest.Path(path))
	after, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatalf("Snapshot after reopen: %v", err)
	}
	if diff := storetest.SameModel(after, before); diff != "" {
		t.Errorf("model after reopen differs:\n%s", diff)
	}
	if after.Version != before.Version {
		t.Errorf("Version after reopen = %d, want %d", after.Version, before.Version)
	}
	if got, err := s.UserByUsername(ctx, "alice"); err != nil || got.ID != u.ID {
		t.Errorf("UserByUsername after reopen = %q, %v; want %q", got.ID, err, u.ID)
	}
	if toks, err := s.UserTokens(ctx, u.ID); err != nil || len(toks) != 1 {
		t.Errorf("UserTokens after reopen = %v, %v; want 1", toks, err)
	}
	// Versions carry on from the persisted one, so nodes never see one reused.
	ch, err := s.Watch(ctx)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if _, err := s.CreateUser(ctx, store.User{Username: "bob"}); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	select {
	case e := <-ch:
		if e.Version != before.Version+1 {
			t.Errorf("first event after reopen has Version %d, want %d", e.Version, before.Version+1)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event after reopen")
	}
}

func TestBoltFileInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "warden.db")
	storetest.OpenBolt(t, storetest.Path(path))

	type result struct {
		s   store.Store
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		s, err := store.OpenBolt(path)
		done <- result{s, err}
	}()
	select {
	case r := <-done:
		if r.err == nil {
			_ = r.s.Close()
			t.Fatal("second OpenBolt on a file in use succeeded")
		}
		if !strings.Contains(r.err.Error(), "in use") {
			t.Errorf("second OpenBolt: err = %v, want it to say the file is in use", r.err)
		}
		t.Logf("second OpenBolt failed after %v: %v", time.Since(start).Round(time.Millisecond), r.err)
	case <-time.After(3 * time.Second):
		t.Fatal("second OpenBolt on a file in use still blocked after 3s")
	}
}
