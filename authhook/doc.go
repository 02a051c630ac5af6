// Package authhook owns warden's Mochi hook: it authenticates every
// CONNECT (password, login token, client certificate, grant types),
// decides every PUBLISH, SUBSCRIBE and delivery against the user's compiled
// permissions, applies the publish prefix, limits brute force (with the
// credential package's Verifier and Lockout, shared with the HTTP logins:
// failed passwords never keep a valid certificate or token out, and a
// refusal does not tell whether the user exists), and follows
// the store's change feed so an admin's change reaches connected clients at
// once (snapshots swapped, subscriptions pruned, revoked clients
// disconnected, their pending wills and queued messages withdrawn). It
// also caps the persistent sessions one user keeps offline (sessions.go).
//
// The hot path is OnACLCheck: it finds the client's immutable session
// snapshot in a sync.Map keyed by *mqtt.Client and asks its bound matcher,
// without locks or allocations. Everything that changes builds a new
// snapshot and swaps it in.
//
// The hook must be the only one on the server that provides
// OnConnectAuthenticate or OnACLCheck: Mochi ORs their answers.
package authhook
