package credential

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"

	"github.com/warden-mqtt/warden/store"
)

// TOTP parameters: RFC 6238's defaults, which is what authenticator apps
// assume whatever the otpauth URI says.
const (
	// TOTPIssuer names warden in the otpauth URI and in the apps' lists.
	TOTPIssuer = "warden"
	// TOTPPeriod is the length of one time step.
	TOTPPeriod = 30 * time.Second
	// TOTPDigits is the length of a code.
	TOTPDigits = 6
	// TOTPSkew is how many steps before and after the current one are
	// accepted, for clock drift and for a code typed just as it changed.
	TOTPSkew = 1
	// totpSecretSize is 160 bits, the length RFC 4226 recommends for
	// HMAC-SHA1 keys.
	totpSecretSize = 20
)

// SettingMFAKey is the store setting holding the AES-256 key that encrypts
// TOTP secrets at rest (base64). Every node of a cluster uses this one key;
// losing it makes every enrolled key unusable.
const SettingMFAKey = "mfa/encryption-key"

// BackupCodeCount is how many backup codes an enrollment hands out.
const BackupCodeCount = 10

// backupCodeChars is the length of a backup code without its dashes: 16
// base32 characters are 80 bits, too many to guess online or to recover
// from a leaked SHA-256 hash offline.
const backupCodeChars = 16

// sealedPrefix versions the encrypted-secret format, so the scheme or the
// key can change later without guessing what a stored value is.
const sealedPrefix = "v1:"

// Errors returned by MFA.Check. Neither says which part of a code was
// wrong; callers answer both the same way to clients.
var (
	// ErrCodeInvalid: the code is malformed or matches no step of the
	// window.
	ErrCodeInvalid = errors.New("credential: invalid one-time code")
	// ErrCodeReplayed: the code is right but its step was already used
	// (at or before the key's LastStep).
	ErrCodeReplayed = errors.New("credential: one-time code already used")
	// ErrSecretUnreadable: a stored secret does not decrypt with the
	// cluster's key (another key, or a corrupt record).
	ErrSecretUnreadable = errors.New("credential: TOTP secret cannot be decrypted")
)

// MFA creates and checks TOTP keys whose secrets are kept encrypted with
// AES-256-GCM under the cluster's key (SettingMFAKey). It holds no per-user
// state: callers store the keys and consume the matched step atomically.
type MFA struct {
	aead cipher.AEAD
}

// NewMFA loads the cluster's TOTP encryption key from the store, creating
// it if the store has none; nodes racing to create it agree on the first
// one stored. A store error is returned, never replaced by a fresh key
// (secrets sealed by another node would become unreadable).
func NewMFA(ctx context.Context, s store.Store) (*MFA, error) {
	raw, err := s.Setting(ctx, SettingMFAKey)
	if errors.Is(err, store.ErrNotFound) {
		raw, err = createMFAKey(ctx, s)
	}
	if err != nil {
		return nil, fmt.Errorf("credential: load MFA encryption key: %w", err)
	}
	key, err := base64.StdEncoding.DecodeString(string(raw))
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("credential: setting %q is not a base64 AES-256 key", SettingMFAKey)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &MFA{aead: aead}, nil
}

func createMFAKey(ctx context.Context, s store.Store) ([]byte, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	raw := []byte(base64.StdEncoding.EncodeToString(key))
	err := s.CreateSetting(ctx, SettingMFAKey, raw)
	if errors.Is(err, store.ErrConflict) {
		return s.Setting(ctx, SettingMFAKey)
	}
	if err != nil {
		return nil, err
	}
	return raw, nil
}

// NewKey creates a pending TOTP key for the user: the record to store,
// with its secret sealed, and the otpauth URI (which holds the secret in
// the clear: show it to the user once, never log or store it).
func (m *MFA) NewKey(userID, username string, now time.Time) (store.MFAKey, string, error) {
	k, err := totp.Generate(totp.GenerateOpts{
		Issuer: TOTPIssuer, AccountName: username, Period: uint(TOTPPeriod / time.Second),
		SecretSize: totpSecretSize, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1,
	})
	if err != nil {
		return store.MFAKey{}, "", fmt.Errorf("credential: generate TOTP key: %w", err)
	}
	rec := store.MFAKey{ID: store.NewID(), Type: store.MFATypeTOTP, Status: store.MFAStatusPending, CreatedAt: now}
	if rec.Secret, err = m.seal(userID, rec.ID, k.Secret()); err != nil {
		return store.MFAKey{}, "", err
	}
	return rec, k.URL(), nil
}

