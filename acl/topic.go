package acl

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrInvalidTopic is wrapped by ValidateTopicName errors: the string is not
// an MQTT topic name a client may publish to.
var ErrInvalidTopic = errors.New("invalid topic name")

// ErrInvalidFilter is wrapped by ValidateTopicFilter errors and by
// Permission.Validate errors about the resource: the string is not a valid
// MQTT topic filter or path pattern.
var ErrInvalidFilter = errors.New("invalid topic filter")

// maxTopicLen is the longest MQTT UTF-8 string: its length is a two-byte
// prefix (MQTT 5 §1.5.4).
const maxTopicLen = 65535

// sharePrefix starts a shared subscription's topic filter (MQTT 5 §4.8.2).
const sharePrefix = "$share/"

// ValidateTopicName reports whether topic is a valid MQTT 5 topic name
// (§4.7): 1 to 65535 bytes of well-formed UTF-8 without U+0000 and without
// the wildcard characters '+' and '#'. Empty levels are valid ("/", "a//b").
// The error wraps ErrInvalidTopic.
func ValidateTopicName(topic string) error {
	if problem := topicProblem(topic); problem != "" {
		return fmt.Errorf("%w: %s", ErrInvalidTopic, problem)
	}
	return nil
}

// ValidateTopicFilter reports whether filter is a valid MQTT 5 topic filter
// (§4.7): the same length and encoding rules as a topic name, '+' and '#'
// only as whole levels, '#' only as the last level. A shared subscription
// "$share/{ShareName}/{filter}" (§4.8.2) is valid when ShareName is at least
// one character without '/', '+' or '#' and filter is valid. The error
// wraps ErrInvalidFilter.
func ValidateTopicFilter(filter string) error {
	if problem := subscriptionProblem(filter); problem != "" {
		return fmt.Errorf("%w: %s", ErrInvalidFilter, problem)
	}
	return nil
}

// Byte classes for stringProblem.
const (
	classNUL      = 1 << iota // U+0000
	classWildcard             // '+' or '#'
	classNonASCII             // part of a multi-byte UTF-8 sequence
)

// byteClass maps each byte to its class; stringProblem looks bytes up here
// after its last full eight-byte word. It is filled once and only read.
var byteClass = func() (c [256]uint8) {
	c[0] = classNUL
	c['+'], c['#'] = classWildcard, classWildcard
	for b := utf8.RuneSelf; b < len(c); b++ {
		c[b] = classNonASCII
	}
	return c
}()

// Constants for testing eight bytes at once.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// hasZero reports whether a byte of w is zero.
func hasZero(w uint64) bool { return (w-ones)&^w&highs != 0 }

// stringProblem checks the rules every MQTT UTF-8 string obeys (length,
// no U+0000, well-formed UTF-8) and, with noWildcards, that s holds no '+'
// or '#'; it returns "" when s is fine. Like the other *Problem functions
// it returns constant strings and does not allocate, so the hot path can
// call it.
func stringProblem(s string, noWildcards bool) string {
	switch {
	case s == "":
		return "empty"
	case len(s) > maxTopicLen:
		return "longer than 65535 bytes"
	}
	var seen uint8
	rest := s
	for len(rest) >= 8 {
		// Eight bytes at a time: a word has a byte equal to c when
		// hasZero(w ^ c*ones) (the classic zero-byte test, exact).
		w := uint64(rest[0]) | uint64(rest[1])<<8 | uint64(rest[2])<<16 | uint64(rest[3])<<24 |
			uint64(rest[4])<<32 | uint64(rest[5])<<40 | uint64(rest[6])<<48 | uint64(rest[7])<<56
		if hasZero(w) {
			seen |= classNUL
		}
		if hasZero(w^'+'*ones) || hasZero(w^'#'*ones) {
			seen |= classWildcard
		}
		if w&highs != 0 {
			seen |= classNonASCII
		}
		rest = rest[8:]
	}
	for i := 0; i < len(rest); i++ {
		seen |= byteClass[rest[i]]
	}
	switch {
	case seen&classNUL != 0:
		return "contains U+0000"
	case noWildcards && seen&classWildcard != 0:
		return "contains a wildcard ('+' or '#')"
	case seen&classNonASCII != 0 && !utf8.ValidString(s):
		return "not valid UTF-8"
	}
	return ""
}

// topicProblem returns why topic is not a valid topic name, or "".
func topicProblem(topic string) string {
	return stringProblem(topic, true)
}

// pathProblem returns why path is not a request path an http Matcher can
// decide, or "". '+' and '#' in a request path are ordinary characters.
func pathProblem(path string) string {
	if p := stringProblem(path, false); p != "" {
		return p
	}
	if path[0] != '/' {
		return "does not start with '/'"
	}
	return ""
}

// subscriptionProblem returns why filter is not a valid topic filter or
// shared subscription, or "".
func subscriptionProblem(filter string) string {
	if !strings.HasPrefix(filter, sharePrefix) {
		return filterProblem(filter)
	}
	if p := stringProblem(filter, false); p != "" {
		return p
	}
	rest := filter[len(sharePrefix):]
	i := strings.IndexByte(rest, '/')
	switch {
	case i < 0:
		return "shared subscription has no topic filter after the share name"
	case i == 0:
		return "shared subscription has an empty share name"
	case strings.ContainsAny(rest[:i], "+#"):
		return "shared subscription's share name contains a wildcard ('+' or '#')"
	case i == len(rest)-1:
		return "shared subscription has an empty topic filter"
	}
	return filterProblem(rest[i+1:])
}

// filterProblem returns why filter is not a valid (non-shared) topic
// filter, or "". It jumps from wildcard to wildcard rather than looking at
// every byte: subscriptions are checked on the hot path too.
func filterProblem(filter string) string {
	if p := stringProblem(filter, false); p != "" {
		return p
	}
	for off := 0; ; {
		j := strings.IndexByte(filter[off:], '+')
		if j < 0 {
			break
		}
		i := off + j
		if (i > 0 && filter[i-1] != '/') || (i+1 < len(filter) && filter[i+1] != '/') {
			return "'+' must occupy a whole level"
		}
		off = i + 1
	}
	if i := strings.IndexByte(filter, '#'); i >= 0 {
		switch {
		case (i > 0 && filter[i-1] != '/') || (i+1 < len(filter) && filter[i+1] != '/'):
			return "'#' must occupy a whole level"
		case i+1 < len(filter):
			return "'#' must be the last level"
		}
	}
	return ""
}
