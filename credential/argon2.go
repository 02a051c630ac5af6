package credential

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// MaxPasswordLen bounds the passwords warden hashes, in bytes, so a client
// cannot make the server hash megabytes per attempt.
const MaxPasswordLen = 1024

// Upper bounds on parameters accepted from a stored hash. A hash is data
// (it may come from a restored backup); without bounds a crafted one
// could make one verification allocate gigabytes or run for minutes.
const (
	maxMemoryKiB = 1 << 20 // 1 GiB
	maxTime      = 16
	maxSaltLen   = 64
	maxKeyLen    = 128
)

// Errors returned by Hash and Verify.
var (
	// ErrMalformedHash: the stored hash is not a well-formed argon2id PHC
	// string with sane parameters.
	ErrMalformedHash = errors.New("credential: malformed password hash")
	// ErrPasswordTooLong: the password exceeds MaxPasswordLen bytes.
	ErrPasswordTooLong = fmt.Errorf("credential: password longer than %d bytes", MaxPasswordLen)
)

// Params are argon2id cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// DefaultParams follow OWASP's argon2id recommendation (m=19 MiB, t=2,
// p=1): about 20 ms per hash on one core, which the broker's verification
// cache and worker pool make affordable.
var DefaultParams = Params{Memory: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// Validate reports parameters that are too weak or too expensive.
func (p Params) Validate() error {
	switch {
	case p.Memory < 8*uint32(p.Threads) || p.Memory < 1024 || p.Memory > maxMemoryKiB:
		return fmt.Errorf("credential: memory %d KiB out of range [1024, %d]", p.Memory, maxMemoryKiB)
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("credential: time %d out of range [1, %d]", p.Time, maxTime)
	case p.Threads < 1:
		return errors.New("credential: threads must be at least 1")
	case p.SaltLen < 8 || p.SaltLen > maxSaltLen:
		return fmt.Errorf("credential: salt length %d out of range [8, %d]", p.SaltLen, maxSaltLen)
	case p.KeyLen < 16 || p.KeyLen > maxKeyLen:
		return fmt.Errorf("credential: key length %d out of range [16, %d]", p.KeyLen, maxKeyLen)
	}
	return nil
}

// Hash returns the argon2id PHC encoding of password with a fresh random salt.
func Hash(password string, p Params) (string, error) {
	if len(password) > MaxPasswordLen {
		return "", ErrPasswordTooLong
	}
	if err := p.Validate(); err != nil {
		return "", err
	}
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("credential: salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify reports whether password matches the encoded hash. The key
// comparison is constant-time. A malformed hash, or one whose parameters
// exceed sane bounds, is an error (never a match).
func Verify(password, encoded string) (bool, error) {
	if len(password) > MaxPasswordLen {
		return false, ErrPasswordTooLong
	}
	p, salt, key, err := decode(encoded)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// NeedsRehash reports whether encoded was made with parameters other than
// p (or is unreadable), so a caller holding the plaintext after a
// successful login can store a fresh hash.
func NeedsRehash(encoded string, p Params) bool {
	got, salt, key, err := decode(encoded)
	if err != nil {
		return true
	}
	return got.Memory != p.Memory || got.Time != p.Time || got.Threads != p.Threads ||
		uint32(len(salt)) != p.SaltLen || uint32(len(key)) != p.KeyLen
}

// decode parses $argon2id$v=19$m=M,t=T,p=P$salt$key.
func decode(encoded string) (Params, []byte, []byte, error) {
	var p Params
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, ErrMalformedHash
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, fmt.Errorf("%w: unsupported version %q", ErrMalformedHash, parts[2])
	}
	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return p, nil, nil, ErrMalformedHash
	}
	var vals [3]uint64
	for i, name := range []string{"m=", "t=", "p="} {
		v, ok := strings.CutPrefix(fields[i], name)
		if !ok {
			return p, nil, nil, ErrMalformedHash
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return p, nil, nil, ErrMalformedHash
		}
		vals[i] = n
	}
	if vals[2] > 255 {
		return p, nil, nil, ErrMalformedHash
	}
	p.Memory, p.Time, p.Threads = uint32(vals[0]), uint32(vals[1]), uint8(vals[2])
	b64 := base64.RawStdEncoding.Strict()
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return p, nil, nil, ErrMalformedHash
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil {
		return p, nil, nil, ErrMalformedHash
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	// Stored hashes may come from other tools with smaller memory than our
	// Validate floor (e.g. the RFC 9106 test vectors); only refuse what is
	// degenerate or too expensive to compute.
	if p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemoryKiB || p.Time < 1 || p.Time > maxTime ||
		p.Threads < 1 || len(salt) < 8 || len(salt) > maxSaltLen || len(key) < 16 || len(key) > maxKeyLen {
		return p, nil, nil, fmt.Errorf("%w: parameters out of bounds", ErrMalformedHash)
	}
	return p, salt, key, nil
}
