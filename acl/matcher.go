package acl

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// The placeholders a resource may hold, as a whole level or part of one.
const (
	placeholderUsername = "{username}"
	placeholderClientID = "{clientId}"
)

// Matcher is the compiled form of one context's permissions: a trie of
// levels built once by Compile. It is immutable and safe for concurrent
// use; many clients share one Matcher, each through its own Bound. A nil
// *Matcher denies everything.
type Matcher struct {
	root *node
	ctx  Context
	n    int
}

// node is one level of the trie. A permission's resource is a path from the
// root: a literal level follows lits, '+' follows plus, a level holding a
// placeholder follows one of pats, and '#' ends the path in hash.
type node struct {
	// The literal children: in edges when there are few (a short scan
	// beats hashing the level), in lits when there are many. Compile fills
	// lits; finish moves small sets to edges.
	edges []edge
	lits  map[string]*node
	plus  *node
	pats  []pattern
	// mask holds the operations of the permissions that end at this node.
	mask uint8
	// hash holds the operations of the permissions that end with '#' after
	// this node: they match the parent level and everything below it.
	hash uint8
	// any is the union of every mask and hash at or below this node, so a
	// walk skips branches that cannot grant what it looks for.
	any uint8
}

// edge is a literal child. fp is the fingerprint of level, so a scan
// compares one integer per edge and strings only on a likely hit.
type edge struct {
	fp    uint32
	level string
	next  *node
}

// maxEdges is the largest number of literal children kept in a slice: up
// to here a fingerprint scan is faster than a map lookup.
const maxEdges = 16

// fingerprint packs a level's length and its first and last two bytes,
// which tell apart most sibling levels ("line1", "line2", "sensor10").
func fingerprint(level string) uint32 {
	n := len(level)
	switch n {
	case 0:
		return 0
	case 1:
		return 1<<24 | uint32(level[0])
	}
	return uint32(n)<<24 | uint32(level[0])<<16 | uint32(level[n-2])<<8 | uint32(level[n-1])
}

// literal returns the literal child for level, or nil.
func (n *node) literal(level string) *node {
	if n.lits != nil {
		return n.lits[level]
	}
	fp := fingerprint(level)
	for i := range n.edges {
		if e := &n.edges[i]; e.fp == fp && e.level == level {
			return e.next
		}
	}
	return nil
}

// pattern is a level holding placeholders, e.g. "{username}" or
// "dev-{clientId}". It matches the one level that equals its expansion
// with the bound values, and nothing when a value it uses is unusable.
type pattern struct {
	raw  string
	segs []segment
	// guard is set when the level is a topic's first level and starts with
	// a placeholder: like a leading wildcard, it must not match a topic
	// starting with '$', so a client ID such as "$SYS" gains nothing.
	guard bool
	next  *node
}

// segment is a piece of a pattern: a literal, or a placeholder (ph != 0).
type segment struct {
	lit string
	ph  placeholder
}

// placeholder identifies a bound value.
type placeholder uint8

const (
	phNone placeholder = iota
	phUsername
	phClientID
)

// Compile builds a Matcher from the permissions of context ctx; the others
// are skipped. It validates each permission it uses and returns an error
// wrapping ErrInvalidPermission, naming the first invalid one, so a broken
// permission never silently grants or hides anything.
func Compile(ctx Context, perms []Permission) (*Matcher, error) {
	if !ctx.valid() {
		return nil, fmt.Errorf("acl: compile: %w: context %q is not one of mqtt, http", ErrInvalidPermission, clip(string(ctx)))
	}
	m := &Matcher{root: &node{}, ctx: ctx}
	for i, p := range perms {
		if p.Context != ctx {
			continue
		}
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("acl: compile: permission %d (id %q): %w", i, clip(p.ID), err)
		}
		m.root.insert(p.Resource, p.Operation.mask())
		m.n++
	}
	m.root.finish()
	return m, nil
}

// insert adds a validated resource with operation bits mask.
func (n *node) insert(resource string, mask uint8) {
	for depth, level := range strings.Split(resource, "/") {
		switch {
		case level == "#":
			n.hash |= mask
			return
		case level == "+":
			if n.plus == nil {
				n.plus = &node{}
			}
			n = n.plus
		case strings.Contains(level, placeholderUsername) || strings.Contains(level, placeholderClientID):
			n = n.pattern(level, depth == 0)
		default:
			if n.lits == nil {
				n.lits = make(map[string]*node)
			}
			child := n.lits[level]
			if child == nil {
				child = &node{}
				n.lits[level] = child
			}
			n = child
		}
	}
	n.mask |= mask
}

