// Package credential owns secrets: argon2id password hashing in the PHC
// string format, constant-time verification, the password policy and
// generation of random passwords that satisfy it, and login tokens (JWT
// signed with an Ed25519 key kept in the store, so every node verifies
// what any node issued; revocation deletes the token's record). The
// signing key rotates (Tokens.Rotate): retired keys keep verifying until
// their tokens have expired, and the public keys are published as a JWK
// Set (Tokens.JWKS) for services that verify tokens offline.
//
// Hashes are self-describing ($argon2id$v=19$m=..,t=..,p=..$salt$key), so
// parameters can be raised later: NeedsRehash tells that a stored hash was
// made with other parameters than the current ones, and a Rehasher
// replaces it after a login proves the password (HTTP and MQTT alike),
// keeping the password version, so no session ends.
//
// MFA: TOTP keys (pquerna/otp; RFC 6238 defaults) whose secrets are kept
// sealed with AES-256-GCM under one cluster key in the store; Check
// returns the time step a code matched, which the caller consumes in the
// same atomic update that accepts the code, so every code works once.
// Backup codes, login-challenge secrets and device tokens are random and
// stored as SHA-256 hashes. The rules of the second factor are the
// MFAService's, for every surface that needs them (the HTTP API decodes,
// authorizes, calls and renders): enrollment, keys (the last active one
// goes only with a code), the two-step login, the lock after too many
// wrong codes, and trusted devices. Its state lives on the user record,
// and each step is one atomic UpdateUser that checks and spends a code.
//
// The defence of password logins is here too, shared by every surface
// (MQTT CONNECT, HTTP logins) so they cannot drift apart: a Verifier runs
// argon2id on a bounded pool of workers (its size bounds the memory a
// login flood takes) with a cache of successful checks keyed by an HMAC,
// never by a secret; a Lockout counts failed passwords per (username,
// address), per username and per address, in bounded in-memory tables,
// and blocks password attempts only. A verification behind the lockout's
// Gate (VerifyIf, DummyIf with Lockout.Gate) checks it again once it
// holds a worker and counts its failure before letting the worker go, so
// guesses sent at once cannot all run. Apart from these two, the package
// holds no per-user state.
package credential
