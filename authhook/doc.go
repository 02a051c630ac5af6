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
// With Options.Directory it lets the directory decide the password of
// directory users and of names the store does not know (directory.go).
// It lists the connected clients and kicks one for the admin API
// (clients.go); with Options.NodeID it publishes this node's list to the
// store and carries out kicks other nodes ask for (roster.go).
//
// A connection attempt is decided in three steps that take no Mochi packet
// or client, so a NATS auth callout or a broker's auth webhook can reuse
// them (connect.go, credentials.go): resolve the user, check the
// credentials, admit the client; a refusal is one value (what the client
// is told, the reason logged and audited, how it counts towards the
// lockout). OnConnect is the Mochi edge: it builds the attempt from the
// CONNECT, registers the admitted client and sends the CONNACK.
//
// The hot path is OnACLCheck: it finds the client's immutable session
// snapshot in a sync.Map keyed by *mqtt.Client and asks its bound matcher,
// without locks or allocations. Everything that changes builds a new
// snapshot and swaps it in.
//
// The hook must be the only one on the server that provides
// OnConnectAuthenticate or OnACLCheck: Mochi ORs their answers.
package authhook