// pattern returns the child for the placeholder level raw, adding it if
// needed.
func (n *node) pattern(raw string, first bool) *node {
	for i := range n.pats {
		if n.pats[i].raw == raw {
			return n.pats[i].next
		}
	}
	p := pattern{raw: raw, next: &node{}}
	for rest := raw; rest != ""; {
		u := strings.Index(rest, placeholderUsername)
		c := strings.Index(rest, placeholderClientID)
		i, ph, size := u, phUsername, len(placeholderUsername)
		if i < 0 || (c >= 0 && c < i) {
			i, ph, size = c, phClientID, len(placeholderClientID)
		}
		if i < 0 {
			p.segs = append(p.segs, segment{lit: rest})
			break
		}
		if i > 0 {
			p.segs = append(p.segs, segment{lit: rest[:i]})
		}
		p.segs = append(p.segs, segment{ph: ph})
		rest = rest[i+size:]
	}
	p.guard = first && p.segs[0].ph != phNone
	n.pats = append(n.pats, p)
	return p.next
}

// finish computes any for n and everything below it and moves small sets
// of literal children to edges.
func (n *node) finish() uint8 {
	n.any = n.mask | n.hash
	for _, c := range n.lits {
		n.any |= c.finish()
	}
	if len(n.lits) <= maxEdges {
		for level, c := range n.lits {
			n.edges = append(n.edges, edge{fingerprint(level), level, c})
		}
		n.lits = nil
	}
	if n.plus != nil {
		n.any |= n.plus.finish()
	}
	for i := range n.pats {
		n.any |= n.pats[i].next.finish()
	}
	return n.any
}

// Len returns the number of permissions compiled into m.
func (m *Matcher) Len() int {
	if m == nil {
		return 0
	}
	return m.n
}

// Bind returns m bound to one client's username and client ID, which
// replace the placeholders {username} and {clientId}. It only records the
// values and whether each is usable (non-empty, valid UTF-8, without '/',
// '+', '#' or U+0000); an unusable value makes its placeholder match
// nothing. Binding a nil Matcher returns a nil Bound, which denies
// everything.
func (m *Matcher) Bind(username, clientID string) *Bound {
	if m == nil {
		return nil
	}
	return &Bound{
		m:        m,
		username: username,
		clientID: clientID,
		userOK:   usableValue(username),
		clientOK: usableValue(clientID),
	}
}

// usableValue reports whether a bound value can stand in for a placeholder
// without widening it.
func usableValue(v string) bool {
	return v != "" && !strings.ContainsAny(v, "/+#\x00") && utf8.ValidString(v)
}

// Bound is a Matcher bound to one client's username and client ID: the
// object an ACL check asks. It is immutable and safe for concurrent use. A
// nil *Bound denies everything.
type Bound struct {
	m        *Matcher
	username string
	clientID string
	userOK   bool
	clientOK bool
}

// Allows reports whether a permission grants op on topic: OpWrite to
// publish, OpRead to receive a delivery (or, in an http Matcher, the
// operation an HTTP method needs on a request path). OpReadWrite asks for
// both. An invalid topic name (for http, a path not starting with '/') is
// never allowed. Allows does not allocate.
func (b *Bound) Allows(topic string, op Operation) bool {
	if b == nil || b.m == nil {
		return false
	}
	want := op.mask()
	if want == 0 {
		return false
	}
	if b.m.ctx == ContextHTTP {
		if pathProblem(topic) != "" {
			return false
		}
	} else if topicProblem(topic) != "" {
		return false
	}
	if want == bitRead|bitWrite {
		return b.match(b.m.root, topic, true, true, bitRead) && b.match(b.m.root, topic, true, true, bitWrite)
	}
	return b.match(b.m.root, topic, true, true, want)
}

// match reports whether a permission at or below n with an operation in
// want matches the topic levels in rest (more is false once the last level
// was consumed; first is set while rest still holds the topic's first
// level). It walks one level per iteration and recurses only where the trie
// branches ('+' beside a literal, placeholders). A trie node sits at one
// depth and the topic has one level per depth, so no node is visited twice:
// the cost is bounded by the trie's size as well as by the topic's depth
// times its branching, and never grows with permissions the topic cannot
// reach.
func (b *Bound) match(n *node, rest string, more, first bool, want uint8) bool {
	for {
		// A leading '#' must not match a topic whose first level starts
		// with '$' (MQTT 5 §4.7.2).
		if n.hash&want != 0 && !(first && strings.HasPrefix(rest, "$")) {
			return true
		}
		if !more {
			return n.mask&want != 0
		}
		var level string
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			level, rest = rest[:i], rest[i+1:]
		} else {
			level, rest, more = rest, "", false
		}
		dollar := first && level != "" && level[0] == '$'
		for i := range n.pats {
			p := &n.pats[i]
			if p.next.any&want != 0 && !(dollar && p.guard) && b.expands(p, level) &&
				b.match(p.next, rest, more, false, want) {
				return true
			}
		}
		plus := n.plus
		if plus != nil && (dollar || plus.any&want == 0) {
			plus = nil
		}
		lit := n.literal(level)
		if lit != nil && lit.any&want == 0 {
			lit = nil
		}
		switch {
		case lit != nil:
			if plus != nil && b.match(plus, rest, more, false, want) {
				return true
			}
			n = lit
		case plus != nil:
			n = plus
		default:
			return false
		}
		first = false
	}
}

