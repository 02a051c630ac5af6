// Package store owns the persistence of warden's model: users, roles with
// their permissions, login-token records, registry requests and settings
// (CA, signing keys, registry state), together with a change feed (Watch)
// that tells every node about every write, and snapshot/restore of the
// whole model with its backup archive format (archive.go).
//
// Two implementations stand behind the one Store interface: an embedded
// bbolt file (OpenBolt, the default) and Redis (OpenRedis, for several
// nodes sharing one model). Both run the same model logic over a small
// transactional key-value backend, so uniqueness, cascades and atomicity
// are written once and proven once by the contract suite in
// store/storetest.
//
// Instrument wraps any Store with Prometheus metrics (latency and failures
// per operation, reachability of the backing service) without changing
// its behaviour: the contract suite runs against the wrapper too.
//
// The store holds data and enforces invariants that need atomicity
// (unique names, usernames unique under case folding and stored in NFC,
// no half-written records, no role deleted while held, valid and
// distinct directory group DNs on a role: NormalizeDN, which the login
// path also compares directory groups with, RolesByLdapGroups); Atomic lets a
// caller run several changes and a check of its own (the last
// administrator) as one transaction. It
// does not hash passwords, apply password policy or decide access: those
// belong to credential and acl.
package store
