package acl

import (
	"fmt"
	"slices"
	"strings"
)

// IsFilter tells a SUBSCRIBE filter from a topic name: a string with a
// wildcard or a shared subscription. Mochi asks the hook about both with
// the same call, and the admin API's access check judges a filter as a
// subscription, so both tell them apart here, the same way.
func IsFilter(s string) bool {
	return strings.IndexByte(s, '+') >= 0 || strings.IndexByte(s, '#') >= 0 ||
		(len(s) > 7 && s[0] == '$' && strings.EqualFold(s[:7], sharePrefix))
}

// Question is one access decision to explain: op on Topic, in the context
// Explain is given. For OpRead on a filter (IsFilter) the question is
// whether a subscription is covered (Covers), otherwise whether the topic
// or request path is matched (Allows).
type Question struct {
	Topic string
	Op    Operation // OpRead or OpWrite
	// Username and ClientID are bound to the placeholders as Bind binds
	// them; an unusable value (empty for one not known) makes its
	// placeholder match nothing.
	Username, ClientID string
}

// Verdict is an explained decision.
type Verdict struct {
	// Allowed is the decision of the compiled Matcher of all the
	// permissions, bound as the broker binds them: what the broker decides.
	Allowed bool
	// By indexes the permissions that allow it each on its own, the
	// deciding one first: the most specific (Specificity), then the order
	// the permissions were given in.
	By []int
	// Unresolved indexes permissions of the operation that do not allow it
	// only because a placeholder they use has no usable value (they would,
	// with some value in its place).
	Unresolved []int
}

// Explain decides q over the permissions of context ctx among perms (the
// others are skipped) exactly as Compile(ctx, perms) bound to q's values
// decides it, and says which permissions the decision rests on. An
// invalid topic, filter or path is an error wrapping ErrInvalidTopic or
// ErrInvalidFilter; an invalid permission one wrapping
// ErrInvalidPermission. It compiles a Matcher per permission: it is for
// explanations, not for the hot path.
func Explain(ctx Context, perms []Permission, q Question) (Verdict, error) {
	if err := q.Validate(ctx); err != nil {
		return Verdict{}, err
	}
	all, err := Compile(ctx, perms)
	if err != nil {
		return Verdict{}, err
	}
	v := Verdict{Allowed: q.decide(all)}
	for i, p := range perms {
		if p.Context != ctx || !p.Operation.Allows(q.Op) {
			continue
		}
		one, err := Compile(ctx, perms[i:i+1])
		if err != nil {
			return Verdict{}, err
		}
		switch {
		case q.decide(one):
			v.By = append(v.By, i)
		case q.wouldResolve(ctx, p):
			v.Unresolved = append(v.Unresolved, i)
		}
	}
	slices.SortStableFunc(v.By, func(a, b int) int {
		return Specificity(perms[b].Resource) - Specificity(perms[a].Resource)
	})
	return v, nil
}

// Validate checks q in context ctx: a known operation, and a topic name
// or filter in an mqtt context, a request path in an http one. The error
// wraps ErrInvalidTopic or ErrInvalidFilter when the topic is at fault.
func (q Question) Validate(ctx Context) error {
	switch {
	case !ctx.valid():
		return fmt.Errorf("acl: explain: %w: context %q is not one of mqtt, http", ErrInvalidPermission, clip(string(ctx)))
	case q.Op != OpRead && q.Op != OpWrite:
		return fmt.Errorf("acl: explain: operation %q is not one of read, write", clip(string(q.Op)))
	case ctx == ContextHTTP:
		if p := pathProblem(q.Topic); p != "" {
			return fmt.Errorf("%w: %s", ErrInvalidTopic, p)
		}
		return nil
	case IsFilter(q.Topic):
		return ValidateTopicFilter(q.Topic)
	}
	return ValidateTopicName(q.Topic)
}

// decide asks m what the broker asks: Covers for a subscription, Allows
// otherwise.
func (q Question) decide(m *Matcher) bool {
	b := m.Bind(q.Username, q.ClientID)
	if q.Op == OpRead && m.ctx == ContextMQTT && IsFilter(q.Topic) {
		return b.Covers(q.Topic)
	}
	return b.Allows(q.Topic, q.Op)
}

// wouldResolve reports whether p, which does not decide q, would if each
// level holding a placeholder without a usable value were '+'. It is an
// upper bound (a placeholder level never covers a '+' of a filter), used
// to tell "no permission" from "no value for its placeholder".
func (q Question) wouldResolve(ctx Context, p Permission) bool {
	levels := strings.Split(p.Resource, "/")
	changed := false
	for i, l := range levels {
		if (strings.Contains(l, placeholderUsername) && !usableValue(q.Username)) ||
			(strings.Contains(l, placeholderClientID) && !usableValue(q.ClientID)) {
			levels[i], changed = "+", true
		}
	}
	if !changed {
		return false
	}
	p.Resource = strings.Join(levels, "/")
	m, err := Compile(ctx, []Permission{p})
	return err == nil && q.decide(m)
}

// Specificity ranks a resource for picking the permission a decision
// rests on when several match: compared level by level from the left, a
// literal level (or one holding a placeholder, which matches one value)
// is more specific than '+', and '+' more than '#'; the first level that
// differs decides. "a/b/c" > "a/b/+" > "a/b/#" > "a/+/c" > "a/#" > "#".
// Resources that match one topic differ first where one has a wildcard,
// so the ranks of those are what count; the number is only for comparing.
func Specificity(resource string) int {
	const maxLevels = 10 // levels beyond this do not change the rank
	rank := 0
	levels := strings.Split(resource, "/")
	for i := range maxLevels {
		r := 2 // a literal, or past the end: "a" is more specific than "a/#"
		if i < len(levels) {
			switch levels[i] {
			case "+":
				r = 1
			case "#":
				r = 0
			}
		}
		rank = rank*3 + r
	}
	return rank
}

// Resolve returns resource with the placeholders that have a usable value
// replaced by it, as the matcher expands them; the others stay as written.
func Resolve(resource, username, clientID string) string {
	var pairs []string
	if usableValue(username) {
		pairs = append(pairs, placeholderUsername, username)
	}
	if usableValue(clientID) {
		pairs = append(pairs, placeholderClientID, clientID)
	}
	if pairs == nil {
		return resource
	}
	// One pass: a value holding a placeholder's text is not expanded again.
	return strings.NewReplacer(pairs...).Replace(resource)
}
