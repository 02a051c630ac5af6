package acl

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// This file holds slow, obviously-correct reference implementations that
// the fuzz targets compare the trie against. They split strings, loop over
// every permission and share no code with matcher.go.

// refUsable reports whether a bound value may replace a placeholder.
func refUsable(v string) bool {
	if v == "" || !utf8.ValidString(v) {
		return false
	}
	for _, r := range v {
		if r == '/' || r == '+' || r == '#' || r == 0 {
			return false
		}
	}
	return true
}

// refExpand replaces the placeholders of one resource level. ok is false
// when the level uses a value that is not usable: the level matches
// nothing. guard is true when the level starts with a placeholder.
func refExpand(level, username, clientID string) (expanded string, ok, guard bool) {
	hasUser := strings.Contains(level, "{username}")
	hasClient := strings.Contains(level, "{clientId}")
	if !hasUser && !hasClient {
		return level, true, false
	}
	guard = strings.HasPrefix(level, "{username}") || strings.HasPrefix(level, "{clientId}")
	if (hasUser && !refUsable(username)) || (hasClient && !refUsable(clientID)) {
		return "", false, guard
	}
	return strings.NewReplacer("{username}", username, "{clientId}", clientID).Replace(level), true, guard
}

// refMatch reports whether resource, bound to username and clientID,
// matches topic under MQTT rules. topic must be valid.
func refMatch(resource, username, clientID, topic string) bool {
	p := strings.Split(resource, "/")
	t := strings.Split(topic, "/")
	dollar := strings.HasPrefix(t[0], "$")
	for i, pl := range p {
		if pl == "#" {
			return !(i == 0 && dollar)
		}
		if i >= len(t) {
			return false
		}
		if pl == "+" {
			if i == 0 && dollar {
				return false
			}
			continue
		}
		exp, ok, guard := refExpand(pl, username, clientID)
		if !ok || (i == 0 && guard && dollar) || exp != t[i] {
			return false
		}
	}
	return len(p) == len(t)
}

// refCovers reports whether resource, bound to username and clientID,
// matches every topic that filter (valid, not shared) matches, comparing
// level by level.
func refCovers(resource, username, clientID, filter string) bool {
	p := strings.Split(resource, "/")
	f := strings.Split(filter, "/")
	dollar := strings.HasPrefix(f[0], "$") // a '$' literal: '+' and '#' do not start with '$'
	for i := 0; ; i++ {
		if i < len(p) && p[i] == "#" {
			return !(i == 0 && dollar)
		}
		if i == len(f) {
			return i == len(p)
		}
		if f[i] == "#" {
			// F matches its parent topic and everything below: only a '#'
			// here covers it, or "+/#" when the parent would be the empty
			// topic "", which does not exist ("#", "/#").
			noParent := i == 0 || (i == 1 && f[0] == "")
			return noParent && len(p) == i+2 && p[i] == "+" && p[i+1] == "#"
		}
		if i == len(p) {
			return false
		}
		switch {
		case f[i] == "+":
			if p[i] != "+" {
				return false
			}
		case p[i] == "+":
			if i == 0 && dollar {
				return false
			}
		default:
			exp, ok, guard := refExpand(p[i], username, clientID)
			if !ok || (i == 0 && guard && dollar) || exp != f[i] {
				return false
			}
		}
	}
}

// refValidTopic reports whether topic is a topic name an mqtt matcher (or,
// with http set, a path an http matcher) may allow.
func refValidTopic(topic string, http bool) bool {
	if topic == "" || len(topic) > 65535 || !utf8.ValidString(topic) || strings.Contains(topic, "\x00") {
		return false
	}
	if http {
		return topic[0] == '/'
	}
	return !strings.ContainsAny(topic, "+#")
}

// refValidFilter reports whether filter is a valid, non-shared topic filter.
func refValidFilter(filter string) bool {
	if filter == "" || len(filter) > 65535 || !utf8.ValidString(filter) || strings.Contains(filter, "\x00") {
		return false
	}
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		if l == "+" || (l == "#" && i == len(levels)-1) {
			continue
		}
		if strings.ContainsAny(l, "+#") {
			return false
		}
	}
	return true
}

// refSubscription returns the filter a subscription is decided on (the
// part after "$share/{name}/") and whether the subscription is valid.
func refSubscription(sub string) (string, bool) {
	if !strings.HasPrefix(sub, "$share/") {
		return sub, refValidFilter(sub)
	}
	parts := strings.SplitN(sub, "/", 3)
	if len(parts) < 3 || parts[1] == "" || strings.ContainsAny(parts[1], "+#") {
		return "", false
	}
	if len(sub) > 65535 || !utf8.ValidString(sub) || strings.Contains(sub, "\x00") {
		return "", false
	}
	return parts[2], refValidFilter(parts[2])
}

// refAllows is Bound.Allows by brute force over perms (all of ctx, valid).
func refAllows(perms []Permission, username, clientID, topic string, op Operation, http bool) bool {
	if !refValidTopic(topic, http) {
		return false
	}
	if op == OpReadWrite {
		return refAllows(perms, username, clientID, topic, OpRead, http) &&
			refAllows(perms, username, clientID, topic, OpWrite, http)
	}
	if op != OpRead && op != OpWrite {
		return false
	}
	for _, p := range perms {
		if (p.Operation == op || p.Operation == OpReadWrite) && refMatch(p.Resource, username, clientID, topic) {
			return true
		}
	}
	return false
}

