package authhook_test

import (
	"context"
	"errors"
	"testing"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/store"
)

// TestRightsAsTheEmbeddedBrokerDecides: a webhook surface asking for a
// client's rights gets the embedded broker's answers: placeholders bound
// to the username and client ID, the publish prefix applied before the
// write check, the coverage rule for filters, and nothing for a user who
// is unknown or suspended.
func TestRightsAsTheEmbeddedBrokerDecides(t *testing.T) {
	t.Parallel()
	n := startNode(t, nodeOpts{})
	ctx := context.Background()
	addUser(t, n.st, "dev", "dev-secret-123", []acl.Permission{perm("d/{username}/{clientId}/#", acl.OpReadWrite), perm("cmd/#", acl.OpRead)}, nil)
	addUser(t, n.st, "pre", "pre-secret-123", []acl.Permission{perm("site/#", acl.OpWrite)}, func(u *store.User) { u.MQTTPublishPrefix = "site/" })
	addUser(t, n.st, "off", "off-secret-123", []acl.Permission{perm("#", acl.OpReadWrite)}, func(u *store.User) { u.Suspended = true })

	r, err := n.hook.Rights(ctx, "dev", "c1")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		topic string
		want  bool
	}{{"d/dev/c1/x", true}, {"d/dev/c2/x", false}, {"d/other/c1/x", false}, {"cmd/1", false}} {
		if got, ok := r.Publish(c.topic); ok != c.want || got != c.topic {
			t.Errorf("dev publish %q: %q %v, want %v", c.topic, got, ok, c.want)
		}
	}
	for _, c := range []struct {
		filter string
		want   bool
	}{{"d/dev/c1/#", true}, {"d/dev/+/#", false}, {"cmd/+", true}, {"#", false}} {
		if got := r.Subscribe(c.filter); got != c.want {
			t.Errorf("dev subscribe %q: %v, want %v", c.filter, got, c.want)
		}
	}
	if !r.Read("cmd/7") || r.Read("d/other/c1/x") {
		t.Error("dev reads: cmd/7 must be delivered, d/other/c1/x not")
	}

	p, err := n.hook.Rights(ctx, "pre", "c1")
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := p.Publish("t"); !ok || got != "site/t" {
		t.Errorf("prefixed publish: %q %v, want site/t allowed", got, ok)
	}

	for _, name := range []string{"off", "nobody"} {
		var ref *authhook.Refusal
		if _, err := n.hook.Rights(ctx, name, "c1"); !errors.As(err, &ref) || ref.Code != authhook.RefusedNotAuthorized {
			t.Errorf("%s: %v, want a not-authorized refusal", name, err)
		}
	}
}

// BenchmarkRightsPublish: the decision a webhook surface makes per
// PUBLISH (the cached user's rights, then the matcher), without HTTP.
func BenchmarkRightsPublish(b *testing.B) {
	n := startNode(b, nodeOpts{})
	addUser(b, n.st, "dev", "dev-secret-123", []acl.Permission{perm("d/{username}/{clientId}/#", acl.OpReadWrite)}, nil)
	ctx := context.Background()
	if _, err := n.hook.Rights(ctx, "dev", "c1"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		r, err := n.hook.Rights(ctx, "dev", "c1")
		if err != nil {
			b.Fatal(err)
		}
		if _, ok := r.Publish("d/dev/c1/temp"); !ok {
			b.Fatal("denied")
		}
	}
}
