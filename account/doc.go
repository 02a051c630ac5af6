// Package account owns the rules for changing users and roles, for every
// surface that changes them: the admin HTTP API today, and the web UI,
// the broker webhooks and the NATS callout that will call the same
// Service. The rules: usernames and role names are valid and free
// (credential's username rules applied), the last active holder of
// RoleAdmin cannot lose it, a user's own role stays its own (named after
// it, unshared, never granted to another user), RoleAdmin itself is
// fixed, no privilege escalation (an actor grants only what it holds,
// after Kubernetes RBAC), changing how another user logs in or renaming
// a user whose permissions use {username} takes what that grants, and a
// password change ends the user's other sessions.
//
// A Service method takes the Actor (the authenticated user, its
// effective permissions and token) and a typed request, and returns the
// stored record or an *Error whose kind (ErrInvalid, ErrForbidden,
// ErrNotFound, ErrConflict) the surface maps to its own answer; store,
// credential (policy, busy pool) and acl errors pass through wrapped.
// The shape is smallstep's handler → Authority: the surface decodes,
// authenticates, calls and renders; it decides nothing here.
//
// It must not know HTTP (no statuses, no requests) or keep state of its
// own: every change is made through the store, checks and change in one
// store transaction where an invariant spans records (Store.Atomic), so
// that concurrent changes on any node cannot both pass a check. It sits
// below admin and above credential and store in the one-way flow: admin
// → account → credential → store → acl.
package account
