package credential

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

const testIssuer = "warden-test"

func newTestTokens(tb testing.TB, s store.Store) *Tokens {
	tb.Helper()
	tk, err := NewTokens(context.Background(), s, testIssuer)
	if err != nil {
		tb.Fatal(err)
	}
	return tk
}

func newTokenUser(tb testing.TB, s store.Store, name string) store.User {
	tb.Helper()
	u, err := s.CreateUser(context.Background(), store.User{Username: name})
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// fakeClock is an injectable clock for expiry tests.
type fakeClock struct{ t atomic.Pointer[time.Time] }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.set(t)
	return c
}
func (c *fakeClock) now() time.Time          { return *c.t.Load() }
func (c *fakeClock) set(t time.Time)         { c.t.Store(&t) }
func (c *fakeClock) advance(d time.Duration) { c.set(c.now().Add(d)) }

// signRaw signs arbitrary claims with any method and key, for forgeries
// and for tokens Issue would never produce.
func signRaw(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// goodClaims are the claims of a valid token for u, as a map to edit.
func goodClaims(u store.User, now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss":      testIssuer,
		"sub":      u.ID,
		"username": u.Username,
		"kind":     KindLogin,
		"iat":      now.Unix(),
		"exp":      now.Add(time.Hour).Unix(),
		"jti":      "dGVzdC10b2tlbi1pZC0xMjM",
	}
}

// checkNoLeak fails if err's text contains the token.
func checkNoLeak(t *testing.T, err error, token string) {
	t.Helper()
	if err != nil && token != "" && strings.Contains(err.Error(), token) {
		t.Fatalf("error %q contains the token", err)
	}
}

