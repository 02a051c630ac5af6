package credential

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/warden-mqtt/warden/store"
)

// SettingSigningKey is the store setting of earlier releases holding the
// one Ed25519 key that signed tokens, as a PKCS#8 PEM block. It is still
// created on a new store and read once on an old one: its key becomes the
// first entry of the key set (SettingKeySet), which is what signs and
// verifies now. Tokens without a kid header verify against that key only.
const SettingSigningKey = "jwt/signing-key"

// DefaultMaxTokenTTL is TokenOptions.MaxTTL when zero: a year, the
// longest lifetime the admin API grants by default.
const DefaultMaxTokenTTL = 365 * 24 * time.Hour

// MaxTokenLen bounds the tokens Parse looks at, in bytes. Our tokens are
// about 300 bytes; anything much longer is not ours and is refused before
// any decoding.
const MaxTokenLen = 8 << 10

// Token kinds issued by warden. Issue accepts any non-empty kind; these are
// the ones the rest of warden uses.
const (
	KindLogin       = "login"
	KindApplication = "application"
	// KindApplicationSession is what an application token is exchanged
	// for (POST /api/v1/authenticate): it authenticates like a login token
	// but cannot create application tokens, and it is revoked with the
	// application token it came from (its record's ParentID).
	KindApplicationSession = "application-session"
	KindDevice             = "device"
)

// AcceptedKind reports whether a token of the kind authenticates its user,
// as a bearer token on the API and as an MQTT password: login,
// application and application-session tokens. Any other kind (device
// tokens, kinds of a later release) is refused there.
func AcceptedKind(kind string) bool {
	switch kind {
	case KindLogin, KindApplication, KindApplicationSession:
		return true
	}
	return false
}

// tokenLeeway is the clock skew tolerated on exp and iat. Tokens are issued
// by one node and checked by others, and both times have one-second
// precision; 1 s covers NTP-synchronised clocks and keeps the promise that
// an expired token is refused everywhere within a second.
const tokenLeeway = time.Second

// Errors returned by Parse and Verify, always wrapped with a fixed reason
// (never the token or any part of it), so they can be logged as they are.
var (
	// ErrTokenInvalid: not a token we issued, or not one we accept:
	// malformed, bad signature, algorithm other than EdDSA, wrong issuer,
	// missing claims, issued in the future, too long.
	ErrTokenInvalid = errors.New("credential: invalid token")
	// ErrTokenExpired: a genuine token past its expiry.
	ErrTokenExpired = errors.New("credential: token expired")
	// ErrTokenRevoked: a genuine, unexpired token whose record is gone
	// (revoked, or its user deleted).
	ErrTokenRevoked = errors.New("credential: token revoked")
)

