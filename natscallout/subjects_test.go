package natscallout

import (
	"errors"
	"slices"
	"testing"

	"github.com/nats-io/jwt/v2"

	"github.com/warden-mqtt/warden/acl"
)

func TestSubjectFollowsNATSMQTTMapping(t *testing.T) {
	t.Parallel()
	cases := []struct {
		filter, subject string
		err             error
	}{
		{"a", "a", nil},
		{"a/b/c", "a.b.c", nil},
		{"/a", "/.a", nil},
		{"a/", "a./", nil},
		{"/", "/./", nil},
		{"a//b", "a./.b", nil},
		{"a///b", "a././.b", nil},
		{"a.b/c", "a//b.c", nil},
		{"./a", "//.a", nil},
		{"a/+/c", "a.*.c", nil},
		{"a/#", "a.>", nil},
		{"+/#", "*.>", nil},
		{"$SYS/broker", "$SYS.broker", nil},
		{"a*b/c>", "a*b.c>", nil},
		{"a/*", "", ErrUnexpressible},
		{">", "", ErrUnexpressible},
		{"a b", "", ErrUnsupportedTopic},
		{"a/\tb", "", ErrUnsupportedTopic},
		{"a\x7f", "", ErrUnsupportedTopic},
	}
	for _, c := range cases {
		got, err := Subject(c.filter)
		if !errors.Is(err, c.err) || got != c.subject {
			t.Errorf("Subject(%q) = %q, %v; want %q, %v", c.filter, got, err, c.subject, c.err)
			continue
		}
		if err != nil {
			continue
		}
		if back, ok := Topic(got); !ok || back != c.filter {
			t.Errorf("Topic(%q) = %q, %v; want %q", got, back, ok, c.filter)
		}
	}
}

func TestTopicRejectsSubjectsSubjectNeverReturns(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "a..b", ".a", "a.", "a/b", "///", "a.///"} {
		if topic, ok := Topic(s); ok {
			t.Errorf("Topic(%q) = %q, true; want false", s, topic)
		}
	}
}

func mqtt(resource string, op acl.Operation) acl.Permission {
	return acl.Permission{Resource: resource, Operation: op, Context: acl.ContextMQTT}
}

func list(s ...string) jwt.Permission {
	if len(s) == 0 {
		return jwt.Permission{Deny: jwt.StringList{">"}}
	}
	return jwt.Permission{Allow: s}
}