func TestIssuedTokenVerifiesWithItsClaims(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := storetest.OpenBolt(t)
	tk := newTestTokens(t, s)
	clock := newFakeClock(time.Date(2030, 1, 2, 3, 4, 5, 600_000_000, time.UTC))
	tk.now = clock.now
	u := newTokenUser(t, s, "alice")

	tok, rec, err := tk.Issue(ctx, u, KindDevice, "sensor 7", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !LooksLikeToken(tok) {
		t.Fatalf("issued token %q does not look like a token", tok)
	}
	if id, err := base64.RawURLEncoding.Strict().DecodeString(rec.ID); err != nil || len(id) != 16 {
		t.Fatalf("token ID %q is not 128 bits in unpadded base64url (%v)", rec.ID, err)
	}
	wantIat := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	wantExp := time.Date(2030, 1, 2, 4, 4, 6, 0, time.UTC) // now+ttl rounded up to a second
	want := Claims{TokenID: rec.ID, UserID: u.ID, Username: "alice", Kind: KindDevice, IssuedAt: wantIat, ExpiresAt: wantExp}

	got, err := tk.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("Verify claims = %+v, want %+v", got, want)
	}
	if got, err := tk.Parse(tok); err != nil || got != want {
		t.Fatalf("Parse = %+v, %v; want %+v", got, err, want)
	}
	wantRec := store.Token{ID: rec.ID, UserID: u.ID, Kind: KindDevice, Label: "sensor 7", CreatedAt: wantIat, ExpiresAt: wantExp}
	if rec != wantRec {
		t.Fatalf("record = %+v, want %+v", rec, wantRec)
	}
	stored, err := s.Token(ctx, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !stored.CreatedAt.Equal(wantIat) || !stored.ExpiresAt.Equal(wantExp) || stored.Label != "sensor 7" || stored.UserID != u.ID {
		t.Fatalf("stored record = %+v", stored)
	}
}

func TestIssuedTokensHaveDistinctIDs(t *testing.T) {
	t.Parallel()
	s := storetest.OpenBolt(t)
	tk := newTestTokens(t, s)
	u := newTokenUser(t, s, "alice")
	seen := map[string]bool{}
	for range 20 {
		_, rec, err := tk.Issue(t.Context(), u, KindLogin, "", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if seen[rec.ID] {
			t.Fatalf("token ID %q issued twice", rec.ID)
		}
		seen[rec.ID] = true
	}
}

func TestRevokedTokenParsesButDoesNotVerify(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := storetest.OpenBolt(t)
	tk := newTestTokens(t, s)
	u := newTokenUser(t, s, "alice")
	tok, rec, err := tk.Issue(ctx, u, KindApplication, "ci", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := tk.Revoke(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Parse(tok); err != nil {
		t.Fatalf("Parse after revoke: %v (Parse must not consult the store)", err)
	}
	_, err = tk.Verify(ctx, tok)
	if !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("Verify after revoke = %v, want ErrTokenRevoked", err)
	}
	checkNoLeak(t, err, tok)
	if err := tk.Revoke(ctx, rec.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second Revoke = %v, want store.ErrNotFound", err)
	}
}

func TestTokenOfDeletedUserIsRevoked(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := storetest.OpenBolt(t)
	tk := newTestTokens(t, s)
	u := newTokenUser(t, s, "alice")
	tok, _, err := tk.Issue(ctx, u, KindLogin, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Verify(ctx, tok); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("Verify after user deletion = %v, want ErrTokenRevoked", err)
	}
}

func TestTokenWhoseRecordBelongsToAnotherUserIsRevoked(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := storetest.OpenBolt(t)
	tk := newTestTokens(t, s)
	alice, bob := newTokenUser(t, s, "alice"), newTokenUser(t, s, "bob")
	tok, rec, err := tk.Issue(ctx, alice, KindLogin, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteToken(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	rec.UserID = bob.ID
	if _, err := s.CreateToken(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Verify(ctx, tok); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("Verify with a record of another user = %v, want ErrTokenRevoked", err)
	}
}

func TestExpiredTokenIsRejectedAfterLeeway(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := storetest.OpenBolt(t)
	tk := newTestTokens(t, s)
	clock := newFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	tk.now = clock.now
	u := newTokenUser(t, s, "alice")
	tok, _, err := tk.Issue(ctx, u, KindLogin, "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}

	clock.advance(time.Minute + tokenLeeway - time.Second)
	if _, err := tk.Verify(ctx, tok); err != nil {
		t.Fatalf("Verify within the leeway after expiry: %v", err)
	}
	clock.advance(2 * time.Second)
	_, err = tk.Parse(tok)
	if !errors.Is(err, ErrTokenExpired) || errors.Is(err, ErrTokenInvalid) {
		t.Fatalf("Parse of expired token = %v, want ErrTokenExpired only", err)
	}
	checkNoLeak(t, err, tok)
	if _, err := tk.Verify(ctx, tok); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("Verify of expired token = %v, want ErrTokenExpired", err)
	}
}

func TestCraftedExpiredTokenWithRealKeyIsExpired(t *testing.T) {
	t.Parallel()
	s := storetest.OpenBolt(t)
	tk := newTestTokens(t, s)
	u := newTokenUser(t, s, "alice")
	c := goodClaims(u, time.Now().Add(-2*time.Hour)) // exp one hour ago
	tok := signRaw(t, jwt.SigningMethodEdDSA, signingKey(tk), c)
	if _, err := tk.Parse(tok); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("Parse = %v, want ErrTokenExpired", err)
	}
}

func TestForgedAndBrokenTokensAreInvalid(t *testing.T) {
	t.Parallel()
	s := storetest.OpenBolt(t)
	tk := newTestTokens(t, s)
	u := newTokenUser(t, s, "alice")
	good, _, err := tk.Issue(t.Context(), u, KindLogin, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, ".")
	now := time.Now()
	edSigned := func(edit func(jwt.MapClaims)) func(*testing.T) string {
		return func(t *testing.T) string {
			c := goodClaims(u, now)
			edit(c)
			return signRaw(t, jwt.SigningMethodEdDSA, signingKey(tk), c)
		}
	}
	without := func(claim string) func(*testing.T) string {
		return edSigned(func(c jwt.MapClaims) { delete(c, claim) })
	}

	// Each case names the reason Parse must give: an alg-confusion token
	// refused only by its bad signature would mean the algorithm pin is gone.
	type forged struct {
		build  func(*testing.T) string
		reason string
	}
	cases := map[string]forged{
		"HS256 signed with the public key as HMAC secret (alg confusion)": {func(t *testing.T) string {
			return signRaw(t, jwt.SigningMethodHS256, []byte(tk.PublicKey()), goodClaims(u, now))
		}, "algorithm not allowed"},
		"HS256 signed with the PEM public key as HMAC secret": {func(t *testing.T) string {
			der, _ := x509.MarshalPKIXPublicKey(tk.PublicKey())
			return signRaw(t, jwt.SigningMethodHS256, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), goodClaims(u, now))
		}, "algorithm not allowed"},
		`"alg":"none" with no signature`: {func(t *testing.T) string {
			return signRaw(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, goodClaims(u, now))
		}, "algorithm not allowed"},
		`"alg":"none" with the real signature`: {func(t *testing.T) string {
			return reheader(parts, `{"alg":"none","typ":"JWT"}`)
		}, "algorithm not allowed"},
		"an unknown algorithm": {func(t *testing.T) string {
			return reheader(parts, `{"alg":"XS512","typ":"JWT"}`)
		}, "unknown algorithm"},
		"no algorithm": {func(t *testing.T) string {
			return reheader(parts, `{"typ":"JWT"}`)
		}, "unknown algorithm"},
		"signed by another cluster's key": {func(t *testing.T) string {
			os := storetest.OpenBolt(t)
			other := newTestTokens(t, os)
			tok, _, err := other.Issue(t.Context(), newTokenUser(t, os, "alice"), KindLogin, "", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}, "unknown signing key"},
		"signed by another cluster's key, without a kid": {func(t *testing.T) string {
			other := newTestTokens(t, storetest.OpenBolt(t))
			return signRaw(t, jwt.SigningMethodEdDSA, signingKey(other), goodClaims(u, now))
		}, "bad signature"},
		"signed by another cluster's key under our kid": {func(t *testing.T) string {
			other := newTestTokens(t, storetest.OpenBolt(t))
			tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, goodClaims(u, now))
			tok.Header["kid"] = currentKID(tk)
			s, err := tok.SignedString(signingKey(other))
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, "bad signature"},
		"kid is not a string": {func(t *testing.T) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, goodClaims(u, now))
			tok.Header["kid"] = 7
			s, err := tok.SignedString(signingKey(tk))
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, "unknown signing key"},
		"wrong issuer":         {edSigned(func(c jwt.MapClaims) { c["iss"] = "someone-else" }), "wrong issuer"},
		"missing issuer":       {without("iss"), "missing claim"},
		"missing subject":      {without("sub"), "missing claim"},
		"missing token ID":     {without("jti"), "missing claim"},
		"missing username":     {without("username"), "missing claim"},
		"missing kind":         {without("kind"), "missing claim"},
		"missing issued-at":    {without("iat"), "missing claim"},
		"missing expiry":       {without("exp"), "missing claim"},
		"empty subject":        {edSigned(func(c jwt.MapClaims) { c["sub"] = "" }), "missing claim"},
		"issued in the future": {edSigned(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Hour).Unix() }), "issued in the future"},
		"not valid yet":        {edSigned(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() }), "not valid yet"},
		"expired and from the wrong issuer (invalid wins)": {edSigned(func(c jwt.MapClaims) {
			c["iss"], c["exp"] = "someone-else", now.Add(-time.Hour).Unix()
		}), "wrong issuer"},
		"expiry as a string": {edSigned(func(c jwt.MapClaims) { c["exp"] = "never" }), "malformed"},
		"tampered payload": {func(t *testing.T) string {
			p := base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil,
				`{"iss":%q,"sub":"admin-id","username":"admin","kind":"login","iat":%d,"exp":%d,"jti":"x"}`,
				testIssuer, now.Unix(), now.Add(time.Hour).Unix()))
			return parts[0] + "." + p + "." + parts[2]
		}, "bad signature"},
		"tampered signature": {func(t *testing.T) string {
			sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
			sig[10] ^= 1
			return parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
		}, "bad signature"},
		"signature with non-canonical base64 trailing bits": {func(t *testing.T) string {
			// 64 bytes encode to 86 characters; the last carries 4 unused
			// bits. Setting one gives a second spelling of the same bytes.
			const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
			sig := parts[2]
			i := strings.IndexByte(alpha, sig[len(sig)-1])
			return parts[0] + "." + parts[1] + "." + sig[:len(sig)-1] + string(alpha[i^1])
		}, "malformed"},
		"header re-encoded with an unknown kid": {func(*testing.T) string {
			return reheader(parts, `{"alg":"EdDSA","typ":"JWT","kid":"x"}`)
		}, "unknown signing key"},
		"header re-encoded without the kid": {func(*testing.T) string {
			return reheader(parts, `{"alg":"EdDSA","typ":"JWT"}`)
		}, "bad signature"},
		"header re-encoded with whitespace": {func(*testing.T) string {
			return reheader(parts, `{"alg":"EdDSA", "typ":"JWT"}`)
		}, "bad signature"},
		"padded base64":        {func(*testing.T) string { return good + "==" }, "malformed"},
		"signature stripped":   {func(*testing.T) string { return parts[0] + "." + parts[1] + "." }, "bad signature"},
		"two segments":         {func(*testing.T) string { return parts[0] + "." + parts[1] }, "malformed"},
		"four segments":        {func(*testing.T) string { return good + "." + parts[2] }, "malformed"},
		"good token, reversed": {func(*testing.T) string { return parts[2] + "." + parts[1] + "." + parts[0] }, "malformed"},
		"header is not JSON":   {func(*testing.T) string { return "eyJub3QganNvbg." + parts[1] + "." + parts[2] }, "malformed"},
		"empty":                {func(*testing.T) string { return "" }, "malformed"},
		"a password":           {func(*testing.T) string { return "correct horse battery staple" }, "malformed"},
		"longer than 8 KiB":    {func(*testing.T) string { return good + strings.Repeat("A", MaxTokenLen) }, "longer than 8192 bytes"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			tok := c.build(t)
			_, err := tk.Parse(tok)
			if !errors.Is(err, ErrTokenInvalid) || !strings.HasSuffix(err.Error(), ": "+c.reason) {
				t.Fatalf("Parse = %v, want ErrTokenInvalid: %s", err, c.reason)
			}
			if errors.Is(err, ErrTokenExpired) || errors.Is(err, ErrTokenRevoked) {
				t.Fatalf("Parse = %v, matches another token error too", err)
			}
			checkNoLeak(t, err, tok)
			if _, err := tk.Verify(t.Context(), tok); !errors.Is(err, ErrTokenInvalid) {
				t.Fatalf("Verify = %v, want ErrTokenInvalid", err)
			}
		})
	}
}

