package acl

import (
	"strings"
	"testing"
)

// The fuzz targets build permission sets, topics and filters from a small
// alphabet of levels so that permissions and topics collide often, and
// compare the trie with the references in reference_test.go.

// fuzzResourceLevels are the levels a fuzzed permission is made of.
var fuzzResourceLevels = []string{
	"a", "b", "", "+", "#", "$x", "{username}", "{clientId}", "x{clientId}", "{username}-{clientId}", "$share", "{user}",
}

// fuzzTopicLevels are the levels a fuzzed topic or filter is made of; "xc"
// and "u-c" are what the placeholder levels expand to for username "u" and
// client ID "c".
var fuzzTopicLevels = []string{
	"a", "b", "", "+", "#", "$x", "xc", "u-c", "{username}", "$share", "g", "c", "u",
}

// fuzzValues are the usernames and client IDs a fuzzed Bound gets,
// including every kind of value that must not widen a permission.
var fuzzValues = []string{
	"u", "c", "a", "b", "+", "#", "a/b", "", "$x", "x\x00", "{clientId}", "\xff", "{username}",
}

// fuzzOps are the operations of fuzzed permissions.
var fuzzOps = []Operation{OpRead, OpWrite, OpReadWrite}

// fuzzSpec is a permission set and a binding decoded from fuzz input.
type fuzzSpec struct {
	ctx      Context
	username string
	clientID string
	shared   bool         // wrap the filter in "$share/g/"
	perms    []Permission // as given to Compile, other contexts included
}

// decodeSpec turns arbitrary bytes into a fuzzSpec: a header of three
// bytes (username, client ID, flags), then permissions, each a byte with
// the level count, operation and context followed by one byte per level.
func decodeSpec(data []byte) fuzzSpec {
	var hdr [3]byte
	copy(hdr[:], data)
	data = data[min(len(data), 3):]
	s := fuzzSpec{
		ctx:      ContextMQTT,
		username: fuzzValues[int(hdr[0])%len(fuzzValues)],
		clientID: fuzzValues[int(hdr[1])%len(fuzzValues)],
		shared:   hdr[2]&2 != 0,
	}
	if hdr[2]&1 != 0 {
		s.ctx = ContextHTTP
	}
	for len(data) > 0 && len(s.perms) < 16 {
		h := data[0]
		data = data[1:]
		n := 1 + int(h%4)
		levels := make([]string, 0, n)
		for ; n > 0 && len(data) > 0; n-- {
			levels = append(levels, fuzzResourceLevels[int(data[0])%len(fuzzResourceLevels)])
			data = data[1:]
		}
		p := Permission{
			Resource:  strings.Join(levels, "/"),
			Operation: fuzzOps[int(h>>2)%len(fuzzOps)],
			Context:   s.ctx,
		}
		if s.ctx == ContextHTTP {
			p.Resource = "/" + p.Resource
		}
		if h&0x80 != 0 { // a permission of the other context: Compile skips it
			p.Context = map[Context]Context{ContextMQTT: ContextHTTP, ContextHTTP: ContextMQTT}[s.ctx]
		}
		s.perms = append(s.perms, p)
	}
	return s
}

// decodeTopic turns bytes into a topic (or filter) of up to 8 levels of
// fuzzTopicLevels; for http it gets a leading '/'.
func decodeTopic(data []byte, http bool) string {
	levels := make([]string, 0, 8)
	for _, c := range data[:min(len(data), 8)] {
		levels = append(levels, fuzzTopicLevels[int(c)%len(fuzzTopicLevels)])
	}
	t := strings.Join(levels, "/")
	if http {
		t = "/" + t
	}
	return t
}

