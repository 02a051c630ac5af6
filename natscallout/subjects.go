package natscallout

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/nats-io/jwt/v2"

	"github.com/warden-mqtt/warden/acl"
)

// ErrUnexpressible is wrapped (through *UnexpressibleError) by every error
// that refuses a permission NATS subjects cannot state exactly: granting it
// through NATS would allow more, or less, than warden's own ACL allows.
var ErrUnexpressible = errors.New("natscallout: permission cannot be expressed exactly as NATS subjects")

// ErrUnsupportedTopic is returned by Subject for a topic nats-server's MQTT
// listener refuses outright (it holds whitespace or DEL), so no MQTT client
// of a NATS cluster can ever use it.
var ErrUnsupportedTopic = errors.New("natscallout: topic is not accepted by nats-server's MQTT listener")

// UnexpressibleError names the resource (with placeholders resolved) that
// cannot become NATS subjects, and why. It matches ErrUnexpressible with
// errors.Is.
type UnexpressibleError struct {
	Resource string
	Reason   string
}

// Error says which resource and why, without any credential.
func (e *UnexpressibleError) Error() string {
	return fmt.Sprintf("%v: resource %q: %s", ErrUnexpressible, e.Resource, e.Reason)
}

// Is makes errors.Is(err, ErrUnexpressible) true.
func (e *UnexpressibleError) Is(target error) bool { return target == ErrUnexpressible }

// Reasons given in UnexpressibleError.
const (
	reasonLeadingWildcard = "a leading '+' or '#' does not match topics starting with '$' in MQTT, " +
		"but NATS's '*' and '>' match every first token: grant the first level explicitly"
	reasonWildcardLevel = "a level that is exactly '*' or '>' is a literal topic level in MQTT " +
		"but a wildcard once it is a NATS subject token"
	reasonPlusBesideParent = "NATS lets a subscribe permission 'X.*' grant the subscription 'X.>' " +
		"(an MQTT 'X/#'), which together with a permission on X would allow a subscription warden refuses"
)

// Subject converts an MQTT topic name or topic filter to the NATS subject
// nats-server's MQTT listener uses for it (server/mqtt.go,
// mqttToNATSSubjectConversion): each level becomes one token, '/' becomes
// '.', an empty level becomes the token "/", a '.' inside a level becomes
// "//", '+' becomes '*' and '#' becomes '>'. So "a/b" is "a.b", "/a" is
// "/.a", "a//b" is "a./.b", "a.b/c" is "a//b.c" and "a/+/#" is "a.*.>".
//
// A topic holding whitespace or DEL gives ErrUnsupportedTopic (the listener
// refuses it). A level that is exactly "*" or ">" gives an error wrapping
// ErrUnexpressible: it would turn into a NATS wildcard. The input is not
// otherwise validated; callers pass acl-validated filters. Every subject
// Subject returns converts back with Topic.
func Subject(filter string) (string, error) {
	if strings.ContainsAny(filter, " \t\n\r\f\x7f") {
		return "", ErrUnsupportedTopic
	}
	var b strings.Builder
	b.Grow(len(filter) + 8)
	for i, level := range strings.Split(filter, "/") {
		if i > 0 {
			b.WriteByte('.')
		}
		switch level {
		case "":
			b.WriteByte('/')
		case "+":
			b.WriteByte('*')
		case "#":
			b.WriteByte('>')
		case "*", ">":
			return "", &UnexpressibleError{Resource: filter, Reason: reasonWildcardLevel}
		default:
			b.WriteString(strings.ReplaceAll(level, ".", "//"))
		}
	}
	return b.String(), nil
}

// Topic converts a subject that Subject returned back to its MQTT topic
// name or filter; ok is false when subject is not such a subject.
func Topic(subject string) (topic string, ok bool) {
	var b strings.Builder
	b.Grow(len(subject))
	for i, tok := range strings.Split(subject, ".") {
		if i > 0 {
			b.WriteByte('/')
		}
		switch tok {
		case "":
			return "", false
		case "/":
			continue
		case "*":
			b.WriteByte('+')
			continue
		case ">":
			b.WriteByte('#')
			continue
		}
		// Outside the empty-level token, '/' only comes in pairs, each a '.'.
		for j := 0; j < len(tok); j++ {
			if tok[j] != '/' {
				b.WriteByte(tok[j])
				continue
			}
			if j+1 >= len(tok) || tok[j+1] != '/' {
				return "", false
			}
			b.WriteByte('.')
			j++
		}
	}
	return b.String(), true
}

