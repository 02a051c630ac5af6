package account

import (
	"slices"
	"testing"

	"github.com/warden-mqtt/warden/acl"
)

// TestKeepKnownIDs: a replaced permission set keeps an ID only where the
// role holds a permission with it, and only once; other IDs are dropped
// for the store to assign.
func TestKeepKnownIDs(t *testing.T) {
	old := []acl.Permission{{ID: "p1"}, {ID: "p2"}}
	for _, tc := range []struct {
		name string
		next []string
		want []string
	}{
		{"known IDs stay", []string{"p2", "p1"}, []string{"p2", "p1"}},
		{"an unknown ID goes", []string{"x", "p1"}, []string{"", "p1"}},
		{"a repeated ID stays on its first use only", []string{"p1", "p1"}, []string{"p1", ""}},
		{"no ID gets none", []string{"", ""}, []string{"", ""}},
	} {
		next := make([]acl.Permission, len(tc.next))
		for i, id := range tc.next {
			next[i] = acl.Permission{ID: id, Resource: "r", Operation: acl.OpRead, Context: acl.ContextMQTT}
		}
		got := keepKnownIDs(old, next)
		ids := make([]string, len(got))
		for i, p := range got {
			ids[i] = p.ID
		}
		if !slices.Equal(ids, tc.want) {
			t.Errorf("%s: IDs %q, want %q", tc.name, ids, tc.want)
		}
		if next[0].ID != tc.next[0] {
			t.Errorf("%s: keepKnownIDs changed its input", tc.name)
		}
	}
}
