package acl

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidPermission is wrapped by every error that rejects a Permission
// (and by Compile when a permission is invalid), so callers can map it to a
// client error with errors.Is. When the resource is at fault the error also
// wraps ErrInvalidFilter.
var ErrInvalidPermission = errors.New("invalid permission")

// Operation is what a permission lets its holder do with a resource: read
// (subscribe, receive, HTTP GET/HEAD), write (publish, other HTTP methods)
// or both.
type Operation string

// The operations a Permission may grant. The string values are the JSON
// values of the Connectware API.
const (
	// OpRead grants subscribing to and receiving from MQTT topics, and
	// GET/HEAD on HTTP paths.
	OpRead Operation = "read"
	// OpWrite grants publishing to MQTT topics, and the other HTTP methods.
	OpWrite Operation = "write"
	// OpReadWrite grants both OpRead and OpWrite.
	OpReadWrite Operation = "readWrite"
)

// Bits of an operation mask kept on trie nodes.
const (
	bitRead  uint8 = 1 << 0
	bitWrite uint8 = 1 << 1
)

// mask returns the operation's bits, or 0 when o is not a known operation.
func (o Operation) mask() uint8 {
	switch o {
	case OpRead:
		return bitRead
	case OpWrite:
		return bitWrite
	case OpReadWrite:
		return bitRead | bitWrite
	}
	return 0
}

// Allows reports whether a permission granting o also grants want:
// readWrite satisfies read, write and readWrite; read and write satisfy
// only themselves. Unknown operations, on either side, allow nothing.
func (o Operation) Allows(want Operation) bool {
	w := want.mask()
	return w != 0 && o.mask()&w == w
}

// Context says what a permission's resource names: an MQTT topic filter or
// an HTTP path pattern of the admin API.
type Context string

// The contexts a Permission may apply to.
const (
	// ContextMQTT: the resource is an MQTT topic filter.
	ContextMQTT Context = "mqtt"
	// ContextHTTP: the resource is an HTTP path pattern with a leading '/'.
	ContextHTTP Context = "http"
)

func (c Context) valid() bool { return c == ContextMQTT || c == ContextHTTP }

// Permission grants an operation on a resource in a context. A user's
// effective permissions are the union of its roles' permissions; there is
// no deny.
type Permission struct {
	// ID identifies the permission in the store; matching ignores it.
	ID string `json:"id,omitempty"`
	// Resource is an MQTT topic filter (context mqtt) or an HTTP path
	// pattern (context http), with '+' and '#' wildcards and optionally the
	// placeholders {username} and {clientId}.
	Resource string `json:"resource"`
	// Operation is read, write or readWrite.
	Operation Operation `json:"operation"`
	// Context is mqtt or http.
	Context Context `json:"context"`
}

// Validate reports whether the permission can be compiled: a known
// operation and context, and a resource that is a valid MQTT topic filter
// (context mqtt) or a valid path pattern starting with '/' (context http).
// Shared-subscription filters ($share/...) are refused as resources: a
// permission on the underlying filter already covers shared subscriptions
// to it. The error wraps ErrInvalidPermission and names the field at fault.
func (p Permission) Validate() error {
	if p.Operation.mask() == 0 {
		return fmt.Errorf("%w: operation %q is not one of read, write, readWrite", ErrInvalidPermission, clip(string(p.Operation)))
	}
	switch p.Context {
	case ContextMQTT:
		if strings.HasPrefix(p.Resource, sharePrefix) {
			return fmt.Errorf("%w: resource: %w: a shared subscription ($share/...) cannot be a permission; grant the topic filter after the share name", ErrInvalidPermission, ErrInvalidFilter)
		}
	case ContextHTTP:
		if !strings.HasPrefix(p.Resource, "/") {
			return fmt.Errorf("%w: resource: %w: an http path pattern must start with '/'", ErrInvalidPermission, ErrInvalidFilter)
		}
	default:
		return fmt.Errorf("%w: context %q is not one of mqtt, http", ErrInvalidPermission, clip(string(p.Context)))
	}
	if problem := filterProblem(p.Resource); problem != "" {
		return fmt.Errorf("%w: resource: %w: %s", ErrInvalidPermission, ErrInvalidFilter, problem)
	}
	return nil
}

// clip shortens a user-supplied value quoted in an error message.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