// reheader replaces the header of a token, keeping payload and signature.
func reheader(parts []string, header string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + parts[1] + "." + parts[2]
}

func TestTokensOnOneStoreShareTheKey(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := storetest.OpenBolt(t)
	a, b := newTestTokens(t, s), newTestTokens(t, s)
	if !a.PublicKey().Equal(b.PublicKey()) {
		t.Fatal("two Tokens on one store have different keys")
	}
	u := newTokenUser(t, s, "alice")
	tok, _, err := a.Issue(ctx, u, KindLogin, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Verify(ctx, tok); err != nil {
		t.Fatalf("token from one node does not verify on the other: %v", err)
	}
}

func TestSigningKeyIsStoredAsPKCS8PEM(t *testing.T) {
	t.Parallel()
	s := storetest.OpenBolt(t)
	tk := newTestTokens(t, s)
	raw, err := s.Setting(t.Context(), SettingSigningKey)
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(raw)
	if block == nil || block.Type != "PRIVATE KEY" || len(strings.TrimSpace(string(rest))) != 0 {
		t.Fatalf("setting is not one PRIVATE KEY PEM block: %q", raw)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok || !priv.Public().(ed25519.PublicKey).Equal(tk.PublicKey()) {
		t.Fatalf("stored key %T does not match PublicKey()", k)
	}
}

func TestConcurrentNewTokensAgreeOnOneKey(t *testing.T) {
	t.Parallel()
	s := storetest.OpenBolt(t)
	const n = 8
	keys := make([]ed25519.PublicKey, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			tk, err := NewTokens(t.Context(), s, testIssuer)
			if err == nil {
				keys[i] = tk.PublicKey()
			}
			errs[i] = err
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("NewTokens %d: %v", i, errs[i])
		}
		if !keys[i].Equal(keys[0]) {
			t.Fatalf("NewTokens %d has a different key than NewTokens 0", i)
		}
	}
	if !newTestTokens(t, s).PublicKey().Equal(keys[0]) {
		t.Fatal("a later NewTokens has a different key")
	}
}

// faultyStore fails chosen calls with ErrUnavailable and counts key
// creation attempts.
type faultyStore struct {
	store.Store
	failSetting, failToken bool
	creates                atomic.Int32
}

func (f *faultyStore) Setting(ctx context.Context, key string) ([]byte, error) {
	if f.failSetting {
		return nil, fmt.Errorf("setting %q: %w", key, store.ErrUnavailable)
	}
	return f.Store.Setting(ctx, key)
}

func (f *faultyStore) CreateSetting(ctx context.Context, key string, value []byte) error {
	f.creates.Add(1)
	return f.Store.CreateSetting(ctx, key, value)
}

func (f *faultyStore) Token(ctx context.Context, id string) (store.Token, error) {
	if f.failToken {
		return store.Token{}, fmt.Errorf("token: %w", store.ErrUnavailable)
	}
	return f.Store.Token(ctx, id)
}

func TestNewTokensNeverGeneratesAKeyOnStoreError(t *testing.T) {
	t.Parallel()
	fs := &faultyStore{Store: storetest.OpenBolt(t), failSetting: true}
	_, err := NewTokens(t.Context(), fs, testIssuer)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("NewTokens with the store down = %v, want store.ErrUnavailable", err)
	}
	if n := fs.creates.Load(); n != 0 {
		t.Fatalf("NewTokens tried to store a key %d times while the store was failing", n)
	}
}