// compileSpec compiles s, checking Compile against the references: it
// fails exactly when a permission of the context is invalid. It returns
// the Bound and the valid permissions of the context.
func compileSpec(t *testing.T, s fuzzSpec) (*Bound, []Permission) {
	t.Helper()
	var valid []Permission
	invalid := false
	for _, p := range s.perms {
		if p.Context != s.ctx {
			continue
		}
		refOK := refValidFilter(p.Resource) && !strings.HasPrefix(p.Resource, "$share/")
		if s.ctx == ContextHTTP {
			refOK = refValidFilter(p.Resource) && strings.HasPrefix(p.Resource, "/")
		}
		err := p.Validate()
		if (err == nil) != refOK {
			t.Fatalf("%+v: Validate() = %v, reference says valid=%v", p, err, refOK)
		}
		if err != nil {
			invalid = true
			continue
		}
		valid = append(valid, p)
	}
	m, err := Compile(s.ctx, s.perms)
	if (err != nil) != invalid {
		t.Fatalf("Compile(%s, %+v) = %v, want an error: %v", s.ctx, s.perms, err, invalid)
	}
	if err != nil {
		m = mustCompile(t, s.ctx, valid...)
	}
	if m.Len() != len(valid) {
		t.Fatalf("Len() = %d, want %d", m.Len(), len(valid))
	}
	return m.Bind(s.username, s.clientID), valid
}

func FuzzAllows(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0x0f, 0, 1, 2, 3}, []byte{0, 1, 2, 3}, "a/b")
	f.Add([]byte{0, 1, 0, 0x01, 6, 4}, []byte{0, 1, 2}, "u/x")                       // {username}/#
	f.Add([]byte{4, 1, 0, 0x01, 0, 6}, []byte{0, 4, 0}, "a/+/a")                     // username '+'
	f.Add([]byte{5, 1, 0, 0x00, 4}, []byte{5, 0}, "$x/a")                            // '#' and a $ topic
	f.Add([]byte{0, 1, 0, 0x01, 3, 4}, []byte{5, 0}, "$SYS/a")                       // '+/#' and a $ topic
	f.Add([]byte{0, 1, 0, 0x00, 8}, []byte{6}, "xc")                                 // x{clientId}
	f.Add([]byte{0, 1, 0, 0x00, 9}, []byte{7}, "u-c")                                // {username}-{clientId}
	f.Add([]byte{8, 1, 0, 0x00, 6}, []byte{5}, "$x")                                 // username "$x" leading
	f.Add([]byte{0, 1, 1, 0x02, 0, 3, 4}, []byte{0, 2, 0}, "/a/b")                   // http
	f.Add([]byte{0, 1, 0, 0x85, 4, 0x00, 0}, []byte{0}, "a")                         // other context
	f.Add([]byte{0, 1, 0, 0x03, 3, 2, 3, 4, 0x00, 2, 0x01, 2, 2}, []byte{2, 2}, "/") // empty levels
	f.Fuzz(func(t *testing.T, spec, topicBytes []byte, raw string) {
		s := decodeSpec(spec)
		b, valid := compileSpec(t, s)
		isHTTP := s.ctx == ContextHTTP
		for _, topic := range []string{decodeTopic(topicBytes, isHTTP), raw} {
			for _, op := range []Operation{OpRead, OpWrite, OpReadWrite} {
				got := b.Allows(topic, op)
				want := refAllows(valid, s.username, s.clientID, topic, op, isHTTP)
				if got != want {
					t.Fatalf("perms %+v bound to (%q, %q): Allows(%q, %s) = %v, reference %v",
						valid, s.username, s.clientID, topic, op, got, want)
				}
			}
		}
	})
}

func FuzzCovers(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0x01, 0, 4}, []byte{0, 3, 0}, "a/+/a")
	f.Add([]byte{0, 1, 0, 0x00, 4}, []byte{4}, "#")                         // '#' covers '#'
	f.Add([]byte{0, 1, 0, 0x01, 3, 4}, []byte{4}, "#")                      // '+/#' covers '#'
	f.Add([]byte{0, 1, 0, 0x02, 2, 3, 4}, []byte{2, 4}, "/#")               // '/+/#' covers '/#'
	f.Add([]byte{0, 1, 0, 0x02, 0, 3, 4}, []byte{0, 4}, "a/#")              // 'a/+/#' does not
	f.Add([]byte{0, 1, 0, 0x00, 4}, []byte{5, 4}, "$x/#")                   // '$' rule
	f.Add([]byte{4, 1, 0, 0x01, 0, 6}, []byte{0, 3}, "a/+")                 // username '+'
	f.Add([]byte{0, 1, 2, 0x01, 0, 4}, []byte{0, 1}, "$share/g/a/b")        // shared
	f.Add([]byte{8, 1, 0, 0x01, 6, 4}, []byte{5, 4}, "$share/g/$x/#")       // leading placeholder and '$'
	f.Add([]byte{0, 1, 0, 0x04, 4, 0x01, 0, 3}, []byte{0, 0}, "$share/+/a") // write-only, bad share name
	f.Add([]byte{0, 1, 1, 0x01, 0, 4}, []byte{0, 1, 2}, "/a/b/")            // http
	f.Fuzz(func(t *testing.T, spec, filterBytes []byte, raw string) {
		s := decodeSpec(spec)
		b, valid := compileSpec(t, s)
		filter := decodeTopic(filterBytes, s.ctx == ContextHTTP)
		if s.shared {
			filter = "$share/g/" + filter
		}
		for _, sub := range []string{filter, raw} {
			got := b.Covers(sub)
			want := refCoversAny(valid, s.username, s.clientID, sub)
			if got != want {
				t.Fatalf("perms %+v bound to (%q, %q): Covers(%q) = %v, reference %v",
					valid, s.username, s.clientID, sub, got, want)
			}
			if got {
				checkCoveredTopics(t, b, sub)
			}
		}
	})
}

