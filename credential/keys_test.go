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
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// signingKey is the private half of tk's current key, for forgeries.
func signingKey(tk *Tokens) ed25519.PrivateKey { return tk.keys.Load().priv }

// currentKID is the kid tk signs with.
func currentKID(tk *Tokens) string { return tk.keys.Load().kid }

// sharedStores runs fn with two store clients on one backing store, like
// two nodes of a cluster: the same bbolt store twice (bbolt allows one
// opener per file), and two connections to one real Redis.
func sharedStores(t *testing.T, fn func(t *testing.T, a, b store.Store)) {
	t.Run("bolt", func(t *testing.T) {
		s := storetest.OpenBolt(t)
		fn(t, s, s)
	})
	t.Run("redis", func(t *testing.T) {
		r := storetest.StartRedis(t)
		open := func() store.Store { return storetest.OpenRedis(t, storetest.URL(r.URL)) }
		fn(t, open(), open())
	})
}

// kidOf returns the kid header of a token ("" if none).
func kidOf(t *testing.T, tok string) string {
	t.Helper()
	h, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var header struct {
		KID string `json:"kid"`
	}
	if err := json.Unmarshal(h, &header); err != nil {
		t.Fatal(err)
	}
	return header.KID
}

// staleTokens is a node that does not follow the change feed (its feed
// subscription is cancelled at once), so it learns of a rotation only
// from a token with an unknown kid.
func staleTokens(t *testing.T, s store.Store) *Tokens {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	tk, err := NewTokens(ctx, s, testIssuer)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	return tk
}

func TestTokenKIDIsTheCurrentKeysThumbprint(t *testing.T) {
	t.Parallel()
	s := storetest.OpenBolt(t)
	tk := newTestTokens(t, s)
	u := newTokenUser(t, s, "alice")
	tok, _, err := tk.Issue(t.Context(), u, KindLogin, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// RFC 7638: SHA-256 over the required members in lexicographic order.
	member := base64.RawURLEncoding.EncodeToString(tk.PublicKey())
	sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + member + `"}`))
	if want := base64.RawURLEncoding.EncodeToString(sum[:]); kidOf(t, tok) != want {
		t.Fatalf("kid = %q, want the RFC 7638 thumbprint %q", kidOf(t, tok), want)
	}
}

