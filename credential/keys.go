package credential

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/warden-mqtt/warden/store"
)

// SettingKeySet is the store setting holding the number of the newest
// generation of the token key set. Generation N itself is stored under
// SettingKeySet + "/N"; the number is only where loading starts looking
// (loading goes on to N+1, N+2, ... while they exist), so a node that
// stored a generation but not the number loses nothing.
//
// A generation is written once, with CreateSetting: two nodes rotating at
// the same moment cannot both create generation N+1, so every node agrees
// on one current key without a lock.
const SettingKeySet = "jwt/keys"

// keyRetireGrace is added to a retired key's verification window. A node
// learns of a rotation through the change feed, a little after it
// happened, and may sign with the old key meanwhile; the grace covers
// those tokens to the end of their lifetime.
const keyRetireGrace = time.Hour

// missReloadInterval bounds how often a token with an unknown kid makes
// a node re-read its key set from the store: often enough to pick up a
// rotation before the change feed reports it, rarely enough that tokens
// with made-up kids cannot turn Parse into a store load generator.
const missReloadInterval = time.Second

// missReloadTimeout bounds the store read of such a reload, which runs
// inside Parse (on the MQTT connect path) without a caller's context.
const missReloadTimeout = 2 * time.Second

// Reasons a key lookup fails, mapped by classify to ErrTokenInvalid with
// a fixed reason.
var (
	errUnknownKey = errors.New("unknown signing key")
	errKeyRetired = errors.New("signing key retired")
)

// storedKeySet is one generation of the key set as stored: the current
// key first (the only one with its private half), then the retired keys
// that may still verify tokens.
type storedKeySet struct {
	Seq  uint64      `json:"seq"`
	Keys []storedKey `json:"keys"`
}

type storedKey struct {
	KID string `json:"kid"`
	// Private is the PKCS#8 PEM private key, for the current key only: a
	// retired key only verifies, so its private half is not copied on.
	Private string `json:"private,omitempty"`
	// Public is the raw 32-byte Ed25519 public key, base64url.
	Public    string     `json:"public"`
	CreatedAt time.Time  `json:"createdAt"`
	RetiredAt *time.Time `json:"retiredAt,omitempty"`
	// Legacy marks the key of the single-key setting of earlier releases
	// (SettingSigningKey): tokens without a kid header were signed by it
	// and verify against it alone.
	Legacy bool `json:"legacy,omitempty"`
}

// keySet is a loaded generation, immutable once published.
type keySet struct {
	raw    []byte // the stored value, to skip reloads that change nothing
	seq    uint64
	kid    string // the current key
	priv   ed25519.PrivateKey
	byKID  map[string]*verifyKey
	legacy *verifyKey // nil once the legacy key left the set
	order  []*verifyKey
}

// verifyKey is one key that verifies tokens.
type verifyKey struct {
	kid       string
	pub       ed25519.PublicKey
	createdAt time.Time
	retiredAt time.Time // zero for the current key
}

// usable reports whether k still verifies at now: the current key always;
// a retired one until every token it can have signed has expired.
func (t *Tokens) usable(k *verifyKey, now time.Time) bool {
	return k.retiredAt.IsZero() || now.Before(k.retiredAt.Add(t.maxTTL+keyRetireGrace+tokenLeeway))
}

func keySetSetting(seq uint64) string { return SettingKeySet + "/" + strconv.FormatUint(seq, 10) }

// keyID is the RFC 7638 JWK thumbprint of an Ed25519 public key: stable,
// derived from the key alone, so nodes migrating the same legacy key at
// the same time write the same kid.
func keyID(pub ed25519.PublicKey) string {
	// Members in lexicographic order, no whitespace (RFC 7638 §3).
	sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// newStoredKey generates a fresh current key.
func newStoredKey(now time.Time) (storedKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return storedKey{}, err
	}
	return storedKeyFor(priv, pub, now)
}

