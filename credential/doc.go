// Package credential owns password handling: argon2id hashing in the PHC
// string format, constant-time verification, the password policy and
// generation of random passwords that satisfy it.
//
// Hashes are self-describing ($argon2id$v=19$m=..,t=..,p=..$salt$key), so
// parameters can be raised later: NeedsRehash tells a caller that a
// stored hash was made with weaker parameters than the current ones.
package credential
