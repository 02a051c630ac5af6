// Package pki owns warden's internal certificate authority: creating,
// loading and persisting the CA key and certificate, issuing the server
// certificate for the TLS listeners and client certificates for mutual
// TLS, checking certificate signing requests (key type and size,
// signature, common name = username), SHA-256 fingerprints, and the
// trusted certificates client certificates are verified against: the
// internal CA, the operator's --client-ca bundle, and the inventory added
// through /api/certificates, kept in the store and followed live by every
// node (TrustStore).
//
// It must not decide who a certificate authenticates: mapping a verified
// certificate's common name and fingerprint to a user and its grant types
// belongs to authhook. pki only makes, checks and trusts certificates.
//
// The CA is shared by every node through the store (LoadOrCreateCA), so a
// client certificate issued on one node is trusted by all of them.
package pki
