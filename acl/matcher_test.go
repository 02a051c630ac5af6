package acl

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// mustCompile compiles perms for ctx or fails the test.
func mustCompile(t testing.TB, ctx Context, perms ...Permission) *Matcher {
	t.Helper()
	m, err := Compile(ctx, perms)
	if err != nil {
		t.Fatalf("Compile(%s): %v", ctx, err)
	}
	return m
}

// mqtt returns an mqtt permission.
func mqtt(resource string, op Operation) Permission {
	return Permission{Resource: resource, Operation: op, Context: ContextMQTT}
}

// httpPerm returns an http permission.
func httpPerm(resource string, op Operation) Permission {
	return Permission{Resource: resource, Operation: op, Context: ContextHTTP}
}

func TestAllowsFollowsMQTTTopicMatching(t *testing.T) {
	tests := []struct {
		name   string
		filter string
		topic  string
		want   bool
	}{
		// MQTT 5 §4.7.1.2
		{"'#' after a level matches that level itself", "sport/tennis/player1/#", "sport/tennis/player1", true},
		{"'#' after a level matches one level below", "sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
		{"'#' after a level matches two levels below", "sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
		{"'#' does not match a sibling", "sport/tennis/player1/#", "sport/tennis/player2", false},
		{"'sport/#' matches 'sport'", "sport/#", "sport", true},
		{"'#' matches every ordinary topic", "#", "sport/tennis/player1", true},
		{"'#' matches a topic with a leading slash", "#", "/finance", true},
		// MQTT 5 §4.7.1.3
		{"'+' matches one level", "sport/tennis/+", "sport/tennis/player1", true},
		{"'+' matches another value of that level", "sport/tennis/+", "sport/tennis/player2", true},
		{"'+' does not match two levels", "sport/tennis/+", "sport/tennis/player1/ranking", false},
		{"'sport/+' does not match 'sport'", "sport/+", "sport", false},
		{"'sport/+' matches 'sport/'", "sport/+", "sport/", true},
		{"'+/+' matches '/finance'", "+/+", "/finance", true},
		{"'/+' matches '/finance'", "/+", "/finance", true},
		{"'+' does not match '/finance'", "+", "/finance", false},
		{"'+/+' matches '/'", "+/+", "/", true},
		{"'/+' matches '/'", "/+", "/", true},
		{"'+' does not match '/'", "+", "/", false},
		{"'+' matches an empty inner level", "a/+/b", "a//b", true},
		// MQTT 5 §4.7.2
		{"'#' does not match a $SYS topic", "#", "$SYS/x", false},
		{"'#' does not match a lone $SYS level", "#", "$SYS", false},
		{"'+/monitor/Clients' does not match '$SYS/monitor/Clients'", "+/monitor/Clients", "$SYS/monitor/Clients", false},
		{"'$SYS/#' matches '$SYS/monitor/Clients'", "$SYS/#", "$SYS/monitor/Clients", true},
		{"'$SYS/monitor/+' matches '$SYS/monitor/Clients'", "$SYS/monitor/+", "$SYS/monitor/Clients", true},
		{"'+/#' does not match a $ topic", "+/#", "$share/x", false},
		{"a '$' inside a later level is ordinary", "a/+", "a/$x", true},
		{"a wildcard after the first level matches '$' levels", "+/#", "x/$SYS", true},
		// MQTT, not Mochi's ledger
		{"'a/#' matches 'a'", "a/#", "a", true},
		{"'a/#' matches 'a/'", "a/#", "a/", true},
		{"'a/#' matches 'a/b/c'", "a/#", "a/b/c", true},
		{"'a/#' does not match 'ab'", "a/#", "ab", false},
		{"'a/+' does not match 'a'", "a/+", "a", false},
		{"'a/b' does not match 'a/b/c'", "a/b", "a/b/c", false},
		{"'a/+' does not match 'a/b/c'", "a/+", "a/b/c", false},
		{"'a/b/c' does not match 'a/b'", "a/b/c", "a/b", false},
		{"a literal matches only itself", "a/b", "a/b", true},
		{"literals are case-sensitive", "a/b", "A/b", false},
		{"an empty level is a literal", "a//b", "a//b", true},
		{"an empty level does not match a named one", "a//b", "a/x/b", false},
		{"a leading slash is a literal empty level", "/a", "a", false},
		{"a trailing slash is a literal empty level", "a/", "a", false},
		// invalid topic names are never allowed
		{"a topic with '+' is never allowed", "#", "a/+", false},
		{"a topic with '#' is never allowed", "#", "a/#", false},
		{"an empty topic is never allowed", "#", "", false},
		{"a topic with NUL is never allowed", "#", "a\x00", false},
		{"a topic with invalid UTF-8 is never allowed", "#", "a/\xff", false},
		{"a topic over 65535 bytes is never allowed", "#", strings.Repeat("a", 65536), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustCompile(t, ContextMQTT, mqtt(tt.filter, OpReadWrite)).Bind("user", "client")
			for _, op := range []Operation{OpRead, OpWrite} {
				if got := b.Allows(tt.topic, op); got != tt.want {
					t.Fatalf("%q allows %.40q for %s = %v, want %v", tt.filter, tt.topic, op, got, tt.want)
				}
			}
		})
	}
}

func TestAllowsTriesEveryBranch(t *testing.T) {
	// Several permissions share prefixes, so a walk must backtrack from a
	// literal into '+' and placeholder branches.
	m := mustCompile(t, ContextMQTT,
		mqtt("a/b/c", OpRead),
		mqtt("a/+/d", OpRead),
		mqtt("a/{username}/e", OpRead),
		mqtt("+/b/f/#", OpRead),
		mqtt("x/y", OpWrite),
		mqtt("x/+", OpRead),
	)
	b := m.Bind("b", "c1")
	tests := []struct {
		name  string
		topic string
		op    Operation
		want  bool
	}{
		{"the literal branch matches", "a/b/c", OpRead, true},
		{"the '+' branch matches past a dead-end literal", "a/b/d", OpRead, true},
		{"the placeholder branch matches past a dead-end literal", "a/b/e", OpRead, true},
		{"a leading '+' branch matches past a dead-end literal", "a/b/f/g", OpRead, true},
		{"no branch matches an unknown tail", "a/b/g", OpRead, false},
		{"a read '+' sibling grants read beside a write-only literal", "x/y", OpRead, true},
		{"the write branch grants write", "x/y", OpWrite, true},
		{"the read-only '+' branch does not grant write", "x/z", OpWrite, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := b.Allows(tt.topic, tt.op); got != tt.want {
				t.Fatalf("Allows(%q, %s) = %v, want %v", tt.topic, tt.op, got, tt.want)
			}
		})
	}
}