// Claims is what a valid token says.
type Claims struct {
	TokenID   string // jti; the ID of the store.Token record
	UserID    string // sub
	Username  string // at issue time; the user may have been renamed since
	Kind      string // login, application, device, ...
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// jwtClaims is the token payload: registered claims plus our two.
type jwtClaims struct {
	jwt.RegisteredClaims
	Username string `json:"username"`
	Kind     string `json:"kind"`
}

// Validate is called by the jwt validator after the registered-claims
// checks: every claim warden relies on must be present.
func (c *jwtClaims) Validate() error {
	if c.ID == "" || c.Subject == "" || c.Username == "" || c.Kind == "" || c.IssuedAt == nil {
		return jwt.ErrTokenRequiredClaimMissing
	}
	return nil
}

// Tokens issues and checks warden's signed tokens (JWT, EdDSA). Parse
// checks signature, algorithm, issuer and expiry without the store, for
// the MQTT connect path; Verify also checks that the token's record still
// exists, which is how revocation works. Exp and iat are checked with a
// leeway of 1 s for clock skew between nodes.
//
// Tokens are signed by the current key of a key set shared through the
// store and name it in their kid header; Rotate makes a new current key
// and older keys keep verifying until every token they signed has expired.
// The key set is held in memory behind an atomic pointer (Parse reads no
// store) and reloaded when the store's change feed reports a rotation, or
// when a token names a kid this node does not know yet.
type Tokens struct {
	store  store.Store
	issuer string
	maxTTL time.Duration
	log    *slog.Logger
	keys   atomic.Pointer[keySet]
	parser *jwt.Parser
	now    func() time.Time // replaced in tests

	// mu serializes reloads and rotations of this node, so a reload that
	// read an older key set never replaces one that read a newer one.
	mu       sync.Mutex
	lastMiss time.Time // last reload for an unknown kid; guarded by mu
}

// TokenOptions configure Tokens.
type TokenOptions struct {
	// Issuer is the iss claim written and required; required.
	Issuer string
	// MaxTTL is the longest lifetime Issue grants, and so how long a
	// retired key keeps verifying after a rotation; zero means
	// DefaultMaxTokenTTL.
	MaxTTL time.Duration
	// Logger receives key reload failures and rotations; nil means
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock for expiry and key retirement; nil means time.Now.
	// Tests set it to issue tokens that are already expired.
	Now func() time.Time
}

// NewTokens is NewTokensWith with the issuer and default options.
func NewTokens(ctx context.Context, s store.Store, issuer string) (*Tokens, error) {
	return NewTokensWith(ctx, s, TokenOptions{Issuer: issuer})
}

// NewTokensWith loads the cluster's key set from the store, creating it if
// the store has none and migrating the single key of earlier releases if
// that is all the store has. Nodes racing to create it agree on the first
// one stored. A store error is returned, never papered over with a fresh
// key (nodes would then sign with different keys). The key set is then
// followed on the store's change feed until ctx is done or the store
// closes; the feed is subscribed to before the first load, so no rotation
// between the two is missed.
func NewTokensWith(ctx context.Context, s store.Store, o TokenOptions) (*Tokens, error) {
	if o.Issuer == "" {
		// jwt.WithIssuer("") would silently disable the issuer check.
		return nil, errors.New("credential: token issuer is empty")
	}
	if o.MaxTTL <= 0 {
		o.MaxTTL = DefaultMaxTokenTTL
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	t := &Tokens{store: s, issuer: o.Issuer, maxTTL: o.MaxTTL, log: o.Logger, now: o.Now}
	// The subscription is cancelled if the first load fails, so a failed
	// NewTokens leaves nothing running.
	wctx, cancel := context.WithCancel(ctx)
	events, err := s.Watch(wctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("credential: follow token keys: %w", err)
	}
	t.mu.Lock()
	err = t.reloadLocked(ctx)
	t.mu.Unlock()
	if err != nil {
		cancel()
		return nil, err
	}
	go func() {
		defer cancel()
		t.follow(wctx, events)
	}()
	t.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(o.Issuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(tokenLeeway),
		// Strict base64: a token has exactly one accepted spelling (the
		// unused low bits of a segment's last character must be zero).
		jwt.WithStrictDecoding(),
		jwt.WithTimeFunc(func() time.Time { return t.now() }),
	)
	return t, nil
}

// loadSigningKey reads the key setting, creating it when absent.
func loadSigningKey(ctx context.Context, s store.Store) (ed25519.PrivateKey, error) {
	raw, err := s.Setting(ctx, SettingSigningKey)
	if errors.Is(err, store.ErrNotFound) {
		raw, err = createSigningKey(ctx, s)
	}
	if err != nil {
		return nil, fmt.Errorf("credential: load token signing key: %w", err)
	}
	return decodePrivateKey(raw, fmt.Sprintf("setting %q", SettingSigningKey))
}

// createSigningKey stores a fresh key, or, if another node stored one
// first, returns that one.
func createSigningKey(ctx context.Context, s store.Store) ([]byte, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	raw := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	err = s.CreateSetting(ctx, SettingSigningKey, raw)
	if errors.Is(err, store.ErrConflict) {
		return s.Setting(ctx, SettingSigningKey)
	}
	if err != nil {
		return nil, err
	}
	return raw, nil
}

// decodePrivateKey decodes a PKCS#8 PEM Ed25519 key; what names its
// origin in errors.
func decodePrivateKey(raw []byte, what string) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("credential: %s is not a PKCS#8 PEM block", what)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("credential: %s: %w", what, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("credential: %s holds a %T, not an Ed25519 key", what, k)
	}
	return key, nil
}

// PublicKey returns (a copy of) the current key, the one that verifies
// tokens issued from now on. Services verifying offline should use JWKS,
// which also lists the retired keys still in use.
func (t *Tokens) PublicKey() ed25519.PublicKey {
	return append(ed25519.PublicKey(nil), t.keys.Load().priv.Public().(ed25519.PublicKey)...)
}

// MaxTTL is the longest lifetime Issue grants.
func (t *Tokens) MaxTTL() time.Duration { return t.maxTTL }

// Issue signs a token of the kind for u with the current key, valid for
// ttl (rounded up to a whole second, the precision of exp, and at most
// MaxTTL: a retired key is trusted for that long), and records it in the
// store; label is kept in the record only. It returns the token and its
// record. The store's ErrNotFound is returned (wrapped) if u does not
// exist. The record is bound to u.PasswordVersion: if the password
// changed since u was read (a login checked the old one), the store
// refuses it with ErrConflict.
func (t *Tokens) Issue(ctx context.Context, u store.User, kind, label string, ttl time.Duration) (string, store.Token, error) {
	return t.issue(ctx, u, kind, label, "", t.now(), ttl)
}

// IssueUntil is Issue with an expiry date instead of a lifetime, for
// tokens whose owner picks the date (application tokens): the token
// expires at expiresAt rounded up to a whole second, which must be in the
// future and at most MaxTTL away.
func (t *Tokens) IssueUntil(ctx context.Context, u store.User, kind, label string, expiresAt time.Time) (string, store.Token, error) {
	now := t.now()
	return t.issue(ctx, u, kind, label, "", now, expiresAt.Sub(now))
}

// IssueWithParent is Issue for a token obtained with another token of u,
// parentID (an application-session token exchanged for an application
// token): revoking the parent revokes it, in the same store transaction.
// The store's ErrNotFound is returned (wrapped) if the parent is already
// gone, so a revocation racing the exchange leaves no token behind.
func (t *Tokens) IssueWithParent(ctx context.Context, u store.User, parentID, kind, label string, ttl time.Duration) (string, store.Token, error) {
	if parentID == "" {
		return "", store.Token{}, errors.New("credential: parent token id is empty")
	}
	return t.issue(ctx, u, kind, label, parentID, t.now(), ttl)
}

// issue signs and records a token issued at now, valid for ttl.
func (t *Tokens) issue(ctx context.Context, u store.User, kind, label, parentID string, now time.Time, ttl time.Duration) (string, store.Token, error) {
	switch {
	case ttl <= 0:
		return "", store.Token{}, fmt.Errorf("credential: token lifetime %v is not positive", ttl)
	case ttl > t.maxTTL:
		return "", store.Token{}, fmt.Errorf("credential: token lifetime %v is longer than the maximum %v", ttl, t.maxTTL)
	case kind == "":
		return "", store.Token{}, errors.New("credential: token kind is empty")
	case u.ID == "" || u.Username == "":
		return "", store.Token{}, errors.New("credential: token user has no ID or username")
	}
	now = now.UTC()
	iat := now.Truncate(time.Second)
	exp := now.Add(ttl)
	if e := exp.Truncate(time.Second); !e.Equal(exp) {
		exp = e.Add(time.Second)
	}
	var id [16]byte
	rand.Read(id[:]) // never fails (crypto/rand crashes the program instead)
	jti := base64.RawURLEncoding.EncodeToString(id[:])

	ks := t.keys.Load()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, &jwtClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    t.issuer,
			Subject:   u.ID,
			IssuedAt:  jwt.NewNumericDate(iat),
			ExpiresAt: jwt.NewNumericDate(exp),
			ID:        jti,
		},
		Username: u.Username,
		Kind:     kind,
	})
	tok.Header["kid"] = ks.kid
	signed, err := tok.SignedString(ks.priv)
	if err != nil {
		return "", store.Token{}, fmt.Errorf("credential: sign token: %w", err)
	}
	rec, err := t.store.CreateToken(ctx, store.Token{
		ID: jti, UserID: u.ID, Kind: kind, Label: label, ParentID: parentID,
		PasswordVersion: u.PasswordVersion, CreatedAt: iat, ExpiresAt: exp,
	})
	if err != nil {
		return "", store.Token{}, fmt.Errorf("credential: issue token: %w", err)
	}
	return signed, rec, nil
}

