package authhook_test

import (
	"context"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/internal/poll"
	"github.com/warden-mqtt/warden/store"
)

// TestDirectoryRolesGrantMQTT: a role the directory gave a user
// (LdapRoles) grants its mqtt permissions as a role given by hand does:
// subscribe, delivery and publish; when the directory takes it away, the
// live subscription stops delivering.
func TestDirectoryRolesGrantMQTT(t *testing.T) {
	n := startNode(t, nodeOpts{})
	ctx := context.Background()
	plant, err := n.st.CreateRole(ctx, store.Role{Name: "plant", IsShared: true, LdapGroups: []string{"cn=plant,ou=groups,dc=example,dc=org"},
		Permissions: []acl.Permission{perm("plant/#", acl.OpReadWrite)}})
	if err != nil {
		t.Fatal(err)
	}
	dora := addUser(t, n.st, "dora", "dora-secret-12", nil, func(u *store.User) { u.LdapRoles = []string{plant.ID} })
	addUser(t, n.st, "w", "writer-secret1", []acl.Permission{perm("#", acl.OpReadWrite)}, nil)
	w := n.mustConnect(t, connectOpts{username: "w", password: "writer-secret1", clientID: "w", clean: true})
	dev := n.mustConnect(t, connectOpts{version: 5, username: "dora", password: "dora-secret-12", clientID: "dora", clean: true})
	if code := dev.subscribe("plant/#")[0]; code > 2 {
		t.Fatalf("subscribe plant/# through the directory's role: SUBACK 0x%02x, want granted", code)
	}
	if code := dev.subscribe("other/#")[0]; code <= 2 {
		t.Fatalf("subscribe other/#, which no role grants: SUBACK 0x%02x, want refused", code)
	}
	w.publish("plant/1", 0, "before", 0)
	dev.expect(packets.Publish, 3*time.Second)
	w.subscribe("plant/#")
	dev.publish("plant/2", 0, "from dora", 0)
	w.expect(packets.Publish, 3*time.Second)
	dev.expect(packets.Publish, 3*time.Second) // its own message, on its plant/# subscription

	// The directory takes the role away (a sync at the next login).
	if _, err := n.st.UpdateUser(ctx, dora.ID, func(u *store.User) error { u.LdapRoles = nil; return nil }); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 2*time.Second, "subscription pruned", func() bool {
		return n.broker.Server().Topics.Subscribers("plant/3").Subscriptions["dora"].Filter == ""
	})
	w.publish("plant/3", 0, "after", 0)
	dev.noPublish(300 * time.Millisecond)
}