func TestNewTokensRefusesACorruptKey(t *testing.T) {
	t.Parallel()
	for name, value := range map[string][]byte{
		"not PEM":          []byte("garbage"),
		"wrong block type": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1, 2, 3}}),
		"bad DER":          pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}),
	} {
		t.Run(name, func(t *testing.T) {
			s := storetest.OpenBolt(t)
			if err := s.PutSetting(t.Context(), SettingSigningKey, value); err != nil {
				t.Fatal(err)
			}
			if _, err := NewTokens(t.Context(), s, testIssuer); err == nil {
				t.Fatal("NewTokens accepted a corrupt signing key")
			}
			if got, _ := s.Setting(t.Context(), SettingSigningKey); string(got) != string(value) {
				t.Fatal("NewTokens replaced the corrupt key")
			}
		})
	}
}

func TestNewTokensRequiresAnIssuer(t *testing.T) {
	t.Parallel()
	if _, err := NewTokens(t.Context(), storetest.OpenBolt(t), ""); err == nil {
		t.Fatal("NewTokens with an empty issuer succeeded")
	}
}

func TestVerifyReturnsStoreErrorsAsThemselves(t *testing.T) {
	t.Parallel()
	fs := &faultyStore{Store: storetest.OpenBolt(t)}
	tk := newTestTokens(t, fs)
	u := newTokenUser(t, fs, "alice")
	tok, _, err := tk.Issue(t.Context(), u, KindLogin, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	fs.failToken = true
	_, err = tk.Verify(t.Context(), tok)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Verify with the store down = %v, want store.ErrUnavailable", err)
	}
	if errors.Is(err, ErrTokenInvalid) || errors.Is(err, ErrTokenRevoked) || errors.Is(err, ErrTokenExpired) {
		t.Fatalf("Verify with the store down = %v, reported as a bad token", err)
	}
	checkNoLeak(t, err, tok)
}

