// Package pki owns warden's internal certificate authority: creating,
// loading and persisting the CA key and certificate, issuing the server
// certificate for the TLS listeners and client certificates for mutual
// TLS, checking certificate signing requests (key type and size,
// signature, common name = username), SHA-256 fingerprints, and the pool
// of trusted certificates.
//
// It must not decide who a certificate authenticates: mapping a verified
// certificate's common name and fingerprint to a user and its grant types
// belongs to authhook, and the inventory of extra trusted CAs is stored
// through store by admin. pki only makes and checks certificates.
//
// The CA is shared by every node through the store (LoadOrCreateCA), so a
// client certificate issued on one node is trusted by all of them.
package pki