func TestCoversDecidesSubscriptions(t *testing.T) {
	tests := []struct {
		name   string
		perm   string
		filter string
		want   bool
	}{
		{"'a/#' covers 'a/+/c'", "a/#", "a/+/c", true},
		{"'a/#' covers its parent 'a'", "a/#", "a", true},
		{"'a/#' covers 'a/#'", "a/#", "a/#", true},
		{"'a/#' covers 'a/+'", "a/#", "a/+", true},
		{"'a/#' covers a deep literal", "a/#", "a/b/c/d", true},
		{"'a/#' does not cover 'b/#'", "a/#", "b/#", false},
		{"'a/#' does not cover '#'", "a/#", "#", false},
		{"'a/b' covers 'a/b'", "a/b", "a/b", true},
		{"'a/b' does not cover 'a/+'", "a/b", "a/+", false},
		{"'a/b' does not cover 'a/b/c'", "a/b", "a/b/c", false},
		{"'a/b' does not cover 'a/b/#'", "a/b", "a/b/#", false},
		{"'a/b/c' does not cover 'a/b'", "a/b/c", "a/b", false},
		{"'a/+' covers 'a/b'", "a/+", "a/b", true},
		{"'a/+' covers 'a/+'", "a/+", "a/+", true},
		{"'a/+' covers 'a/'", "a/+", "a/", true},
		{"'a/+' does not cover 'a/#'", "a/+", "a/#", false},
		{"'a/+' does not cover 'a'", "a/+", "a", false},
		{"'a/+/#' covers 'a/+' through the parent rule", "a/+/#", "a/+", true},
		{"'a/+/#' does not cover 'a/#', which matches 'a'", "a/+/#", "a/#", false},
		{"'+' covers '+'", "+", "+", true},
		{"'+' does not cover '#'", "+", "#", false},
		{"'+' does not cover two levels", "+", "a/b", false},
		{"'#' covers '#'", "#", "#", true},
		{"'#' covers '+/x'", "#", "+/x", true},
		{"'#' covers '+/#'", "#", "+/#", true},
		{"'#' covers a literal", "#", "a/b", true},
		{"'+/#' covers '#', which matches the same topics", "+/#", "#", true},
		{"'+/+/#' does not cover '#', which matches one-level topics", "+/+/#", "#", false},
		{"'+/#' covers '+/#'", "+/#", "+/#", true},
		{"'/+/#' covers '/#', whose parent would be the empty topic", "/+/#", "/#", true},
		{"'+/+/#' covers '/#'", "+/+/#", "/#", true},
		{"'/+/#' covers '/', two empty levels", "/+/#", "/", true},
		{"'//+/#' does not cover '//#', whose parent is '/'", "//+/#", "//#", false},
		{"'/#' covers '/'", "/#", "/", true},
		{"'/#' covers '/+'", "/#", "/+", true},
		{"'/#' does not cover '#'", "/#", "#", false},
		{"'#' does not cover a $SYS filter", "#", "$SYS/#", false},
		{"'#' does not cover a lone $SYS level", "#", "$SYS", false},
		{"'+/x' does not cover '$SYS/x'", "+/x", "$SYS/x", false},
		{"'+/#' does not cover '$SYS/x'", "+/#", "$SYS/x", false},
		{"'$SYS/#' covers '$SYS/x'", "$SYS/#", "$SYS/x", true},
		{"'$SYS/#' covers '$SYS/#'", "$SYS/#", "$SYS/#", true},
		{"'$SYS/#' does not cover '#'", "$SYS/#", "#", false},
		{"'$SYS/#' does not cover '+/x'", "$SYS/#", "+/x", false},
		{"a shared subscription is decided on its filter", "a/b", "$share/g/a/b", true},
		{"a shared subscription to '#' is covered by '#'", "#", "$share/g/#", true},
		{"a shared subscription to '$SYS' needs a $SYS permission", "#", "$share/g/$SYS/x", false},
		{"a shared subscription is not covered by a wider filter's sibling", "a/b", "$share/g/a/c", false},
		{"an invalid filter is never covered", "#", "a/#/b", false},
		{"an empty filter is never covered", "#", "", false},
		{"a shared subscription without a filter is never covered", "#", "$share/g", false},
		{"a filter with NUL is never covered", "#", "a/\x00", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustCompile(t, ContextMQTT, mqtt(tt.perm, OpRead)).Bind("user", "client")
			if got := b.Covers(tt.filter); got != tt.want {
				t.Fatalf("%q covers %q = %v, want %v", tt.perm, tt.filter, got, tt.want)
			}
		})
	}
}