// refCoversAny is Bound.Covers by brute force over perms.
func refCoversAny(perms []Permission, username, clientID, sub string) bool {
	filter, ok := refSubscription(sub)
	if !ok {
		return false
	}
	for _, p := range perms {
		if (p.Operation == OpRead || p.Operation == OpReadWrite) && refCovers(p.Resource, username, clientID, filter) {
			return true
		}
	}
	return false
}

// TestReferenceCoverageAgreesWithTopicSets checks the level-by-level
// reference coverage against the definition itself: P covers F when every
// topic F matches is matched by P. Topics are enumerated over a small
// alphabet plus a fresh level no filter names, up to one level deeper than
// any filter, which is enough to tell every pair apart.
func TestReferenceCoverageAgreesWithTopicSets(t *testing.T) {
	levels := []string{"a", "", "$x", "+", "#"}
	var filters []string
	var grow func(prefix string, depth int)
	grow = func(prefix string, depth int) {
		for _, l := range levels {
			f := l
			if depth > 0 {
				f = prefix + "/" + l
			}
			if refValidFilter(f) {
				filters = append(filters, f)
			}
			if depth < 2 && l != "#" {
				grow(f, depth+1)
			}
		}
	}
	grow("", 0)

	var topics []string
	var deepen func(prefix string, depth int)
	deepen = func(prefix string, depth int) {
		for _, l := range []string{"a", "", "$x", "fresh"} {
			tp := l
			if depth > 0 {
				tp = prefix + "/" + l
			}
			if tp != "" {
				topics = append(topics, tp)
			}
			if depth < 3 {
				deepen(tp, depth+1)
			}
		}
	}
	deepen("", 0)

	matched := make(map[string][]bool, len(filters))
	for _, f := range filters {
		set := make([]bool, len(topics))
		for i, tp := range topics {
			set[i] = refMatch(f, "u", "c", tp)
		}
		matched[f] = set
	}
	for _, p := range filters {
		for _, f := range filters {
			want := true
			for i := range topics {
				if matched[f][i] && !matched[p][i] {
					want = false
					break
				}
			}
			if got := refCovers(p, "u", "c", f); got != want {
				t.Errorf("refCovers(%q, %q) = %v, but by topic sets %v", p, f, got, want)
			}
		}
	}
	if len(filters) < 100 || len(topics) < 300 {
		t.Fatalf("enumerated only %d filters and %d topics", len(filters), len(topics))
	}
}

// TestWideTriesAgreeWithReference checks the trie against the references on
// permission sets with many literal siblings per level, beyond what the fuzz
// alphabet reaches, so nodes keep their children in maps as well as in
// scanned slices (including siblings whose fingerprints collide).
func TestWideTriesAgreeWithReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var alphabet []string
	for i := range 40 {
		alphabet = append(alphabet, fmt.Sprintf("l%dx", i), fmt.Sprintf("m%dx", i)) // l12x, l22x and l32x share a fingerprint
	}
	alphabet = append(alphabet, "", "$x", "u", "c")
	wild := []string{"+", "#", "{username}", "{clientId}"}
	// build returns 1 to 4 levels; with wildcards, levels after the first
	// may be wildcards or placeholders, so most permissions are rooted in
	// a literal as they are in practice.
	build := func(wildcards bool) string {
		levels := make([]string, 1+rng.IntN(4))
		for i := range levels {
			levels[i] = alphabet[rng.IntN(len(alphabet))]
			if wildcards && i > 0 && rng.IntN(4) == 0 {
				levels[i] = wild[rng.IntN(len(wild))]
			}
		}
		return strings.Join(levels, "/")
	}
	// near returns a topic or filter derived from resource, so that checks
	// reach deep into the trie: wildcards and placeholders are replaced by
	// levels (for a filter, sometimes kept), and any level may change.
	near := func(resource string, filter bool) string {
		var out []string
		for _, l := range strings.Split(resource, "/") {
			switch {
			case filter && rng.IntN(3) == 0 && (l == "+" || l == "#"):
				out = append(out, l)
			case l == "#":
				for range rng.IntN(3) {
					out = append(out, alphabet[rng.IntN(len(alphabet))])
				}
			case l == "+" || rng.IntN(8) == 0:
				out = append(out, alphabet[rng.IntN(len(alphabet))])
			case l == "{username}":
				out = append(out, "u")
			case l == "{clientId}":
				out = append(out, "c")
			default:
				out = append(out, l)
			}
		}
		if len(out) == 0 {
			return alphabet[0]
		}
		return strings.Join(out, "/")
	}
	for round := range 20 {
		var perms []Permission
		for len(perms) < 400 {
			p := mqtt(build(true), fuzzOps[rng.IntN(len(fuzzOps))])
			if p.Validate() == nil {
				perms = append(perms, p)
			}
		}
		b := mustCompile(t, ContextMQTT, perms...).Bind("u", "c")
		for range 500 {
			topic, filter := build(false), build(true)
			if rng.IntN(2) == 0 {
				topic = near(perms[rng.IntN(len(perms))].Resource, false)
				filter = near(perms[rng.IntN(len(perms))].Resource, true)
			}
			for _, op := range []Operation{OpRead, OpWrite} {
				if got, want := b.Allows(topic, op), refAllows(perms, "u", "c", topic, op, false); got != want {
					t.Fatalf("round %d: Allows(%q, %s) = %v, reference %v", round, topic, op, got, want)
				}
			}
			if got, want := b.Covers(filter), refCoversAny(perms, "u", "c", filter); got != want {
				t.Fatalf("round %d: Covers(%q) = %v, reference %v", round, filter, got, want)
			}
		}
	}
}
