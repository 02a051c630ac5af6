package natscallout

import (
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/warden-mqtt/warden/acl"
)

// FuzzSubject checks that Subject never panics, that what it accepts is a
// valid NATS subject whose wildcards are exactly the filter's, and that
// Topic turns it back into the filter. Seeds: testdata/fuzz/FuzzSubject.
func FuzzSubject(f *testing.F) {
	f.Fuzz(func(t *testing.T, filter string) {
		subject, err := Subject(filter)
		if acl.ValidateTopicFilter(filter) != nil || strings.HasPrefix(filter, "$share/") {
			return // only validated filters are promised anything
		}
		if err != nil {
			if !errors.Is(err, ErrUnexpressible) && !errors.Is(err, ErrUnsupportedTopic) {
				t.Fatalf("Subject(%q): unexpected error %v", filter, err)
			}
			return
		}
		if !server.IsValidSubject(subject) {
			t.Fatalf("Subject(%q) = %q, not a valid NATS subject", filter, subject)
		}
		levels, tokens := strings.Split(filter, "/"), strings.Split(subject, ".")
		if len(levels) != len(tokens) {
			t.Fatalf("Subject(%q) = %q: %d levels became %d tokens", filter, subject, len(levels), len(tokens))
		}
		for i, l := range levels {
			if wild := l == "+" || l == "#"; wild != (tokens[i] == "*" || tokens[i] == ">") {
				t.Fatalf("Subject(%q) = %q: level %q became token %q", filter, subject, l, tokens[i])
			}
		}
		if back, ok := Topic(subject); !ok || back != filter {
			t.Fatalf("Topic(Subject(%q)) = %q, %v", filter, back, ok)
		}
	})
}

// FuzzPermissionsPublish checks, for one permission and one topic, that the
// publish allow list Permissions compiles matches the topic's subject (by
// nats-server's own subject matching) exactly when warden's acl lets the
// client publish to the topic. Seeds: testdata/fuzz/FuzzPermissionsPublish.
func FuzzPermissionsPublish(f *testing.F) {
	f.Fuzz(func(t *testing.T, resource, topic, username, clientID string) {
		perms := []acl.Permission{{Resource: resource, Operation: acl.OpWrite, Context: acl.ContextMQTT}}
		p, err := Permissions(perms, username, clientID)
		if err != nil {
			if !errors.Is(err, ErrUnexpressible) && !errors.Is(err, acl.ErrInvalidPermission) {
				t.Fatalf("Permissions(%q): unexpected error %v", resource, err)
			}
			return
		}
		for _, s := range p.Pub.Allow {
			if !server.IsValidSubject(s) {
				t.Fatalf("Permissions(%q) allows %q, not a valid NATS subject", resource, s)
			}
		}
		subject, err := Subject(topic)
		if err != nil || acl.ValidateTopicName(topic) != nil {
			return // NATS's MQTT listener or MQTT itself refuses the topic
		}
		nats := false
		for _, s := range p.Pub.Allow {
			nats = nats || server.SubjectMatchesFilter(subject, s)
		}
		m, err := acl.Compile(acl.ContextMQTT, perms)
		if err != nil {
			t.Fatal(err)
		}
		if want := m.Bind(username, clientID).Allows(topic, acl.OpWrite); nats != want {
			t.Fatalf("resource %q (user %q, client %q), topic %q: NATS %v (allow %q), acl %v",
				resource, username, clientID, topic, nats, p.Pub.Allow, want)
		}
	})
}