func TestCoversNeedsOnePermissionCoveringTheWholeFilter(t *testing.T) {
	// Coverage is per permission, as in the design: two permissions that
	// together match every topic of 'a/#' do not cover it.
	b := mustCompile(t, ContextMQTT, mqtt("a", OpRead), mqtt("a/+/#", OpRead)).Bind("u", "c")
	if b.Covers("a/#") {
		t.Fatal(`"a" plus "a/+/#" cover "a/#", want one permission to cover it`)
	}
	if !b.Covers("a/+/c") {
		t.Fatal(`"a/+/#" does not cover "a/+/c"`)
	}
}

func TestPlaceholdersBindPerClient(t *testing.T) {
	tests := []struct {
		name     string
		perm     string
		username string
		clientID string
		topic    string
		want     bool
	}{
		{"a username level matches the bound username", "devices/{username}/#", "bob", "c1", "devices/bob/temp", true},
		{"a username level does not match another user", "devices/{username}/#", "bob", "c1", "devices/alice/temp", false},
		{"a username level does not match the client ID", "devices/{username}/#", "bob", "c1", "devices/c1/temp", false},
		{"a client ID inside a level matches", "dev-{clientId}/x", "bob", "42", "dev-42/x", true},
		{"a client ID inside a level does not match another ID", "dev-{clientId}/x", "bob", "42", "dev-43/x", false},
		{"a client ID inside a level does not match a prefix", "dev-{clientId}/x", "bob", "42", "dev-4/x", false},
		{"a client ID inside a level does not match an empty value", "dev-{clientId}/x", "bob", "42", "dev-/x", false},
		{"a placeholder suffix matches", "{clientId}.status", "bob", "42", "42.status", true},
		{"two placeholders in one level match", "u/{username}-{clientId}", "bob", "42", "u/bob-42", true},
		{"two placeholders in one level do not match swapped", "u/{username}-{clientId}", "bob", "42", "u/42-bob", false},
		{"the same placeholder twice matches", "{username}/{username}", "bob", "42", "bob/bob", true},
		{"a bound value is not substituted again", "p/{username}", "{clientId}", "42", "p/42", false},
		{"a bound value that looks like a placeholder is literal", "p/{username}", "{clientId}", "42", "p/{clientId}", true},
		{"an unknown placeholder is literal text", "p/{user}", "bob", "42", "p/{user}", true},
		{"an unknown placeholder is not substituted", "p/{user}", "bob", "42", "p/bob", false},
		// a chosen value never widens a permission
		{"username '+' does not act as a wildcard", "devices/{username}/#", "+", "c1", "devices/bob/x", false},
		{"username '#' does not act as a wildcard", "devices/{username}/#", "#", "c1", "devices/bob/x", false},
		{"username '#' does not match even its parent", "devices/{username}", "#", "c1", "devices", false},
		{"username 'a/b' does not span two levels", "devices/{username}/#", "a/b", "c1", "devices/a/b/x", false},
		{"username 'a/b' matches nothing", "devices/{username}", "a/b", "c1", "devices/a/b", false},
		{"an empty username matches no empty level", "devices/{username}/#", "", "c1", "devices//x", false},
		{"a username with NUL matches nothing", "devices/{username}", "a\x00", "c1", "devices/a", false},
		{"a username of invalid UTF-8 matches nothing", "devices/{username}", "\xff", "c1", "devices/x", false},
		{"client ID '+' inside a level matches nothing", "dev-{clientId}/x", "bob", "+", "dev-a/x", false},
		{"client ID '#' inside a level matches nothing", "dev-{clientId}", "bob", "#", "dev-x", false},
		{"client ID 'a/b' inside a level matches nothing", "dev-{clientId}/x", "bob", "a/b", "dev-a/b/x", false},
		{"an empty client ID inside a level matches nothing", "dev-{clientId}/x", "bob", "", "dev-/x", false},
		{"an unusable client ID spoils only its own placeholder", "{username}/#", "bob", "+", "bob/x", true},
		{"a leading placeholder does not reach $ topics", "{clientId}/#", "bob", "$SYS", "$SYS/broker/clients", false},
		{"a leading placeholder matches ordinary topics", "{clientId}/#", "bob", "c1", "c1/x", true},
		{"a later placeholder may hold '$'", "a/{clientId}", "bob", "$x", "a/$x", true},
		{"an explicit '$' literal before a placeholder reaches $ topics", "$dev-{clientId}/x", "bob", "42", "$dev-42/x", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustCompile(t, ContextMQTT, mqtt(tt.perm, OpReadWrite)).Bind(tt.username, tt.clientID)
			if got := b.Allows(tt.topic, OpWrite); got != tt.want {
				t.Fatalf("%q bound to (%q, %q) allows %q = %v, want %v", tt.perm, tt.username, tt.clientID, tt.topic, got, tt.want)
			}
		})
	}
}

