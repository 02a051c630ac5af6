package store_test

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// A store written before the username fold index existed: the index is
// built the first time a write needs it, so an old "admin" still blocks a
// new "Admin". Simulated by removing the index from a store's file.
func TestFoldIndexBuiltForOldBoltData(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "warden.db")
	s := storetest.OpenBolt(t, storetest.Path(path))
	if _, err := s.CreateUser(ctx, store.User{Username: "admin"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(ctx, store.User{Username: "Jos\u00e9"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("usernamefold")) }); err != nil {
		t.Fatalf("removing the index: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s = storetest.OpenBolt(t, storetest.Path(path))
	if u, err := s.UserByUsername(ctx, "admin"); err != nil || u.Username != "admin" {
		t.Fatalf("old user after reopening: %+v, %v", u, err)
	}
	if _, err := s.CreateUser(ctx, store.User{Username: "Admin"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateUser(Admin) beside an old admin: err = %v, want ErrConflict", err)
	}
	// A decomposed (NFD) spelling finds the NFC name.
	if u, err := s.UserByUsername(ctx, "Jose\u0301"); err != nil || u.Username != "Jos\u00e9" {
		t.Errorf("UserByUsername(NFD) = %+v, %v", u, err)
	}
}

// The same on Redis: the index key is gone (an older warden wrote the
// data), a newly started node rebuilds it; an entry naming a user that no
// longer exists never refuses a free name.
func TestFoldIndexBuiltForOldRedisData(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := storetest.StartRedis(t)
	client := srv.Client(t)
	old := storetest.OpenRedis(t, storetest.URL(srv.URL))
	if _, err := old.CreateUser(ctx, store.User{Username: "admin"}); err != nil {
		t.Fatal(err)
	}
	if err := client.Del(ctx, "{warden}:b:usernamefold").Err(); err != nil {
		t.Fatal(err)
	}
	s := storetest.OpenRedis(t, storetest.URL(srv.URL))
	if _, err := s.CreateUser(ctx, store.User{Username: "ADMIN"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateUser(ADMIN) beside an old admin: err = %v, want ErrConflict", err)
	}
	if err := client.HSet(ctx, "{warden}:b:usernamefold", "ghost", "no-such-user-id").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(ctx, store.User{Username: "Ghost"}); err != nil {
		t.Errorf("CreateUser(Ghost) with a stale index entry: %v", err)
	}
}

// TestOldDecomposedNameFoundBeforeAnyWrite: an older release stored a
// name as typed, decomposed (NFD); logins now look names up in NFC. The
// device must be found on the first lookup after an upgrade, before
// anything writes (the fold index that finds it is built on first use).
func TestOldDecomposedNameFoundBeforeAnyWrite(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "warden.db")
	s := storetest.OpenBolt(t, storetest.Path(path))
	u, err := s.CreateUser(ctx, store.User{Username: "Jos\u00e9"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Rewrite it as the older release left it: the name decomposed, no
	// fold index.
	const nfd = "Jose\u0301"
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket([]byte("usernamefold")); err != nil {
			return err
		}
		names := tx.Bucket([]byte("usernames"))
		if err := names.Delete([]byte(u.Username)); err != nil {
			return err
		}
		if err := names.Put([]byte(nfd), []byte(u.ID)); err != nil {
			return err
		}
		users := tx.Bucket([]byte("users"))
		var rec map[string]any
		if err := json.Unmarshal(users.Get([]byte(u.ID)), &rec); err != nil {
			return err
		}
		rec["username"] = nfd
		raw, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return users.Put([]byte(u.ID), raw)
	})
	if err != nil {
		t.Fatalf("writing the old form: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s = storetest.OpenBolt(t, storetest.Path(path))
	if got, err := s.UserByUsername(ctx, "Jos\u00e9"); err != nil || got.ID != u.ID {
		t.Fatalf("UserByUsername(NFC) of a name stored decomposed, before any write: %+v, %v", got, err)
	}
}