func TestIssueForAMissingUserIsNotFound(t *testing.T) {
	t.Parallel()
	s := storetest.OpenBolt(t)
	tk := newTestTokens(t, s)
	_, _, err := tk.Issue(t.Context(), store.User{ID: "no-such-id", Username: "ghost"}, KindLogin, "", time.Hour)
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Issue for a missing user = %v, want store.ErrNotFound", err)
	}
}

func TestIssueRejectsBadArguments(t *testing.T) {
	t.Parallel()
	s := storetest.OpenBolt(t)
	tk := newTestTokens(t, s)
	u := newTokenUser(t, s, "alice")
	for name, c := range map[string]struct {
		u    store.User
		kind string
		ttl  time.Duration
	}{
		"zero lifetime":     {u, KindLogin, 0},
		"negative lifetime": {u, KindLogin, -time.Second},
		"empty kind":        {u, "", time.Hour},
		"user without ID":   {store.User{Username: "alice"}, KindLogin, time.Hour},
		"user without name": {store.User{ID: u.ID}, KindLogin, time.Hour},
	} {
		if tok, _, err := tk.Issue(t.Context(), c.u, c.kind, "", c.ttl); err == nil || tok != "" {
			t.Errorf("%s: Issue = %q, %v; want an error", name, tok, err)
		}
	}
	if recs, _ := s.UserTokens(t.Context(), u.ID); len(recs) != 0 {
		t.Fatalf("rejected Issue calls left %d records", len(recs))
	}
}