// expands reports whether level equals p with the bound values in place of
// its placeholders; an unusable value expands to nothing.
func (b *Bound) expands(p *pattern, level string) bool {
	for _, s := range p.segs {
		v := s.lit
		switch s.ph {
		case phUsername:
			if !b.userOK {
				return false
			}
			v = b.username
		case phClientID:
			if !b.clientOK {
				return false
			}
			v = b.clientID
		}
		if !strings.HasPrefix(level, v) {
			return false
		}
		level = level[len(v):]
	}
	return level == ""
}

// Covers reports whether a subscription to filter may be granted: whether
// one read or readWrite permission matches every topic that filter can
// match. Coverage is exact, per permission: "a/#" covers "a/+/c" and "a",
// "a/b" does not cover "a/+", and "+/#" covers "#" because both match the
// same topics. A shared subscription "$share/{ShareName}/{filter}" is
// decided on its filter. An invalid filter is never covered. Covers does
// not allocate.
func (b *Bound) Covers(filter string) bool {
	if b == nil || b.m == nil || subscriptionProblem(filter) != "" {
		return false
	}
	if strings.HasPrefix(filter, sharePrefix) {
		rest := filter[len(sharePrefix):]
		filter = rest[strings.IndexByte(rest, '/')+1:]
	}
	return b.cover(b.m.root, filter, true, atFirst)
}

// Where a coverage walk stands in the filter, for the two rules that
// depend on the levels already consumed.
const (
	// atFirst: no level consumed yet. A leading wildcard permission does
	// not cover a '$' level here, and F '#' has no parent topic.
	atFirst = iota
	// afterEmpty: exactly one empty level consumed. F '#' has no parent
	// topic here either ("/#" cannot match the empty topic "").
	afterEmpty
	// deeper: anything else.
	deeper
)

// cover reports whether a read permission at or below n covers the filter
// levels in rest (more is false once the last level was consumed; at says
// what was consumed before).
func (b *Bound) cover(n *node, rest string, more bool, at int) bool {
	for {
		// P '#' covers everything below, but a leading '#' must not cover a
		// filter whose first level names a '$' topic.
		if n.hash&bitRead != 0 && !(at == atFirst && strings.HasPrefix(rest, "$")) {
			return true
		}
		if !more {
			return n.mask&bitRead != 0
		}
		var level string
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			level, rest = rest[:i], rest[i+1:]
		} else {
			level, rest, more = rest, "", false
		}
		next := deeper
		if at == atFirst && level == "" {
			next = afterEmpty
		}
		switch level {
		case "#":
			// F '#' matches its parent topic and everything below. Only P
			// '#' (checked above) covers that, unless the parent would be
			// the empty topic, which does not exist: then P "+/#" matches
			// the same topics.
			return at != deeper && n.plus != nil && n.plus.hash&bitRead != 0
		case "+":
			// Only P '+' covers F '+': a literal or a placeholder matches
			// one value.
			if n.plus == nil || n.plus.any&bitRead == 0 {
				return false
			}
			n, at = n.plus, next
			continue
		}
		dollar := at == atFirst && strings.HasPrefix(level, "$")
		for i := range n.pats {
			p := &n.pats[i]
			if p.next.any&bitRead != 0 && !(dollar && p.guard) && b.expands(p, level) &&
				b.cover(p.next, rest, more, next) {
				return true
			}
		}
		plus := n.plus
		if plus != nil && (dollar || plus.any&bitRead == 0) {
			plus = nil
		}
		lit := n.literal(level)
		if lit != nil && lit.any&bitRead == 0 {
			lit = nil
		}
		switch {
		case lit != nil:
			if plus != nil && b.cover(plus, rest, more, next) {
				return true
			}
			n = lit
		case plus != nil:
			n = plus
		default:
			return false
		}
		at = next
	}
}