// Parse checks signature, algorithm, issuer, expiry and required claims,
// without the store: a revoked token still parses. Use it to recognise a
// token quickly; use Verify to accept one.
func (t *Tokens) Parse(token string) (Claims, error) {
	return t.parse(context.Background(), token)
}

// parse is Parse with the context of a store read, which happens only when
// the token names a kid this node has not loaded.
func (t *Tokens) parse(ctx context.Context, token string) (Claims, error) {
	if len(token) > MaxTokenLen {
		return Claims{}, fmt.Errorf("%w: longer than %d bytes", ErrTokenInvalid, MaxTokenLen)
	}
	var c jwtClaims
	tok, err := t.parser.ParseWithClaims(token, &c, func(tok *jwt.Token) (any, error) { return t.verifyKey(ctx, tok) })
	if err != nil {
		return Claims{}, classify(tok, err)
	}
	return Claims{
		TokenID:   c.ID,
		UserID:    c.Subject,
		Username:  c.Username,
		Kind:      c.Kind,
		IssuedAt:  c.IssuedAt.UTC(),
		ExpiresAt: c.ExpiresAt.UTC(),
	}, nil
}

// verifyKey picks the public key for a token from its kid header; a
// token without one was signed by the legacy key (SettingSigningKey) or
// by nobody we trust. The algorithm has been checked by the parser.
func (t *Tokens) verifyKey(ctx context.Context, tok *jwt.Token) (any, error) {
	ks := t.keys.Load()
	var k *verifyKey
	if h, ok := tok.Header["kid"]; !ok {
		k = ks.legacy
	} else if kid, ok := h.(string); ok && kid != "" {
		if k = ks.byKID[kid]; k == nil {
			k = t.reloadForKID(ctx, kid)
		}
	}
	if k == nil {
		return nil, errUnknownKey
	}
	if !t.usable(k, t.now()) {
		return nil, errKeyRetired
	}
	return k.pub, nil
}

