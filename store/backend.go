package store

import (
	"context"
	"encoding/json"
	"fmt"
)

// Buckets of the model. A bucket is a flat map of keys to values (a bbolt
// bucket, a Redis hash). Per-user token indexes live in one bucket per user
// so listing or revoking a user's tokens does not scan every token.
const (
	bucketUsers     = "users"     // user ID -> User JSON
	bucketUsernames = "usernames" // username -> user ID
	bucketRoles     = "roles"     // role ID -> Role JSON
	bucketRoleNames = "rolenames" // role name -> role ID
	bucketTokens    = "tokens"    // token ID -> Token JSON
	bucketRegistry  = "registry"  // username -> RegistryRequest JSON
	bucketSettings  = "settings"  // key -> raw bytes
)

// userTokensBucket indexes the token IDs of one user.
func userTokensBucket(userID string) string { return "usertokens/" + userID }

// tokenChildrenBucket indexes the IDs of the tokens obtained with one
// token (Token.ParentID), so revoking it finds them without a scan.
func tokenChildrenBucket(tokenID string) string { return "tokenchildren/" + tokenID }

// txn is one transaction on a backend. Reads see the transaction's own
// earlier writes. Writes become visible to others only when the
// transaction commits, all at once.
type txn interface {
	// get returns the value, or nil when the key is absent.
	get(bucket, key string) ([]byte, error)
	// forEach calls fn for every key of the bucket, in key order.
	forEach(bucket string, fn func(key string, val []byte) error) error
	// keys returns the bucket's keys that begin with prefix, in key
	// order, without reading their values.
	keys(bucket, prefix string) ([]string, error)
	put(bucket, key string, val []byte) error
	del(bucket, key string) error
	// drop removes a whole bucket.
	drop(bucket string) error
	// emit queues an event published when (and only if) the commit succeeds.
	emit(e Event)
}

// backend is what an implementation provides; the model logic (model.go)
// is shared.
type backend interface {
	// view runs fn on a read-only transaction.
	view(ctx context.Context, fn func(txn) error) error
	// update runs fn on a read-write transaction and commits it atomically.
	// An optimistic backend reruns fn when a concurrent commit changed
	// what fn read, so fn must have no side effects beyond the txn.
	update(ctx context.Context, fn func(txn) error) error
	// dump returns every bucket and the model version, consistently.
	dump(ctx context.Context) (map[string]map[string][]byte, uint64, error)
	// load replaces every bucket atomically and publishes a reset event.
	// The settings keep selects (see keepsSetting) survive with their
	// current values, read and written back in the same atomic step.
	load(ctx context.Context, data map[string]map[string][]byte, keep []string) error
	version(ctx context.Context) (uint64, error)
	ping(ctx context.Context) error
	close() error
}

// getJSON decodes the record at bucket/key into v; ErrNotFound if absent.
func getJSON(tx txn, bucket, key string, v any) error {
	raw, err := tx.get(bucket, key)
	if err != nil {
		return err
	}
	if raw == nil {
		return ErrNotFound
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode %s/%s: %w", bucket, key, err)
	}
	return nil
}

// putJSON encodes v and writes it at bucket/key.
func putJSON(tx txn, bucket, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", bucket, key, err)
	}
	return tx.put(bucket, key, raw)
}

// listJSON decodes every record of a bucket.
func listJSON[T any](tx txn, bucket string) ([]T, error) {
	var out []T
	err := tx.forEach(bucket, func(key string, val []byte) error {
		var v T
		if err := json.Unmarshal(val, &v); err != nil {
			return fmt.Errorf("decode %s/%s: %w", bucket, key, err)
		}
		out = append(out, v)
		return nil
	})
	return out, err
}