func TestPermissions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		perms    []acl.Permission
		user, id string
		pub, sub jwt.Permission
		err      error
	}{
		{
			name:  "read is subscribe and write is publish, readWrite both",
			perms: []acl.Permission{mqtt("r/x", acl.OpRead), mqtt("w/x", acl.OpWrite), mqtt("rw/x", acl.OpReadWrite)},
			pub:   list("rw.x", "w.x"), sub: list("r.x", "rw.x"),
		},
		{
			name:  "a trailing # grants its parent too",
			perms: []acl.Permission{mqtt("a/#", acl.OpReadWrite)},
			pub:   list("a", "a.>"), sub: list("a", "a.>"),
		},
		{
			name:  "the parent of /# is the empty topic: subscribe only, for the level-up subscription",
			perms: []acl.Permission{mqtt("/#", acl.OpReadWrite)},
			pub:   list("/.>"), sub: list("/", "/.>"),
		},
		{
			name:  "no permission in a direction denies everything there",
			perms: []acl.Permission{mqtt("a", acl.OpWrite), {Resource: "/api/#", Operation: acl.OpReadWrite, Context: acl.ContextHTTP}},
			pub:   list("a"), sub: list(),
		},
		{
			name:  "placeholders are resolved at connect",
			perms: []acl.Permission{mqtt("u/{username}/#", acl.OpRead), mqtt("d/dev-{clientId}.x", acl.OpWrite)},
			user:  "alice", id: "c1",
			pub: list("d.dev-c1//x"), sub: list("u.alice", "u.alice.>"),
		},
		{
			name:  "an unusable placeholder value grants nothing",
			perms: []acl.Permission{mqtt("u/{username}", acl.OpRead), mqtt("c/{clientId}", acl.OpRead), mqtt("ok", acl.OpRead)},
			user:  "a/b", id: "",
			pub: list(), sub: list("ok"),
		},
		{
			name:  "a placeholder starting the topic grants nothing for a $ value",
			perms: []acl.Permission{mqtt("{clientId}/x", acl.OpRead), mqtt("x/{clientId}", acl.OpRead)},
			id:    "$SYS",
			pub:   list(), sub: list("x.$SYS"),
		},
		{
			name:  "a value that looks like a placeholder stays literal",
			perms: []acl.Permission{mqtt("{username}/{clientId}", acl.OpWrite)},
			user:  "{clientId}", id: "c1",
			pub: list("{clientId}.c1"), sub: list(),
		},
		{
			name:  "a topic NATS refuses is left out",
			perms: []acl.Permission{mqtt("a b/#", acl.OpRead), mqtt("{username}", acl.OpWrite)},
			user:  "has space",
			pub:   list(), sub: list(),
		},
		{
			name:  "duplicates collapse",
			perms: []acl.Permission{mqtt("a", acl.OpRead), mqtt("a", acl.OpReadWrite), mqtt("a/#", acl.OpRead)},
			pub:   list("a"), sub: list("a", "a.>"),
		},
		{
			name:  "a leading # is refused",
			perms: []acl.Permission{mqtt("#", acl.OpReadWrite)},
			err:   ErrUnexpressible,
		},
		{
			name:  "a leading + is refused",
			perms: []acl.Permission{mqtt("+/status", acl.OpWrite)},
			err:   ErrUnexpressible,
		},
		{
			name:  "a literal * level is refused",
			perms: []acl.Permission{mqtt("a/*", acl.OpRead)},
			err:   ErrUnexpressible,
		},
		{
			name:  "a placeholder value > is refused",
			perms: []acl.Permission{mqtt("a/{username}", acl.OpWrite)},
			user:  ">",
			err:   ErrUnexpressible,
		},
		{
			name:  "read a/+ beside read a is refused: NATS would grant a/#",
			perms: []acl.Permission{mqtt("a", acl.OpRead), mqtt("a/+", acl.OpRead)},
			err:   ErrUnexpressible,
		},
		{
			name:  "read a/+/+ beside read a/b is refused: NATS would grant a/b/#",
			perms: []acl.Permission{mqtt("a/b", acl.OpRead), mqtt("a/+/+", acl.OpRead)},
			err:   ErrUnexpressible,
		},
		{
			name:  "read a/+ beside read a/# is exact: a/# is granted anyway",
			perms: []acl.Permission{mqtt("a/#", acl.OpRead), mqtt("a/+", acl.OpRead)},
			sub:   list("a", "a.*", "a.>"), pub: list(),
		},
		{
			name:  "read a/+ beside write a is exact: only reads combine",
			perms: []acl.Permission{mqtt("a", acl.OpWrite), mqtt("a/+", acl.OpRead)},
			sub:   list("a.*"), pub: list("a"),
		},
		{
			name:  "read b/+ beside read a does not overlap",
			perms: []acl.Permission{mqtt("a", acl.OpRead), mqtt("b/+", acl.OpRead)},
			sub:   list("a", "b.*"), pub: list(),
		},
		{
			name:  "an invalid permission is the acl error",
			perms: []acl.Permission{mqtt("a/#/b", acl.OpRead)},
			err:   acl.ErrInvalidPermission,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := Permissions(c.perms, c.user, c.id)
			if !errors.Is(err, c.err) {
				t.Fatalf("err = %v, want %v", err, c.err)
			}
			if err != nil {
				return
			}
			if !equal(got.Pub, c.pub) || !equal(got.Sub, c.sub) {
				t.Errorf("pub %+v sub %+v; want pub %+v sub %+v", got.Pub, got.Sub, c.pub, c.sub)
			}
		})
	}
}

func equal(a, b jwt.Permission) bool {
	return slices.Equal(a.Allow, b.Allow) && slices.Equal(a.Deny, b.Deny)
}

func TestUnexpressibleErrorNamesResourceAndMatches(t *testing.T) {
	t.Parallel()
	_, err := Permissions([]acl.Permission{mqtt("#", acl.OpRead)}, "u", "c")
	var ue *UnexpressibleError
	if !errors.As(err, &ue) || ue.Resource != "#" || ue.Reason == "" || !errors.Is(err, ErrUnexpressible) {
		t.Fatalf("err = %#v, want an *UnexpressibleError for %q matching ErrUnexpressible", err, "#")
	}
}
