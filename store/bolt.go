package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// metaBucket holds the model version; it is not part of the model, so
// dumps skip it.
const (
	metaBucket = "_meta"
	metaVer    = "version"
)

// OpenBolt opens (creating if needed) the embedded store in the file at
// path. The file is locked: a second process opening the same file gets
// an error after one second instead of waiting forever.
func OpenBolt(path string) (Store, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open store %s: %w", path, ErrInUse)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	f := newFeed()
	return newModel(&boltBackend{db: db, feed: f}, f), nil
}

type boltBackend struct {
	db   *bolt.DB
	feed *feed
}

// boltTxn adapts a bbolt transaction. bbolt serializes writers, so reads
// inside update already see a consistent, exclusive state.
type boltTxn struct {
	tx     *bolt.Tx
	events []Event
}

func (t *boltTxn) get(bucket, key string) ([]byte, error) {
	b := t.tx.Bucket([]byte(bucket))
	if b == nil {
		return nil, nil
	}
	v := b.Get([]byte(key))
	if v == nil {
		return nil, nil
	}
	// bbolt's memory is valid only during the transaction. bytes.Clone
	// keeps an empty value non-nil: nil means absent.
	return bytes.Clone(v), nil
}

func (t *boltTxn) forEach(bucket string, fn func(string, []byte) error) error {
	b := t.tx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, v []byte) error {
		return fn(string(k), bytes.Clone(v))
	})
}

func (t *boltTxn) keys(bucket, prefix string) ([]string, error) {
	b := t.tx.Bucket([]byte(bucket))
	if b == nil {
		return nil, nil
	}
	var out []string
	c := b.Cursor()
	for k, _ := c.Seek([]byte(prefix)); k != nil && bytes.HasPrefix(k, []byte(prefix)); k, _ = c.Next() {
		out = append(out, string(k))
	}
	return out, nil
}

func (t *boltTxn) put(bucket, key string, val []byte) error {
	b, err := t.tx.CreateBucketIfNotExists([]byte(bucket))
	if err != nil {
		return err
	}
	if val == nil {
		// Stored as empty, not nil, so it reads back as present.
		val = []byte{}
	}
	return b.Put([]byte(key), val)
}

func (t *boltTxn) del(bucket, key string) error {
	b := t.tx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	return b.Delete([]byte(key))
}

func (t *boltTxn) drop(bucket string) error {
	err := t.tx.DeleteBucket([]byte(bucket))
	if errors.Is(err, bolterrors.ErrBucketNotFound) {
		return nil
	}
	return err
}

func (t *boltTxn) emit(e Event) { t.events = append(t.events, e) }

func (b *boltBackend) view(ctx context.Context, fn func(txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.wrap(b.db.View(func(tx *bolt.Tx) error { return fn(&boltTxn{tx: tx}) }))
}

func (b *boltBackend) update(ctx context.Context, fn func(txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var events []Event
	err := b.db.Update(func(tx *bolt.Tx) error {
		t := &boltTxn{tx: tx}
		if err := fn(t); err != nil {
			return err
		}
		if len(t.events) == 0 {
			return nil
		}
		ver, err := bumpVersion(tx)
		if err != nil {
			return err
		}
		for i := range t.events {
			t.events[i].Version = ver
		}
		events = t.events
		return nil
	})
	if err != nil {
		return b.wrap(err)
	}
	// Published after commit, so a consumer never sees an event for a
	// write that was rolled back.
	b.feed.publish(events...)
	return nil
}

func bumpVersion(tx *bolt.Tx) (uint64, error) {
	m, err := tx.CreateBucketIfNotExists([]byte(metaBucket))
	if err != nil {
		return 0, err
	}
	ver := readVersion(m) + 1
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], ver)
	return ver, m.Put([]byte(metaVer), buf[:])
}

func readVersion(m *bolt.Bucket) uint64 {
	if m == nil {
		return 0
	}
	v := m.Get([]byte(metaVer))
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func (b *boltBackend) dump(ctx context.Context) (map[string]map[string][]byte, uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	data := map[string]map[string][]byte{}
	var ver uint64
	err := b.db.View(func(tx *bolt.Tx) error {
		ver = readVersion(tx.Bucket([]byte(metaBucket)))
		return tx.ForEach(func(name []byte, bk *bolt.Bucket) error {
			if string(name) == metaBucket {
				return nil
			}
			m := map[string][]byte{}
			if err := bk.ForEach(func(k, v []byte) error {
				m[string(k)] = bytes.Clone(v)
				return nil
			}); err != nil {
				return err
			}
			data[string(name)] = m
			return nil
		})
	})
	if err != nil {
		return nil, 0, b.wrap(err)
	}
	return data, ver, nil
}

func (b *boltBackend) load(ctx context.Context, data map[string]map[string][]byte, keep []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var ver uint64
	err := b.db.Update(func(tx *bolt.Tx) error {
		kept := map[string][]byte{}
		if sb := tx.Bucket([]byte(bucketSettings)); sb != nil && len(keep) > 0 {
			if err := sb.ForEach(func(k, v []byte) error {
				if keepsSetting(keep, string(k)) {
					kept[string(k)] = bytes.Clone(v)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		var names [][]byte
		if err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			if string(name) != metaBucket {
				names = append(names, append([]byte(nil), name...))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, n := range names {
			if err := tx.DeleteBucket(n); err != nil {
				return err
			}
		}
		for name, kv := range data {
			if name == metaBucket || len(kv) == 0 {
				continue
			}
			bk, err := tx.CreateBucket([]byte(name))
			if err != nil {
				return err
			}
			for k, v := range kv {
				if err := bk.Put([]byte(k), v); err != nil {
					return err
				}
			}
		}
		if len(kept) > 0 {
			sb, err := tx.CreateBucketIfNotExists([]byte(bucketSettings))
			if err != nil {
				return err
			}
			for k, v := range kept {
				if err := sb.Put([]byte(k), v); err != nil {
					return err
				}
			}
		}
		var err error
		ver, err = bumpVersion(tx)
		return err
	})
	if err != nil {
		return b.wrap(err)
	}
	b.feed.publish(Event{Kind: KindReset, Version: ver})
	return nil
}

func (b *boltBackend) version(ctx context.Context) (uint64, error) {
	var ver uint64
	err := b.view(ctx, func(t txn) error {
		ver = readVersion(t.(*boltTxn).tx.Bucket([]byte(metaBucket)))
		return nil
	})
	return ver, err
}

func (b *boltBackend) ping(ctx context.Context) error {
	return b.view(ctx, func(txn) error { return nil })
}

func (b *boltBackend) close() error { return b.db.Close() }

// wrap maps bbolt's closed-database error to ErrClosed.
func (b *boltBackend) wrap(err error) error {
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}