func TestPlaceholdersNeverWidenCoverage(t *testing.T) {
	tests := []struct {
		name     string
		perm     string
		username string
		clientID string
		filter   string
		want     bool
	}{
		{"the bound username covers its own subtree", "devices/{username}/#", "bob", "c", "devices/bob/#", true},
		{"the bound username covers its own topics", "devices/{username}/#", "bob", "c", "devices/bob/+/x", true},
		{"a placeholder does not cover '+'", "devices/{username}/#", "bob", "c", "devices/+/#", false},
		{"username '+' does not cover '+'", "devices/{username}/#", "+", "c", "devices/+/#", false},
		{"username '+' does not cover another user", "devices/{username}/#", "+", "c", "devices/bob/#", false},
		{"username '#' does not cover '#'", "devices/{username}", "#", "c", "devices/#", false},
		{"username '#' does not cover everything", "{username}", "#", "c", "#", false},
		{"username 'a/b' does not cover two levels", "devices/{username}/#", "a/b", "c", "devices/a/b/#", false},
		{"an empty username covers no empty level", "devices/{username}/#", "", "c", "devices//#", false},
		{"client ID '+' in a level covers nothing", "dev-{clientId}/#", "u", "+", "dev-a/#", false},
		{"a leading placeholder does not cover $ filters", "{clientId}/#", "u", "$SYS", "$SYS/#", false},
		{"a shared subscription resolves the placeholder", "devices/{username}/#", "bob", "c", "$share/g/devices/bob/x", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustCompile(t, ContextMQTT, mqtt(tt.perm, OpRead)).Bind(tt.username, tt.clientID)
			if got := b.Covers(tt.filter); got != tt.want {
				t.Fatalf("%q bound to (%q, %q) covers %q = %v, want %v", tt.perm, tt.username, tt.clientID, tt.filter, got, tt.want)
			}
		})
	}
}