func TestOldTokenVerifiesAfterRotation(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := storetest.OpenBolt(t)
	tk := newTestTokens(t, s)
	u := newTokenUser(t, s, "alice")
	old, _, err := tk.Issue(ctx, u, KindLogin, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	oldPub := tk.PublicKey()
	if err := tk.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if tk.PublicKey().Equal(oldPub) {
		t.Fatal("Rotate kept the current key")
	}
	if _, err := tk.Verify(ctx, old); err != nil {
		t.Fatalf("token signed before the rotation: %v", err)
	}
	fresh, _, err := tk.Issue(ctx, u, KindLogin, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if kidOf(t, fresh) == kidOf(t, old) || kidOf(t, fresh) != currentKID(tk) {
		t.Fatalf("kid after rotation %q, before %q, current %q", kidOf(t, fresh), kidOf(t, old), currentKID(tk))
	}
	if _, err := tk.Verify(ctx, fresh); err != nil {
		t.Fatalf("token signed after the rotation: %v", err)
	}
	// A node started after the rotation loads both keys.
	late := newTestTokens(t, s)
	for _, tok := range []string{old, fresh} {
		if _, err := late.Verify(ctx, tok); err != nil {
			t.Fatalf("node started after the rotation: %v", err)
		}
	}
	if got := late.JWKS().Keys; len(got) != 2 || got[0].KID != kidOf(t, fresh) || got[1].KID != kidOf(t, old) {
		t.Fatalf("JWKS after one rotation = %+v, want the new key then the old one", got)
	}
}

// TestStaleNodeLoadsARotationForAnUnknownKID: a node that has not heard of
// a rotation verifies a token signed with the new key by reloading once.
func TestStaleNodeLoadsARotationForAnUnknownKID(t *testing.T) {
	t.Parallel()
	sharedStores(t, func(t *testing.T, sa, sb store.Store) {
		ctx := t.Context()
		a := newTestTokens(t, sa)
		b := staleTokens(t, sb)
		u := newTokenUser(t, sa, "alice")
		if err := a.Rotate(ctx); err != nil {
			t.Fatal(err)
		}
		if currentKID(b) == currentKID(a) {
			t.Fatal("the stale node saw the rotation without a reload; the test proves nothing")
		}
		tok, _, err := a.Issue(ctx, u, KindLogin, "", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Verify(ctx, tok); err != nil {
			t.Fatalf("stale node: %v", err)
		}
		if currentKID(b) != currentKID(a) {
			t.Fatal("the stale node verified but did not adopt the new current key")
		}
		mine, _, err := b.Issue(ctx, u, KindLogin, "", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if kidOf(t, mine) != currentKID(a) {
			t.Fatal("the formerly stale node signs with the retired key")
		}
	})
}

// TestNodesFollowARotationOnTheChangeFeed: a node following the store
// adopts another node's rotation without seeing a token first.
func TestNodesFollowARotationOnTheChangeFeed(t *testing.T) {
	t.Parallel()
	sharedStores(t, func(t *testing.T, sa, sb store.Store) {
		a, b := newTestTokens(t, sa), newTestTokens(t, sb)
		if err := a.Rotate(t.Context()); err != nil {
			t.Fatal(err)
		}
		want := currentKID(a)
		deadline := time.After(10 * time.Second)
		for currentKID(b) != want {
			select {
			case <-deadline:
				t.Fatal("the other node did not pick up the rotation from the change feed within 10 s")
			case <-time.After(5 * time.Millisecond):
			}
		}
		if n := len(b.JWKS().Keys); n != 2 {
			t.Fatalf("the other node's JWKS has %d keys, want 2", n)
		}
	})
}

func TestConcurrentRotationsAgreeOnOneCurrentKey(t *testing.T) {
	t.Parallel()
	sharedStores(t, func(t *testing.T, sa, sb store.Store) {
		ctx := t.Context()
		nodes := []*Tokens{newTestTokens(t, sa), newTestTokens(t, sb), newTestTokens(t, sa), newTestTokens(t, sb)}
		u := newTokenUser(t, sa, "alice")
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, len(nodes))
		for i, n := range nodes {
			wg.Go(func() {
				<-start
				errs[i] = n.Rotate(ctx)
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("Rotate on node %d: %v", i, err)
			}
		}
		for _, n := range nodes {
			n.mu.Lock()
			err := n.reloadLocked(ctx)
			n.mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
		}
		for i, n := range nodes {
			if currentKID(n) != currentKID(nodes[0]) {
				t.Fatalf("node %d signs with %q, node 0 with %q", i, currentKID(n), currentKID(nodes[0]))
			}
			tok, _, err := n.Issue(ctx, u, KindLogin, "", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			for j, m := range nodes {
				if _, err := m.Verify(ctx, tok); err != nil {
					t.Fatalf("token of node %d on node %d: %v", i, j, err)
				}
			}
		}
	})
}

// TestRetiredKeyStopsVerifyingAfterTheLongestLifetime uses a token signed
// with the retired key that outlives the key's window (Issue never makes
// one: lifetimes are capped by MaxTTL), so that only the retirement can
// refuse it.
func TestRetiredKeyStopsVerifyingAfterTheLongestLifetime(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := storetest.OpenBolt(t)
	clock := newFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	tk, err := NewTokensWith(ctx, s, TokenOptions{Issuer: testIssuer, MaxTTL: time.Hour, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	u := newTokenUser(t, s, "alice")
	oldKey, oldKID := signingKey(tk), currentKID(tk)
	c := goodClaims(u, clock.now())
	c["exp"] = clock.now().Add(24 * 365 * time.Hour).Unix()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	tok.Header["kid"] = oldKID
	long, err := tok.SignedString(oldKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := tk.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	window := time.Hour + keyRetireGrace + tokenLeeway
	clock.advance(window - time.Second)
	if _, err := tk.Parse(long); err != nil {
		t.Fatalf("retired key within its window: %v", err)
	}
	if n := len(tk.JWKS().Keys); n != 2 {
		t.Fatalf("JWKS within the window has %d keys, want 2", n)
	}
	clock.advance(time.Second)
	_, err = tk.Parse(long)
	if !errors.Is(err, ErrTokenInvalid) || !strings.HasSuffix(err.Error(), ": signing key retired") {
		t.Fatalf("retired key past its window: Parse = %v, want ErrTokenInvalid: signing key retired", err)
	}
	if keys := tk.JWKS().Keys; len(keys) != 1 || keys[0].KID == oldKID {
		t.Fatalf("JWKS past the window = %+v, want the current key only", keys)
	}
	// The next rotation drops it from the stored set.
	if err := tk.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if ks := tk.keys.Load(); len(ks.order) != 2 || ks.byKID[oldKID] != nil {
		t.Fatalf("after a second rotation the set holds %d keys (old key kept: %v)", len(ks.order), ks.byKID[oldKID] != nil)
	}
	raw, _, err := latestKeySet(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	var stored storedKeySet
	if err := json.Unmarshal(raw, &stored); err != nil {
		t.Fatal(err)
	}
	for i, k := range stored.Keys {
		if (i == 0) != (k.Private != "") {
			t.Fatalf("stored key %d has a private half: %v (only the current key may)", i, k.Private != "")
		}
	}
}

// TestStoreOfAnEarlierReleaseKeepsItsKey: a store holding only the single
// signing key of earlier releases keeps it as the first key, and tokens
// signed without a kid keep verifying against it, also after a rotation.
func TestStoreOfAnEarlierReleaseKeepsItsKey(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := storetest.OpenBolt(t)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutSetting(ctx, SettingSigningKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		t.Fatal(err)
	}
	u := newTokenUser(t, s, "alice")
	// A token as earlier releases signed it: no kid.
	legacy := signRaw(t, jwt.SigningMethodEdDSA, priv, goodClaims(u, time.Now()))
	if kidOf(t, legacy) != "" {
		t.Fatal("the legacy token has a kid")
	}

	tk := newTestTokens(t, s)
	if !tk.PublicKey().Equal(pub) {
		t.Fatal("the migrated store signs with a new key instead of the stored one")
	}
	if _, err := tk.Parse(legacy); err != nil {
		t.Fatalf("legacy token after migration: %v", err)
	}
	if keys := tk.JWKS().Keys; len(keys) != 1 || keys[0].X != base64.RawURLEncoding.EncodeToString(pub) {
		t.Fatalf("JWKS after migration = %+v", keys)
	}
	if err := tk.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Parse(legacy); err != nil {
		t.Fatalf("legacy token after a rotation: %v", err)
	}
	// Only the legacy key verifies kid-less tokens: the new key's
	// signature without a kid is refused.
	bare := signRaw(t, jwt.SigningMethodEdDSA, signingKey(tk), goodClaims(u, time.Now()))
	if _, err := tk.Parse(bare); !errors.Is(err, ErrTokenInvalid) || !strings.HasSuffix(err.Error(), ": bad signature") {
		t.Fatalf("kid-less token signed by the new key: %v, want ErrTokenInvalid: bad signature", err)
	}
	// The old setting is left as it was, for nodes of the earlier release
	// during a rolling upgrade.
	if raw, err := s.Setting(ctx, SettingSigningKey); err != nil || !strings.Contains(string(raw), "PRIVATE KEY") {
		t.Fatalf("legacy setting after migration: %q, %v", raw, err)
	}
}

func TestJWKSShape(t *testing.T) {
	t.Parallel()
	s := storetest.OpenBolt(t)
	tk := newTestTokens(t, s)
	raw, err := json.Marshal(tk.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string][]map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc) != 1 || len(doc["keys"]) != 1 {
		t.Fatalf("JWKS = %s, want {\"keys\": [one key]}", raw)
	}
	k := doc["keys"][0]
	want := map[string]any{"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": currentKID(tk),
		"x": base64.RawURLEncoding.EncodeToString(tk.PublicKey())}
	if len(k) != len(want) {
		t.Fatalf("JWK members = %v, want exactly %v", k, want)
	}
	for name, v := range want {
		if k[name] != v {
			t.Fatalf("JWK %s = %v, want %v", name, k[name], v)
		}
	}
	if x, err := base64.RawURLEncoding.Strict().DecodeString(k["x"].(string)); err != nil || len(x) != ed25519.PublicKeySize {
		t.Fatalf("x is not 32 bytes of unpadded base64url: %v", err)
	}
	if strings.ContainsAny(string(raw), "=\n") || strings.Contains(string(raw), "PRIVATE") || strings.Contains(string(raw), `"d"`) {
		t.Fatalf("JWKS holds padding, a private key or a \"d\" member: %s", raw)
	}
}

// countingStore counts reads of key-set settings.
type countingStore struct {
	store.Store
	reads atomic.Int32
}

func (c *countingStore) Setting(ctx context.Context, key string) ([]byte, error) {
	if strings.HasPrefix(key, SettingKeySet) {
		c.reads.Add(1)
	}
	return c.Store.Setting(ctx, key)
}

// TestUnknownKIDsReloadAtMostOncePerInterval: made-up kids cannot turn
// Parse into a stream of store reads.
func TestUnknownKIDsReloadAtMostOncePerInterval(t *testing.T) {
	cs := &countingStore{Store: storetest.OpenBolt(t)}
	clock := newFakeClock(time.Now())
	tk, err := NewTokensWith(t.Context(), cs, TokenOptions{Issuer: testIssuer, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	u := newTokenUser(t, cs, "alice")
	forge := func(kid string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, goodClaims(u, clock.now()))
		tok.Header["kid"] = kid
		s, err := tok.SignedString(signingKey(tk))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	parse := func(kid string) (reads int32) {
		before := cs.reads.Load()
		_, err := tk.Parse(forge(kid))
		if !errors.Is(err, ErrTokenInvalid) || !strings.HasSuffix(err.Error(), ": unknown signing key") {
			t.Fatalf("kid %q: Parse = %v, want ErrTokenInvalid: unknown signing key", kid, err)
		}
		return cs.reads.Load() - before
	}
	if parse("made-up-1") == 0 {
		t.Fatal("an unknown kid did not reload the key set")
	}
	for i := range 10 {
		if n := parse("made-up-burst-" + string(rune('a'+i))); n != 0 {
			t.Fatalf("unknown kid %d within the interval read the store %d times", i, n)
		}
	}
	clock.advance(missReloadInterval)
	if parse("made-up-2") == 0 {
		t.Fatal("an unknown kid after the interval did not reload")
	}
	// A known kid never reads the store.
	good, _, err := tk.Issue(t.Context(), u, KindLogin, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	before := cs.reads.Load()
	if _, err := tk.Parse(good); err != nil {
		t.Fatal(err)
	}
	if cs.reads.Load() != before {
		t.Fatal("Parse of a token with a known kid read the store")
	}
}

func TestIssueRefusesALifetimeAboveTheMaximum(t *testing.T) {
	t.Parallel()
	s := storetest.OpenBolt(t)
	tk, err := NewTokensWith(t.Context(), s, TokenOptions{Issuer: testIssuer, MaxTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	u := newTokenUser(t, s, "alice")
	if _, _, err := tk.Issue(t.Context(), u, KindLogin, "", time.Hour); err != nil {
		t.Fatalf("lifetime = MaxTTL: %v", err)
	}
	if _, _, err := tk.Issue(t.Context(), u, KindLogin, "", time.Hour+time.Second); err == nil {
		t.Fatal("Issue granted a lifetime above MaxTTL, which a retired key would not cover")
	}
	if d := newTestTokens(t, s).MaxTTL(); d != DefaultMaxTokenTTL {
		t.Fatalf("default MaxTTL = %v, want %v", d, DefaultMaxTokenTTL)
	}
}

func TestCorruptKeySetIsRefused(t *testing.T) {
	t.Parallel()
	good := func(t *testing.T) storedKeySet {
		k, err := newStoredKey(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return storedKeySet{Seq: 1, Keys: []storedKey{k}}
	}
	now := time.Now()
	for name, edit := range map[string]func(*storedKeySet){
		"no keys":                func(s *storedKeySet) { s.Keys = nil },
		"current without key":    func(s *storedKeySet) { s.Keys[0].Private = "" },
		"current retired":        func(s *storedKeySet) { s.Keys[0].RetiredAt = &now },
		"kid not the thumbprint": func(s *storedKeySet) { s.Keys[0].KID = "chosen" },
		"public key too short":   func(s *storedKeySet) { s.Keys[0].Public = "AAAA" },
		"halves differ": func(s *storedKeySet) {
			other, _ := newStoredKey(now)
			s.Keys[0].Private = other.Private
		},
		"retired key without retiredAt": func(s *storedKeySet) {
			other, _ := newStoredKey(now)
			other.Private = ""
			s.Keys = append(s.Keys, other)
		},
	} {
		t.Run(name, func(t *testing.T) {
			s := storetest.OpenBolt(t)
			ks := good(t)
			edit(&ks)
			raw, _ := json.Marshal(ks)
			if err := s.PutSetting(t.Context(), keySetSetting(1), raw); err != nil {
				t.Fatal(err)
			}
			if _, err := NewTokens(t.Context(), s, testIssuer); err == nil {
				t.Fatal("NewTokens accepted a corrupt key set")
			}
		})
	}
}

func TestIssueUntilKeepsTheChosenDate(t *testing.T) {
	t.Parallel()
	s := storetest.OpenBolt(t)
	clock := newFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 250_000_000, time.UTC))
	tk, err := NewTokensWith(t.Context(), s, TokenOptions{Issuer: testIssuer, MaxTTL: 48 * time.Hour, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	u := newTokenUser(t, s, "alice")
	until := time.Date(2030, 1, 2, 12, 0, 0, 0, time.UTC)
	tok, rec, err := tk.IssueUntil(t.Context(), u, KindApplication, "ci", until)
	if err != nil {
		t.Fatal(err)
	}
	if !rec.ExpiresAt.Equal(until) {
		t.Fatalf("ExpiresAt = %v, want %v", rec.ExpiresAt, until)
	}
	if c, err := tk.Verify(t.Context(), tok); err != nil || !c.ExpiresAt.Equal(until) {
		t.Fatalf("Verify = %+v, %v", c, err)
	}
	for name, at := range map[string]time.Time{
		"in the past":        clock.now().Add(-time.Second),
		"now":                clock.now(),
		"beyond the maximum": clock.now().Add(48*time.Hour + time.Second),
	} {
		if _, _, err := tk.IssueUntil(t.Context(), u, KindApplication, "", at); err == nil {
			t.Errorf("IssueUntil %s succeeded", name)
		}
	}
}