func storedKeyFor(priv ed25519.PrivateKey, pub ed25519.PublicKey, now time.Time) (storedKey, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return storedKey{}, err
	}
	return storedKey{
		KID:       keyID(pub),
		Private:   string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		Public:    base64.RawURLEncoding.EncodeToString(pub),
		CreatedAt: now,
	}, nil
}

// readKeySet returns the newest stored generation, creating generation 1
// from the legacy single-key setting (itself created if absent) when the
// store has none. A store error is returned, never papered over with a
// fresh key (nodes would then sign with different keys).
func (t *Tokens) readKeySet(ctx context.Context) ([]byte, error) {
	for range 3 {
		raw, seq, err := latestKeySet(ctx, t.store)
		if err != nil {
			return nil, err
		}
		if raw != nil {
			t.notePointer(ctx, seq)
			return raw, nil
		}
		if err := t.migrateLegacyKey(ctx); err != nil && !errors.Is(err, store.ErrConflict) {
			return nil, err
		}
		// Created by us or, on ErrConflict, by a node racing us: either
		// way generation 1 now exists; read it like any other.
	}
	return nil, errors.New("credential: token key set vanished while loading")
}

// latestKeySet probes generations from the stored number on; raw is nil
// when the store holds none.
func latestKeySet(ctx context.Context, s store.Store) (raw []byte, seq uint64, err error) {
	start := uint64(1)
	ptr, err := s.Setting(ctx, SettingKeySet)
	switch {
	case err == nil:
		n, perr := strconv.ParseUint(strings.TrimSpace(string(ptr)), 10, 64)
		if perr != nil || n == 0 {
			return nil, 0, fmt.Errorf("credential: setting %q is not a generation number", SettingKeySet)
		}
		start = n
	case errors.Is(err, store.ErrNotFound):
	default:
		return nil, 0, fmt.Errorf("credential: load token keys: %w", err)
	}
	for n := start; ; n++ {
		v, err := s.Setting(ctx, keySetSetting(n))
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("credential: load token keys: %w", err)
		}
		raw, seq = v, n
	}
	if raw == nil && start > 1 {
		return nil, 0, fmt.Errorf("credential: setting %q names generation %d, which is missing", SettingKeySet, start)
	}
	return raw, seq, nil
}

