// Package directory owns the LDAP identity provider: its configuration,
// connecting to the directory (ldaps://, or ldap:// upgraded with StartTLS;
// plain ldap:// only when explicitly Insecure), finding and binding a user
// (search-then-bind with a service account, or a direct bind through a DN
// template), the user's groups (GROUP mode, nested groups resolved) or role
// names (ATTRIBUTE mode), and a short-lived cache of successful binds.
//
// It answers who a user is and whether the password is right; it does not
// decide what the user may do (mapping groups and role names to warden's
// roles is the caller's), and it never stores, logs or caches a password,
// nor caches a failure. Every value put into a search filter is escaped per
// RFC 4515 and every value put into a DN per RFC 4514, so a username cannot
// widen a search or name another entry.
//
// Service (service.go) provisions directory users into the store: it
// creates a user at its first directory login, keeps the roles the
// directory gives it (store.User.LdapRoles) current at each login, never
// lets a directory account take over a local user of the same name, and
// periodically ends the access of users the directory no longer has. It
// imports go-ldap, store and the standard library; the surfaces (authhook,
// admin) call it, never the reverse.
package directory