// Check verifies code against key at now, accepting the current step and
// TOTPSkew steps on either side, and returns the step it matched: the
// caller stores it as the key's LastStep in the same atomic update that
// accepts the code, so each code is used once. A code whose step is at or
// before key.LastStep is ErrCodeReplayed.
func (m *MFA) Check(userID string, key store.MFAKey, code string, now time.Time) (uint64, error) {
	code = strings.ReplaceAll(code, " ", "") // apps show "123 456"
	if len(code) != TOTPDigits || strings.Trim(code, "0123456789") != "" {
		return 0, ErrCodeInvalid
	}
	secret, err := m.open(userID, key.ID, key.Secret)
	if err != nil {
		return 0, err
	}
	cur := uint64(now.Unix()) / uint64(TOTPPeriod/time.Second)
	opts := hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}
	var matched, replayed bool
	var step uint64
	// Every step of the window is computed and compared, so the time taken
	// does not tell which one matched.
	for s := cur - TOTPSkew; s <= cur+TOTPSkew; s++ {
		want, err := hotp.GenerateCodeCustom(secret, s, opts)
		if err != nil {
			return 0, ErrSecretUnreadable
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) != 1 {
			continue
		}
		if s <= key.LastStep {
			replayed = true
			continue
		}
		matched, step = true, s
	}
	switch {
	case matched:
		return step, nil
	case replayed:
		return 0, ErrCodeReplayed
	}
	return 0, ErrCodeInvalid
}

// aad binds a sealed secret to its user and key, so a secret copied into
// another record does not decrypt.
func aad(userID, keyID string) []byte {
	return []byte("warden/mfa/totp\x00" + userID + "\x00" + keyID)
}

func (m *MFA) seal(userID, keyID, secret string) (string, error) {
	nonce := make([]byte, m.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := m.aead.Seal(nonce, nonce, []byte(secret), aad(userID, keyID))
	return sealedPrefix + base64.RawURLEncoding.EncodeToString(out), nil
}

func (m *MFA) open(userID, keyID, sealed string) (string, error) {
	raw, ok := strings.CutPrefix(sealed, sealedPrefix)
	if !ok {
		return "", ErrSecretUnreadable
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || len(b) < m.aead.NonceSize() {
		return "", ErrSecretUnreadable
	}
	n := m.aead.NonceSize()
	secret, err := m.aead.Open(nil, b[:n], b[n:], aad(userID, keyID))
	if err != nil {
		return "", ErrSecretUnreadable
	}
	return string(secret), nil
}

// NewBackupCodes returns BackupCodeCount fresh backup codes to show the
// user once, and their hashes to store.
func NewBackupCodes() (codes, hashes []string, err error) {
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	for range BackupCodeCount {
		b := make([]byte, backupCodeChars*5/8)
		if _, err := rand.Read(b); err != nil {
			return nil, nil, err
		}
		c := enc.EncodeToString(b)
		// Groups of four are easier to copy from paper.
		c = c[0:4] + "-" + c[4:8] + "-" + c[8:12] + "-" + c[12:16]
		codes = append(codes, c)
		hashes = append(hashes, HashSecret(normalizeBackupCode(c)))
	}
	return codes, hashes, nil
}

// MatchBackupCode returns the index in hashes of code's hash, or -1. Case,
// spaces and dashes do not matter. Every hash is compared, in constant
// time, so the time taken does not tell where a match is.
func MatchBackupCode(hashes []string, code string) int {
	c := normalizeBackupCode(code)
	if len(c) != backupCodeChars {
		return -1
	}
	h := HashSecret(c)
	found := -1
	for i, s := range hashes {
		if subtle.ConstantTimeCompare([]byte(s), []byte(h)) == 1 {
			found = i
		}
	}
	return found
}

func normalizeBackupCode(c string) string {
	return strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(c))
}

// NewSecret returns a random opaque secret (256 bits, URL-safe base64)
// for a login challenge or a device token, and its hash to store.
func NewSecret() (secret, hash string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	secret = base64.RawURLEncoding.EncodeToString(b)
	return secret, HashSecret(secret), nil
}

// HashSecret is the stored form of a high-entropy secret (challenge
// secret, backup code, device token): SHA-256, hex. Such secrets cannot
// be guessed from their hash, so a password hash's cost is not needed.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// SecretMatches reports, in constant time, whether secret hashes to hash.
func SecretMatches(hash, secret string) bool {
	return subtle.ConstantTimeCompare([]byte(hash), []byte(HashSecret(secret))) == 1
}