// notePointer stores the newest generation number if the stored one is
// behind. Best effort: the number is a hint, and a failure here must not
// fail a load or a rotation that already succeeded.
func (t *Tokens) notePointer(ctx context.Context, seq uint64) {
	cur, err := t.store.Setting(ctx, SettingKeySet)
	if err == nil {
		if n, perr := strconv.ParseUint(strings.TrimSpace(string(cur)), 10, 64); perr == nil && n >= seq {
			return
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return
	}
	if err := t.store.PutSetting(ctx, SettingKeySet, []byte(strconv.FormatUint(seq, 10))); err != nil {
		t.log.Warn("token key set generation number not stored", "err", err)
	}
}

// migrateLegacyKey creates generation 1 holding the key of the
// single-key setting of earlier releases (created now on a new store, so
// that nodes of an earlier release in a rolling upgrade sign with a key
// this one accepts). ErrConflict (wrapped) if another node was first.
func (t *Tokens) migrateLegacyKey(ctx context.Context) error {
	priv, err := loadSigningKey(ctx, t.store)
	if err != nil {
		return err
	}
	k, err := storedKeyFor(priv, priv.Public().(ed25519.PublicKey), t.now().UTC().Truncate(time.Second))
	if err != nil {
		return err
	}
	k.Legacy = true
	raw, err := json.Marshal(storedKeySet{Seq: 1, Keys: []storedKey{k}})
	if err != nil {
		return err
	}
	if err := t.store.CreateSetting(ctx, keySetSetting(1), raw); err != nil {
		return fmt.Errorf("credential: migrate token signing key: %w", err)
	}
	return nil
}

// decodeKeySet checks a stored generation: the current key first with
// its private half matching its public one, then retired keys, kids
// unique and equal to their keys' thumbprints.
func decodeKeySet(raw []byte) (*keySet, error) {
	var s storedKeySet
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("credential: token key set: %w", err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("credential: token key set generation %d: "+format, append([]any{s.Seq}, args...)...)
	}
	if len(s.Keys) == 0 {
		return nil, bad("no keys")
	}
	ks := &keySet{raw: raw, seq: s.Seq, byKID: make(map[string]*verifyKey, len(s.Keys))}
	for i, sk := range s.Keys {
		pub, err := base64.RawURLEncoding.Strict().DecodeString(sk.Public)
		if err != nil || len(pub) != ed25519.PublicKeySize {
			return nil, bad("key %d: public key is not 32 bytes of base64url", i)
		}
		if sk.KID != keyID(pub) {
			return nil, bad("key %d: kid is not the key's thumbprint", i)
		}
		if ks.byKID[sk.KID] != nil {
			return nil, bad("key %d: kid listed twice", i)
		}
		k := &verifyKey{kid: sk.KID, pub: pub, createdAt: sk.CreatedAt}
		if i == 0 {
			if sk.RetiredAt != nil || sk.Private == "" {
				return nil, bad("the first key is not a current key with its private half")
			}
			priv, err := decodePrivateKey([]byte(sk.Private), "token key set")
			if err != nil {
				return nil, err
			}
			if !priv.Public().(ed25519.PublicKey).Equal(ed25519.PublicKey(pub)) {
				return nil, bad("the current key's private and public halves differ")
			}
			ks.kid, ks.priv = sk.KID, priv
		} else {
			if sk.RetiredAt == nil {
				return nil, bad("key %d: a key after the first has no retiredAt", i)
			}
			k.retiredAt = sk.RetiredAt.UTC()
		}
		if sk.Legacy {
			ks.legacy = k
		}
		ks.byKID[sk.KID] = k
		ks.order = append(ks.order, k)
	}
	return ks, nil
}

// reloadLocked reads the newest generation and publishes it if it
// differs from the loaded one. t.mu must be held, so a reload that read
// an older value never overwrites one that read a newer value.
func (t *Tokens) reloadLocked(ctx context.Context) error {
	raw, err := t.readKeySet(ctx)
	if err != nil {
		return err
	}
	if cur := t.keys.Load(); cur != nil && string(cur.raw) == string(raw) {
		return nil
	}
	ks, err := decodeKeySet(raw)
	if err != nil {
		return err
	}
	t.keys.Store(ks)
	return nil
}

// reloadForKID re-reads the key set because a token names a kid this node
// does not know: another node may have rotated, and the change feed has
// not told us yet. It returns the key, or nil if the store does not know
// it either (or was asked too recently).
func (t *Tokens) reloadForKID(ctx context.Context, kid string) *verifyKey {
	t.mu.Lock()
	defer t.mu.Unlock()
	if k := t.keys.Load().byKID[kid]; k != nil {
		return k // a reload while we waited found it
	}
	now := t.now()
	if !t.lastMiss.IsZero() && now.Sub(t.lastMiss) < missReloadInterval && !now.Before(t.lastMiss) {
		return nil
	}
	t.lastMiss = now
	ctx, cancel := context.WithTimeout(ctx, missReloadTimeout)
	defer cancel()
	if err := t.reloadLocked(ctx); err != nil {
		t.log.Warn("token keys not reloaded for an unknown kid", "err", err)
		return nil
	}
	return t.keys.Load().byKID[kid]
}

// follow reloads the key set on every change of a key setting and on a
// reset (restore, missed events) until the feed ends. A failed reload is
// retried with backoff; the loaded keys keep serving meanwhile.
func (t *Tokens) follow(ctx context.Context, events <-chan store.Event) {
	store.Follow(ctx, events,
		func(e store.Event) bool { return e.Kind == store.KindSetting && strings.HasPrefix(e.ID, SettingKeySet) },
		func(ctx context.Context) error {
			t.mu.Lock()
			defer t.mu.Unlock()
			return t.reloadLocked(ctx)
		},
		minKeyReloadRetry, maxKeyReloadRetry,
		func(err error, retryIn time.Duration) {
			t.log.Warn("token keys not reloaded; keeping the loaded ones", "err", err, "retry_in", retryIn)
		})
}

// Backoff bounds of follow's retries.
const (
	minKeyReloadRetry = 100 * time.Millisecond
	maxKeyReloadRetry = 30 * time.Second
)

// Rotate makes a new key the current one: tokens are signed with it from
// now on, on this node at once and on every node sharing the store as
// soon as the change feed (or a token with the new kid) reaches it. The
// previous key is retired: it keeps verifying the tokens it signed until
// the longest token lifetime (TokenOptions.MaxTTL) has passed, and leaves
// the key set at a later rotation. If another node rotated at the same
// moment, its key becomes current instead and Rotate succeeds: either
// way the key that was current before is retired.
func (t *Tokens) Rotate(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	raw, err := t.readKeySet(ctx)
	if err != nil {
		return err
	}
	var cur storedKeySet
	if err := json.Unmarshal(raw, &cur); err != nil {
		return fmt.Errorf("credential: token key set: %w", err)
	}
	if _, err := decodeKeySet(raw); err != nil {
		return err
	}
	now := t.now().UTC()
	fresh, err := newStoredKey(now.Truncate(time.Second))
	if err != nil {
		return err
	}
	next := storedKeySet{Seq: cur.Seq + 1, Keys: []storedKey{fresh}}
	for _, k := range cur.Keys {
		if k.RetiredAt == nil {
			at := now
			k.RetiredAt = &at
		}
		k.Private = ""
		if t.usable(&verifyKey{retiredAt: *k.RetiredAt}, now) {
			next.Keys = append(next.Keys, k)
		}
	}
	nraw, err := json.Marshal(next)
	if err != nil {
		return err
	}
	err = t.store.CreateSetting(ctx, keySetSetting(next.Seq), nraw)
	if errors.Is(err, store.ErrConflict) {
		// Another node rotated first; its generation is the truth.
		return t.reloadLocked(ctx)
	}
	if err != nil {
		return fmt.Errorf("credential: rotate token key: %w", err)
	}
	t.notePointer(ctx, next.Seq)
	ks, err := decodeKeySet(nraw)
	if err != nil {
		return err
	}
	t.keys.Store(ks)
	t.log.Info("token signing key rotated", "kid", ks.kid, "generation", ks.seq)
	return nil
}

// JWK is one public key of a JSON Web Key Set: an Ed25519 key in the OKP
// form of RFC 8037, for services that verify warden's tokens offline.
type JWK struct {
	KTY string `json:"kty"` // "OKP"
	CRV string `json:"crv"` // "Ed25519"
	X   string `json:"x"`   // the public key, base64url without padding
	KID string `json:"kid"` // matches the kid header of the tokens it signed
	Use string `json:"use"` // "sig"
	Alg string `json:"alg"` // "EdDSA"
}

// JWKSet is a JSON Web Key Set (RFC 7517 §5).
type JWKSet struct {
	Keys []JWK `json:"keys"`
}

// JWKS returns the keys that verify tokens now: the current key first,
// then retired keys still within their window, newest first. It reads no
// store; a service fetching it regularly follows rotations.
func (t *Tokens) JWKS() JWKSet {
	ks := t.keys.Load()
	now := t.now()
	set := JWKSet{Keys: make([]JWK, 0, len(ks.order))}
	order := slices.Clone(ks.order)
	// The current key is first in the stored order; retired keys by
	// retirement, newest first.
	slices.SortStableFunc(order[1:], func(a, b *verifyKey) int { return b.retiredAt.Compare(a.retiredAt) })
	for _, k := range order {
		if !t.usable(k, now) {
			continue
		}
		set.Keys = append(set.Keys, JWK{
			KTY: "OKP", CRV: "Ed25519", X: base64.RawURLEncoding.EncodeToString(k.pub),
			KID: k.kid, Use: "sig", Alg: "EdDSA",
		})
	}
	return set
}
