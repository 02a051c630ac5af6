package store

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
)

// decodeBucket decodes every value of a dumped bucket into *out, in key
// order so the result does not depend on map iteration.
func decodeBucket[T any](bucket map[string][]byte, out *[]T) error {
	keys := make([]string, 0, len(bucket))
	for k := range bucket {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var v T
		if err := json.Unmarshal(bucket[k], &v); err != nil {
			return fmt.Errorf("snapshot: decode %s: %w", k, err)
		}
		*out = append(*out, v)
	}
	return nil
}

// snapshotBuckets checks a snapshot against the invariants the store
// enforces on single writes and turns it into buckets, indexes included.
// A restore that would break uniqueness or leave dangling references is
// refused as a whole, before anything is written.
func snapshotBuckets(s Snapshot) (map[string]map[string][]byte, error) {
	data := map[string]map[string][]byte{
		bucketUsers: {}, bucketUsernames: {}, bucketRoles: {}, bucketRoleNames: {},
		bucketTokens: {}, bucketRegistry: {}, bucketSettings: {}, bucketUsernameFold: {},
	}
	put := func(bucket, key string, v any) error {
		raw, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode %s/%s: %w", bucket, key, err)
		}
		data[bucket][key] = raw
		return nil
	}
	for _, r := range s.Roles {
		if err := validName("role id", r.ID); err != nil {
			return nil, err
		}
		if err := validName("role name", r.Name); err != nil {
			return nil, err
		}
		if err := validPermissions(r.Permissions); err != nil {
			return nil, fmt.Errorf("role %q: %w", r.Name, err)
		}
		if err := ValidLdapGroups(r.LdapGroups); err != nil {
			return nil, fmt.Errorf("role %q: %w", r.Name, err)
		}
		if _, dup := data[bucketRoles][r.ID]; dup {
			return nil, fmt.Errorf("%w: role id %q appears twice", invalid, r.ID)
		}
		if _, dup := data[bucketRoleNames][r.Name]; dup {
			return nil, fmt.Errorf("%w: role name %q appears twice", invalid, r.Name)
		}
		if err := put(bucketRoles, r.ID, r); err != nil {
			return nil, err
		}
		data[bucketRoleNames][r.Name] = []byte(r.ID)
	}
	for _, u := range s.Users {
		if err := validName("user id", u.ID); err != nil {
			return nil, err
		}
		if err := validName("username", u.Username); err != nil {
			return nil, err
		}
		if _, dup := data[bucketUsers][u.ID]; dup {
			return nil, fmt.Errorf("%w: user id %q appears twice", invalid, u.ID)
		}
		if _, dup := data[bucketUsernames][u.Username]; dup {
			return nil, fmt.Errorf("%w: username %q appears twice", invalid, u.Username)
		}
		for _, rid := range slices.Concat(u.Roles, u.LdapRoles) {
			if _, ok := data[bucketRoles][rid]; !ok {
				return nil, fmt.Errorf("%w: user %q holds unknown role %q", invalid, u.Username, rid)
			}
		}
		if err := put(bucketUsers, u.ID, u); err != nil {
			return nil, err
		}
		data[bucketUsernames][u.Username] = []byte(u.ID)
		// Names that fold alike (a backup from before the rule) are kept,
		// both listed under their key.
		k := FoldUsername(u.Username)
		if prev := data[bucketUsernameFold][k]; prev != nil {
			data[bucketUsernameFold][k] = append(append(prev, 0), u.ID...)
		} else {
			data[bucketUsernameFold][k] = []byte(u.ID)
		}
	}
	for _, t := range s.Tokens {
		if err := validName("token id", t.ID); err != nil {
			return nil, err
		}
		if _, ok := data[bucketUsers][t.UserID]; !ok {
			return nil, fmt.Errorf("%w: token of unknown user %q", invalid, t.UserID)
		}
		if _, dup := data[bucketTokens][t.ID]; dup {
			return nil, fmt.Errorf("%w: token id appears twice", invalid)
		}
		if err := put(bucketTokens, t.ID, t); err != nil {
			return nil, err
		}
		ub := userTokensBucket(t.UserID)
		if data[ub] == nil {
			data[ub] = map[string][]byte{}
		}
		data[ub][t.ID] = []byte{1}
	}
	// Parents are checked once every token is in: a snapshot lists them
	// in any order.
	for _, t := range s.Tokens {
		if t.ParentID == "" {
			continue
		}
		var p Token
		if raw, ok := data[bucketTokens][t.ParentID]; !ok || json.Unmarshal(raw, &p) != nil || p.UserID != t.UserID || p.ID == t.ID {
			return nil, fmt.Errorf("%w: token whose parent is missing or another user's", invalid)
		}
		cb := tokenChildrenBucket(t.ParentID)
		if data[cb] == nil {
			data[cb] = map[string][]byte{}
		}
		data[cb][t.ID] = []byte{1}
	}
	for _, r := range s.RegistryRequests {
		if err := validName("registry username", r.Username); err != nil {
			return nil, err
		}
		if _, dup := data[bucketRegistry][r.Username]; dup {
			return nil, fmt.Errorf("%w: registry request %q appears twice", invalid, r.Username)
		}
		if err := put(bucketRegistry, r.Username, r); err != nil {
			return nil, err
		}
	}
	for k, v := range s.Settings {
		if err := validName("setting key", k); err != nil {
			return nil, err
		}
		data[bucketSettings][k] = append([]byte(nil), v...)
	}
	return data, nil
}