func TestBindSharesOneMatcher(t *testing.T) {
	m := mustCompile(t, ContextMQTT, mqtt("devices/{username}/#", OpReadWrite))
	alice, bob := m.Bind("alice", "c1"), m.Bind("bob", "c2")
	if !alice.Allows("devices/alice/x", OpWrite) || alice.Allows("devices/bob/x", OpWrite) {
		t.Error("alice's binding does not confine alice to her own subtree")
	}
	if !bob.Allows("devices/bob/x", OpWrite) || bob.Allows("devices/alice/x", OpWrite) {
		t.Error("bob's binding does not confine bob to his own subtree")
	}
}

func TestOperationsAreChecked(t *testing.T) {
	m := mustCompile(t, ContextMQTT,
		mqtt("r/#", OpRead),
		mqtt("w/#", OpWrite),
		mqtt("rw/#", OpReadWrite),
		mqtt("split/x", OpRead),
		mqtt("split/+", OpWrite),
	)
	b := m.Bind("u", "c")
	tests := []struct {
		name  string
		topic string
		op    Operation
		want  bool
	}{
		{"a read permission allows delivery", "r/x", OpRead, true},
		{"a read permission denies publishing", "r/x", OpWrite, false},
		{"a write permission allows publishing", "w/x", OpWrite, true},
		{"a write permission denies delivery", "w/x", OpRead, false},
		{"a readWrite permission allows delivery", "rw/x", OpRead, true},
		{"a readWrite permission allows publishing", "rw/x", OpWrite, true},
		{"asking for readWrite needs both", "r/x", OpReadWrite, false},
		{"asking for readWrite is met by a readWrite permission", "rw/x", OpReadWrite, true},
		{"asking for readWrite may be met by two permissions", "split/x", OpReadWrite, true},
		{"an unknown operation is denied", "rw/x", "delete", false},
		{"an empty operation is denied", "rw/x", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := b.Allows(tt.topic, tt.op); got != tt.want {
				t.Fatalf("Allows(%q, %q) = %v, want %v", tt.topic, tt.op, got, tt.want)
			}
		})
	}
	coverTests := []struct {
		name   string
		filter string
		want   bool
	}{
		{"a read permission allows subscribing", "r/+", true},
		{"a write permission does not allow subscribing", "w/+", false},
		{"a readWrite permission allows subscribing", "rw/#", true},
	}
	for _, tt := range coverTests {
		t.Run(tt.name, func(t *testing.T) {
			if got := b.Covers(tt.filter); got != tt.want {
				t.Fatalf("Covers(%q) = %v, want %v", tt.filter, got, tt.want)
			}
		})
	}
}