// Permissions compiles a user's mqtt permissions into the NATS publish and
// subscribe allow lists that grant an MQTT client of a NATS cluster exactly
// what warden's acl grants the same client: write → publish allow, read →
// subscribe allow, readWrite → both. Permissions of other contexts are
// ignored. The placeholders {username} and {clientId} are resolved with the
// connecting client's values, by acl's rule: a value that is empty, not
// valid UTF-8 or holds '/', '+', '#' or U+0000 makes its permission grant
// nothing, and a placeholder that starts the first level grants nothing when
// its value starts with '$'.
//
// A filter "X/#" becomes both "X" and "X.>" (NATS's '>' needs at least one
// more token, MQTT's '#' also matches its parent; nats-server subscribes to
// both for an MQTT "X/#"). A permission on a topic nats-server's MQTT
// listener refuses (whitespace, DEL) is left out: no client can use that
// topic through NATS anyway. A user with no publish (or no subscribe)
// permission gets a deny of ">" there, because an empty NATS allow list
// allows everything.
//
// These are refused with an error wrapping ErrUnexpressible (an
// *UnexpressibleError), never approximated:
//   - a resource whose first level is '+' or '#' (such as connectware-admin's
//     "#"): MQTT keeps '$' topics out of it, NATS cannot;
//   - a level (literal or after resolving a placeholder) that is exactly
//     "*" or ">": it would become a NATS wildcard;
//   - read permissions "Y/+" and Q where Y and Q overlap on a topic X whose
//     "X/#" no read permission covers: NATS matches the requested subject's
//     '>' token with an allowed '*' (server/sublist.go, matchLevel), so it
//     would grant the subscription "X/#".
//
// Invalid permissions give the acl error (wrapping acl.ErrInvalidPermission).
// The subject lists are sorted and without duplicates.
func Permissions(perms []acl.Permission, username, clientID string) (jwt.Permissions, error) {
	var pub, sub []string
	var reads []string // resolved read resources, for the overlap rule
	for i, p := range perms {
		if p.Context != acl.ContextMQTT {
			continue
		}
		if err := p.Validate(); err != nil {
			return jwt.Permissions{}, fmt.Errorf("natscallout: permission %d: %w", i, err)
		}
		resource, ok := resolve(p.Resource, username, clientID)
		if !ok {
			continue
		}
		if first, _, _ := strings.Cut(resource, "/"); first == "+" || first == "#" {
			return jwt.Permissions{}, &UnexpressibleError{Resource: resource, Reason: reasonLeadingWildcard}
		}
		subject, err := Subject(resource)
		if errors.Is(err, ErrUnsupportedTopic) {
			continue
		}
		if err != nil {
			return jwt.Permissions{}, err
		}
		parent, hasParent := strings.CutSuffix(subject, ".>")
		if p.Operation.Allows(acl.OpWrite) {
			pub = append(pub, subject)
			// The parent of "/#" is the empty topic, which no one can
			// publish to.
			if hasParent && parent != "/" {
				pub = append(pub, parent)
			}
		}
		if p.Operation.Allows(acl.OpRead) {
			sub = append(sub, subject)
			if hasParent {
				sub = append(sub, parent)
			}
			reads = append(reads, resource)
		}
	}
	if err := checkPlusBesideParent(reads); err != nil {
		return jwt.Permissions{}, err
	}
	return jwt.Permissions{Pub: allowList(pub), Sub: allowList(sub)}, nil
}

// allowList is subjects sorted and unique, or a deny of everything when
// there are none.
func allowList(subjects []string) jwt.Permission {
	if len(subjects) == 0 {
		return jwt.Permission{Deny: jwt.StringList{">"}}
	}
	slices.Sort(subjects)
	return jwt.Permission{Allow: jwt.StringList(slices.Compact(subjects))}
}

// The placeholders acl resolves.
const (
	placeholderUsername = "{username}"
	placeholderClientID = "{clientId}"
)

// resolve replaces the placeholders in resource; ok is false when the
// permission grants nothing for these values (acl's rule, see Permissions).
// The replacement is one pass, so a value that looks like a placeholder
// stays literal, as in acl.
func resolve(resource, username, clientID string) (string, bool) {
	if (strings.Contains(resource, placeholderUsername) && !usable(username)) ||
		(strings.Contains(resource, placeholderClientID) && !usable(clientID)) {
		return "", false
	}
	first, _, _ := strings.Cut(resource, "/")
	guarded := strings.HasPrefix(first, placeholderUsername) || strings.HasPrefix(first, placeholderClientID)
	resource = strings.NewReplacer(placeholderUsername, username, placeholderClientID, clientID).Replace(resource)
	if guarded && strings.HasPrefix(resource, "$") {
		return "", false
	}
	return resource, true
}

// usable is acl's rule for a value that may stand in for a placeholder
// without widening the permission.
func usable(v string) bool {
	return v != "" && !strings.ContainsAny(v, "/+#\x00") && utf8.ValidString(v)
}

// checkPlusBesideParent refuses read resources for which NATS would grant a
// subscription "X/#" that warden's coverage rule refuses: a resource "Y/+"
// and a resource Q of as many levels as Y, overlapping Y on X (the levelwise
// intersection), while no read resource covers "X/#". NATS grants "X.>"
// through "Y.*" and the parent "X" through Q.
func checkPlusBesideParent(reads []string) error {
	var m *acl.Bound
	for _, r := range reads {
		y, ok := strings.CutSuffix(r, "/+")
		if !ok {
			continue
		}
		ylevels := strings.Split(y, "/")
		for _, q := range reads {
			qlevels := strings.Split(q, "/")
			if len(qlevels) != len(ylevels) || qlevels[len(qlevels)-1] == "#" {
				continue
			}
			x, ok := intersect(ylevels, qlevels)
			if !ok {
				continue
			}
			if m == nil {
				perms := make([]acl.Permission, len(reads))
				for i, r := range reads {
					perms[i] = acl.Permission{Resource: r, Operation: acl.OpRead, Context: acl.ContextMQTT}
				}
				compiled, err := acl.Compile(acl.ContextMQTT, perms)
				if err != nil {
					return fmt.Errorf("natscallout: %w", err)
				}
				m = compiled.Bind("", "")
			}
			if !m.Covers(x + "/#") {
				return &UnexpressibleError{Resource: r, Reason: reasonPlusBesideParent + " (with " + q + ")"}
			}
		}
	}
	return nil
}

// intersect returns the filter matching exactly the topics both a and b
// match, level by level, when they have the same number of levels without
// '#'.
func intersect(a, b []string) (string, bool) {
	out := make([]string, len(a))
	for i := range a {
		switch {
		case a[i] == b[i], b[i] == "+":
			out[i] = a[i]
		case a[i] == "+":
			out[i] = b[i]
		default:
			return "", false
		}
	}
	return strings.Join(out, "/"), true
}
