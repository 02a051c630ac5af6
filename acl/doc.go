// Package acl owns the pure core of warden's permission model: the
// Permission record {resource, operation, context}, MQTT topic name and
// topic filter validation, and the compiled Matcher that decides publish,
// delivery and HTTP requests (Allows) and subscriptions (Covers).
//
// It must not do I/O, log, keep package-level mutable state or import
// anything beyond the standard library: the store, the auth hook and the
// admin API build on it, and it builds on nothing.
//
// Matching follows the MQTT 5 specification (§4.7, §4.8.2), not Mochi's
// ledger: '+' matches exactly one level (an empty one too), '#' matches the
// rest of the topic including its parent level, and a topic whose first
// level starts with '$' is not matched by a filter whose first level is a
// wildcard. HTTP path patterns use the same rules on '/'-separated paths.
//
// Resources may hold the placeholders {username} and {clientId}, as a whole
// level or part of one. They are bound per client with Matcher.Bind. A
// bound value that is empty, not valid UTF-8, or contains '/', '+', '#' or
// U+0000 makes its placeholder match nothing, and a placeholder that
// starts a topic's first level never matches a '$' topic, so a chosen
// username or client ID can never widen a permission.
//
// Compile builds a trie of levels once (in the style of nats-server's
// sublist); Allows and Covers walk it without allocating, in time
// proportional to the number of levels of the topic, not the number of
// permissions.
package acl