func TestHTTPPathPatterns(t *testing.T) {
	m := mustCompile(t, ContextHTTP,
		httpPerm("/api/users/#", OpRead),
		httpPerm("/api/maintenance/db/+", OpReadWrite),
		httpPerm("/api/maintenance/db", OpRead),
		httpPerm("/api/servers/+/operation", OpWrite),
		httpPerm("/api/users/{username}/password", OpWrite),
		mqtt("#", OpReadWrite), // another context: ignored
	)
	b := m.Bind("bob", "c")
	admin := mustCompile(t, ContextHTTP, httpPerm("/#", OpReadWrite)).Bind("admin", "c")
	tests := []struct {
		name string
		b    *Bound
		path string
		op   Operation
		want bool
	}{
		{"'/#' allows every path", admin, "/api/users/123", OpWrite, true},
		{"'/#' allows the root path", admin, "/", OpRead, true},
		{"'/#' allows a trailing slash", admin, "/api/", OpRead, true},
		{"a path without a leading slash is denied", admin, "api/users", OpRead, false},
		{"an empty path is denied", admin, "", OpRead, false},
		{"a path with NUL is denied", admin, "/api\x00", OpRead, false},
		{"'#' covers the collection itself", b, "/api/users", OpRead, true},
		{"'#' covers an item", b, "/api/users/123", OpRead, true},
		{"'#' read does not allow writes", b, "/api/users/123", OpWrite, false},
		{"'+' allows one segment", b, "/api/maintenance/db/backup", OpWrite, true},
		{"'+' does not allow the parent", b, "/api/maintenance/db", OpWrite, false},
		{"the parent has its own read permission", b, "/api/maintenance/db", OpRead, true},
		{"'+' does not allow two segments", b, "/api/maintenance/db/a/b", OpRead, false},
		{"a '+' in the middle matches", b, "/api/servers/s1/operation", OpWrite, true},
		{"a '+' in the middle needs the tail", b, "/api/servers/s1/other", OpWrite, false},
		{"'+' in a request path is an ordinary character", b, "/api/maintenance/db/a+b", OpWrite, true},
		{"'#' in a request path is an ordinary character", b, "/api/maintenance/db/a#b", OpWrite, true},
		{"'+' as a request segment does not act as a wildcard", b, "/api/servers/+/other", OpWrite, false},
		{"a placeholder matches the bound user's path", b, "/api/users/bob/password", OpWrite, true},
		{"a placeholder does not match another user's path", b, "/api/users/alice/password", OpWrite, false},
		{"mqtt permissions do not reach an http matcher", b, "/other", OpRead, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.b.Allows(tt.path, tt.op); got != tt.want {
				t.Fatalf("Allows(%q, %s) = %v, want %v", tt.path, tt.op, got, tt.want)
			}
		})
	}
}

func TestCompile(t *testing.T) {
	t.Run("an invalid permission fails the compile and is named", func(t *testing.T) {
		_, err := Compile(ContextMQTT, []Permission{mqtt("a", OpRead), {ID: "bad", Resource: "a/#/b", Operation: OpRead, Context: ContextMQTT}})
		if !errors.Is(err, ErrInvalidPermission) || !errors.Is(err, ErrInvalidFilter) {
			t.Fatalf("Compile = %v, want an error wrapping ErrInvalidPermission and ErrInvalidFilter", err)
		}
		if !strings.Contains(err.Error(), "permission 1") || !strings.Contains(err.Error(), `"bad"`) {
			t.Fatalf("Compile = %v, want it to name permission 1 and its id", err)
		}
	})
	t.Run("an invalid operation fails the compile", func(t *testing.T) {
		_, err := Compile(ContextMQTT, []Permission{mqtt("a", "all")})
		if !errors.Is(err, ErrInvalidPermission) {
			t.Fatalf("Compile = %v, want ErrInvalidPermission", err)
		}
	})
	t.Run("an unknown context fails the compile", func(t *testing.T) {
		if _, err := Compile("amqp", nil); !errors.Is(err, ErrInvalidPermission) {
			t.Fatalf("Compile = %v, want ErrInvalidPermission", err)
		}
	})
	t.Run("permissions of another context are skipped, even invalid ones", func(t *testing.T) {
		m := mustCompile(t, ContextMQTT, mqtt("a", OpRead), httpPerm("no-slash", OpRead), Permission{Resource: "x", Operation: OpRead, Context: "amqp"})
		if m.Len() != 1 {
			t.Fatalf("Len() = %d, want 1", m.Len())
		}
	})
	t.Run("Len counts every compiled permission, duplicates too", func(t *testing.T) {
		m := mustCompile(t, ContextMQTT, mqtt("a", OpRead), mqtt("a", OpWrite), mqtt("a", OpRead))
		if m.Len() != 3 {
			t.Fatalf("Len() = %d, want 3", m.Len())
		}
		if !m.Bind("u", "c").Allows("a", OpReadWrite) {
			t.Fatal("duplicate resources do not merge their operations")
		}
	})
	t.Run("no permissions deny everything", func(t *testing.T) {
		b := mustCompile(t, ContextMQTT).Bind("u", "c")
		if b.Allows("a", OpRead) || b.Covers("a") || b.Covers("#") {
			t.Fatal("an empty matcher grants something")
		}
	})
}