// classify maps a jwt error to ours with a fixed reason: jwt's own text
// can quote pieces of the token (JSON syntax errors).
func classify(tok *jwt.Token, err error) error {
	reason := "invalid claims"
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		reason = "malformed"
	case tok != nil && tok.Method != nil && tok.Method.Alg() != jwt.SigningMethodEdDSA.Alg():
		reason = "algorithm not allowed"
	case errors.Is(err, errUnknownKey):
		reason = errUnknownKey.Error()
	case errors.Is(err, errKeyRetired):
		reason = errKeyRetired.Error()
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		reason = "unknown algorithm"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		reason = "bad signature"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		reason = "wrong issuer"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		reason = "missing claim"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		reason = "issued in the future"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		reason = "not valid yet"
	case errors.Is(err, jwt.ErrTokenExpired):
		// Only when expiry is the sole fault of a genuine token.
		return ErrTokenExpired
	}
	return fmt.Errorf("%w: %s", ErrTokenInvalid, reason)
}

// Verify is Parse plus the store: the token's record must still exist and
// belong to the token's user, else ErrTokenRevoked. Other store errors are
// returned wrapped (errors.Is(err, store.ErrUnavailable) tells an outage
// from a bad token).
func (t *Tokens) Verify(ctx context.Context, token string) (Claims, error) {
	c, err := t.parse(ctx, token)
	if err != nil {
		return Claims{}, err
	}
	rec, err := t.store.Token(ctx, c.TokenID)
	if errors.Is(err, store.ErrNotFound) {
		return Claims{}, ErrTokenRevoked
	}
	if err != nil {
		return Claims{}, fmt.Errorf("credential: verify token: %w", err)
	}
	if rec.UserID != c.UserID {
		return Claims{}, fmt.Errorf("%w: record belongs to another user", ErrTokenRevoked)
	}
	return c, nil
}

// Revoke deletes the token's record, so Verify refuses the token from now
// on (Parse still accepts it until it expires). ErrNotFound (wrapped) if
// there is no such record.
func (t *Tokens) Revoke(ctx context.Context, tokenID string) error {
	if err := t.store.DeleteToken(ctx, tokenID); err != nil {
		return fmt.Errorf("credential: revoke token: %w", err)
	}
	return nil
}

// LooksLikeToken reports whether s has the shape of a JWT: three non-empty
// base64url segments joined by dots, the first starting with "eyJ" (the
// encoding of `{"`). It does not allocate, so the broker can use it to
// decide whether an MQTT password is a token before doing real work.
func LooksLikeToken(s string) bool {
	if len(s) < 3 || s[:3] != "eyJ" {
		return false
	}
	dots, segLen := 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.':
			if segLen == 0 {
				return false
			}
			dots++
			segLen = 0
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
			segLen++
		default:
			return false
		}
	}
	return dots == 2 && segLen > 0
}
