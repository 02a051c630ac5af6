// Package credential owns secrets: argon2id password hashing in the PHC
// string format, constant-time verification, the password policy and
// generation of random passwords that satisfy it, and login tokens (JWT
// signed with an Ed25519 key kept in the store, so every node verifies
// what any node issued; revocation deletes the token's record).
//
// Hashes are self-describing ($argon2id$v=19$m=..,t=..,p=..$salt$key), so
// parameters can be raised later: NeedsRehash tells a caller that a
// stored hash was made with weaker parameters than the current ones.
package credential