func TestNilDeniesEverything(t *testing.T) {
	var m *Matcher
	if m.Len() != 0 {
		t.Errorf("nil Matcher Len() = %d, want 0", m.Len())
	}
	b := m.Bind("u", "c")
	if b != nil {
		t.Errorf("nil Matcher Bind = %v, want nil", b)
	}
	if b.Allows("a", OpRead) || b.Covers("a") {
		t.Error("a nil Bound grants something")
	}
	var zero Bound
	if zero.Allows("a", OpRead) || zero.Covers("a") {
		t.Error("a zero Bound grants something")
	}
}

func TestAllowsAndCoversDoNotAllocate(t *testing.T) {
	m := mustCompile(t, ContextMQTT,
		mqtt("site1/line2/+/sensor3/#", OpRead),
		mqtt("site1/line2/cell4/+/status", OpWrite),
		mqtt("devices/{username}/#", OpReadWrite),
		mqtt("dev-{clientId}/+/x", OpReadWrite),
		mqtt("#", OpRead),
		mqtt("$SYS/#", OpRead),
	)
	b := m.Bind("bob", "42")
	checks := []struct {
		name string
		fn   func()
	}{
		{"Allows of a literal path", func() { b.Allows("site1/line2/cell4/sensor3/temp/value", OpRead) }},
		{"Allows that backtracks", func() { b.Allows("site1/line2/cell4/sensor9/status", OpWrite) }},
		{"Allows through a placeholder", func() { b.Allows("dev-42/a/x", OpWrite) }},
		{"Allows of a denied topic", func() { b.Allows("nowhere/at/all", OpWrite) }},
		{"Allows of an invalid topic", func() { b.Allows("a/+/b", OpRead) }},
		{"Allows of readWrite", func() { b.Allows("devices/bob/x", OpReadWrite) }},
		{"Covers of a wildcard filter", func() { b.Covers("site1/line2/+/sensor3/#") }},
		{"Covers through a placeholder", func() { b.Covers("devices/bob/+") }},
		{"Covers of a shared subscription", func() { b.Covers("$share/g/devices/bob/#") }},
		{"Covers of an invalid filter", func() { b.Covers("a/#/b") }},
		{"Covers of a $ filter", func() { b.Covers("$SYS/broker/+") }},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(100, c.fn); n != 0 {
				t.Fatalf("%s allocates %v times per call, want 0", c.name, n)
			}
		})
	}
}

func TestBoundIsSafeForConcurrentUse(t *testing.T) {
	m := mustCompile(t, ContextMQTT, mqtt("devices/{username}/#", OpReadWrite), mqtt("shared/+", OpRead))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprintf("user%d", i)
			b := m.Bind(user, "c")
			for range 1000 {
				if !b.Allows("devices/"+user+"/x", OpWrite) || !b.Covers("shared/+") || b.Allows("devices/other/x", OpWrite) {
					t.Error("a concurrent check returned a wrong answer")
					return
				}
			}
		}()
	}
	wg.Wait()
}