func TestSubSecondLifetimeIsRoundedUp(t *testing.T) {
	t.Parallel()
	s := storetest.OpenBolt(t)
	tk := newTestTokens(t, s)
	clock := newFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 100_000_000, time.UTC))
	tk.now = clock.now
	u := newTokenUser(t, s, "alice")
	tok, rec, err := tk.Issue(t.Context(), u, KindLogin, "", 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2030, 1, 1, 0, 0, 1, 0, time.UTC); !rec.ExpiresAt.Equal(want) {
		t.Fatalf("ExpiresAt = %v, want %v", rec.ExpiresAt, want)
	}
	if _, err := tk.Verify(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
}

func TestPublicKeyIsACopy(t *testing.T) {
	t.Parallel()
	s := storetest.OpenBolt(t)
	tk := newTestTokens(t, s)
	u := newTokenUser(t, s, "alice")
	pub := tk.PublicKey()
	pub[0] ^= 0xff
	tok, _, err := tk.Issue(t.Context(), u, KindLogin, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Parse(tok); err != nil {
		t.Fatalf("changing the returned public key broke verification: %v", err)
	}
}

func TestLooksLikeToken(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIxIn0.c2ln": true,
		"eyJ.a.b":                 true,
		"eyJ-_.A-_z.09":           true,
		"":                        false,
		"eyJ":                     false,
		"eyJ..sig":                false,
		"eyJ.payload.":            false,
		".eyJ.payload":            false,
		"eyJ.payload":             false,
		"eyJ.a.b.c":               false,
		"eyJ.a.b=":                false,
		"eyJ.a+b.c":               false,
		"eyJ.a/b.c":               false,
		"eyJ.a b.c":               false,
		"abc.def.ghi":             false,
		"eyj.a.b":                 false,
		"correct horse battery":   false,
		"$argon2id$v=19$m=1024,t": false,
		"eyJ.ä.b":                 false,
	} {
		if got := LooksLikeToken(s); got != want {
			t.Errorf("LooksLikeToken(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestLooksLikeTokenDoesNotAllocate(t *testing.T) {
	s := "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIxIn0.c2ln"
	if n := testing.AllocsPerRun(100, func() { LooksLikeToken(s) }); n != 0 {
		t.Fatalf("LooksLikeToken allocates %v times", n)
	}
}

// FuzzParseToken: Parse never panics, fails only with ErrTokenInvalid or
// ErrTokenExpired, never quotes its input, and accepts nothing but the
// tokens we signed (byte for byte: no second spelling of one).
func FuzzParseToken(f *testing.F) {
	s := storetest.OpenBolt(f)
	tk := newTestTokens(f, s)
	u := newTokenUser(f, s, "alice")
	signed := map[string]bool{}
	for _, kind := range []string{KindLogin, KindDevice} {
		tok, _, err := tk.Issue(context.Background(), u, kind, "", time.Hour)
		if err != nil {
			f.Fatal(err)
		}
		signed[tok] = true
		f.Add(tok)
	}
	for _, seed := range []string{"", "eyJ.a.b", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", strings.Repeat("eyJ.", 3)} {
		f.Add(seed)
	}
	// An HS256 alg-confusion forgery as a seed.
	forged, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": testIssuer, "sub": u.ID, "username": "alice", "kind": KindLogin, "jti": "x",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(tk.PublicKey()))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(forged)

	f.Fuzz(func(t *testing.T, in string) {
		c, err := tk.Parse(in)
		if err == nil {
			if !signed[in] {
				t.Fatalf("Parse accepted %q, which we did not sign", in)
			}
			if c.UserID != u.ID || c.TokenID == "" {
				t.Fatalf("Parse of our token = %+v", c)
			}
			return
		}
		if !errors.Is(err, ErrTokenInvalid) && !errors.Is(err, ErrTokenExpired) {
			t.Fatalf("Parse error %v is neither ErrTokenInvalid nor ErrTokenExpired", err)
		}
		// Error texts are fixed strings without dots; an input with a dot
		// found in one was copied there.
		if strings.Contains(in, ".") && strings.Contains(err.Error(), in) {
			t.Fatalf("error %q quotes the input", err)
		}
		_ = LooksLikeToken(in)
	})
}

func BenchmarkParseToken(b *testing.B) {
	s := storetest.OpenBolt(b)
	tk := newTestTokens(b, s)
	u := newTokenUser(b, s, "alice")
	tok, _, err := tk.Issue(context.Background(), u, KindLogin, "", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tk.Parse(tok); err != nil {
			b.Fatal(err)
		}
	}
}