// checkCoveredTopics checks that Allows grants read on topics a covered
// subscription matches: the filter with each '+' replaced by a level, and
// each '#' dropped or replaced by two levels.
func checkCoveredTopics(t *testing.T, b *Bound, sub string) {
	t.Helper()
	filter, _ := refSubscription(sub)
	for _, fill := range []string{"zz", ""} {
		levels := strings.Split(filter, "/")
		for i, l := range levels {
			if l == "+" {
				levels[i] = fill
			}
		}
		topics := []string{strings.Join(levels, "/")}
		if levels[len(levels)-1] == "#" {
			topics = []string{
				strings.Join(levels[:len(levels)-1], "/"),
				strings.Join(append(levels[:len(levels)-1], "zz", fill), "/"),
			}
		}
		for _, topic := range topics {
			if topic == "" || strings.HasPrefix(topic, "$") && !strings.HasPrefix(filter, "$") {
				continue // not a topic the filter matches
			}
			if !b.Allows(topic, OpRead) && refValidTopic(topic, strings.HasPrefix(topic, "/")) {
				t.Fatalf("Covers(%q) but not Allows(%q, read)", sub, topic)
			}
		}
	}
}

func FuzzValidateTopicFilter(f *testing.F) {
	for _, s := range []string{
		"sport/tennis/#", "sport/tennis#", "sport/tennis/#/ranking", "+", "+/tennis/#", "sport+",
		"sport/+/player1", "/finance", "", "\x00", "a/\xff", "$share/g/a/#", "$share//a", "$share/g",
		"$SYS/#", "#", "a//b", "/", "devices/{username}/#", "dev-{clientId}/+",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		filterErr := ValidateTopicFilter(raw)
		if _, ok := refSubscription(raw); ok != (filterErr == nil) {
			t.Fatalf("ValidateTopicFilter(%q) = %v, reference says valid=%v", raw, filterErr, ok)
		}
		topicErr := ValidateTopicName(raw)
		if ok := refValidTopic(raw, false); ok != (topicErr == nil) {
			t.Fatalf("ValidateTopicName(%q) = %v, reference says valid=%v", raw, topicErr, ok)
		}
		everything := mustCompile(t, ContextMQTT, mqtt("#", OpRead), mqtt("$SYS/#", OpRead))
		everything.Bind("u", "c").Covers(raw)
		everything.Bind(raw, raw).Allows(raw, OpRead)
		if filterErr != nil {
			return
		}
		p := mqtt(raw, OpReadWrite)
		if p.Validate() != nil {
			if !strings.HasPrefix(raw, "$share/") {
				t.Fatalf("valid filter %q is not a valid permission: %v", raw, p.Validate())
			}
			return
		}
		b := mustCompile(t, ContextMQTT, p).Bind("u", "c")
		if !strings.Contains(raw, "{") {
			// Without placeholders a permission covers itself and allows
			// the topic it names.
			if !b.Covers(raw) {
				t.Fatalf("permission %q does not cover itself", raw)
			}
			if topicErr == nil && !b.Allows(raw, OpWrite) {
				t.Fatalf("permission %q does not allow its own topic", raw)
			}
		}
		b = mustCompile(t, ContextMQTT, p).Bind(raw, raw)
		b.Covers(raw)
		b.Allows(raw, OpRead)
	})
}
