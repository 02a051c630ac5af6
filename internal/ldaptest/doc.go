// Package ldaptest runs a real OpenLDAP slapd for tests: a throw-away
// directory on free loopback ports (ldap:// with StartTLS and ldaps://),
// configured from a slapd.conf written into the test's temporary directory,
// with TLS certificates made in the test and a seeded tree of people and
// groups whose names, passwords, groups and roles are exported here.
//
// It owns only the test directory's life (start, change, kill); it never
// reads or writes the system's slapd configuration (/etc/ldap/slapd.d) nor
// talks to a system slapd instance. It imports the standard library only and
// is imported by tests alone. A missing slapd or ldap-utils fails the test,
// naming the Debian package to install.
package ldaptest
