package credential

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func newTestVerifier(t *testing.T, workers int) *Verifier {
	t.Helper()
	v, err := NewVerifier(VerifierOptions{Workers: workers, Params: testParams})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerifierVerifyAndCache(t *testing.T) {
	t.Parallel()
	v := newTestVerifier(t, 1)
	h, err := Hash("device-secret-1", testParams)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if ok, cached, err := v.Verify(ctx, "u1", "wrong", h, 1); ok || cached || err != nil {
		t.Fatalf("wrong password: %v %v %v", ok, cached, err)
	}
	if ok, cached, err := v.Verify(ctx, "u1", "device-secret-1", h, 1); !ok || cached || err != nil {
		t.Fatalf("first right password: %v %v %v", ok, cached, err)
	}
	if ok, cached, err := v.Verify(ctx, "u1", "device-secret-1", h, 1); !ok || !cached || err != nil {
		t.Fatalf("second right password: %v %v %v, want a cache hit", ok, cached, err)
	}
	// A new password version (the password changed) is not served from
	// the cache, nor is another user with the same password.
	if _, cached, _ := v.Verify(ctx, "u1", "device-secret-1", h, 2); cached {
		t.Fatal("cache hit across password versions")
	}
	if _, cached, _ := v.Verify(ctx, "u2", "device-secret-1", h, 2); cached {
		t.Fatal("cache hit for another user")
	}
	if got := v.Verifications(); got != 4 {
		t.Fatalf("Verifications = %d, want 4 (cache hits do not count)", got)
	}
	if ok, _, err := v.Verify(ctx, "u1", "x", "not-a-hash", 1); ok || !errors.Is(err, ErrMalformedHash) {
		t.Fatalf("malformed hash: %v %v", ok, err)
	}
}

// TestVerifierCacheFollowsTheHash: a password version can repeat (a
// restore rewinds it, and the next change reaches the old number again
// with a new hash); a cached success must not outlive the hash it was
// checked against, or a replaced password would keep logging in.
func TestVerifierCacheFollowsTheHash(t *testing.T) {
	t.Parallel()
	v := newTestVerifier(t, 1)
	ctx := context.Background()
	old, err := Hash("stolen-password-2", testParams)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := v.Verify(ctx, "u1", "stolen-password-2", old, 2); !ok {
		t.Fatal("the password at version 2 does not verify")
	}
	// Restored to version 1, then changed again: version 2, another hash.
	replaced, err := Hash("new-password-3", testParams)
	if err != nil {
		t.Fatal(err)
	}
	if ok, cached, _ := v.Verify(ctx, "u1", "stolen-password-2", replaced, 2); ok {
		t.Fatalf("the replaced password still verifies against the new hash (cached %v)", cached)
	}
	if ok, _, _ := v.Verify(ctx, "u1", "new-password-3", replaced, 2); !ok {
		t.Fatal("the new password does not verify")
	}
}

// TestVerifierCacheKey: the cache key is the keyed hash of the three
// fields, length-prefixed (moving a byte between fields changes it), the
// same from a reused pooled buffer as from a fresh one, and computed
// without allocating: it runs on every warm CONNECT (issue 21).
func TestVerifierCacheKey(t *testing.T) {
	v := newTestVerifier(t, 1)
	long := strings.Repeat("p", MaxPasswordLen)
	keys := map[[32]byte]string{}
	for _, f := range [][3]string{{"ab", "c", "d"}, {"a", "bc", "d"}, {"a", "b", "cd"}, {"", "", ""}, {"u1", "h", long}} {
		k := v.cacheKey(f[0], f[1], f[2])
		if prev, dup := keys[k]; dup {
			t.Fatalf("fields %q have the key of %s", f, prev)
		}
		keys[k] = fmt.Sprintf("%q", f)
		for range 3 { // pooled buffers of every size give the same key
			if again := v.cacheKey(f[0], f[1], f[2]); again != k {
				t.Fatalf("fields %q: key changed on reuse", f)
			}
		}
	}
	if v2 := newTestVerifier(t, 1); v2.cacheKey("ab", "c", "d") == v.cacheKey("ab", "c", "d") {
		t.Fatal("two verifiers share a cache key: the HMAC key is not per process")
	}
	if raceEnabled {
		return
	}
	h := strings.Repeat("h", 97) // an encoded argon2id hash's length
	if n := testing.AllocsPerRun(100, func() { v.cacheKey("0123456789abcdef", h, "device-secret-1") }); n != 0 {
		t.Fatalf("cacheKey allocates %v times, want 0", n)
	}
}

// BenchmarkVerifyCached is a cached verification: what a reconnecting
// device's password costs a CONNECT.
func BenchmarkVerifyCached(b *testing.B) {
	v, err := NewVerifier(VerifierOptions{Workers: 1, Params: testParams})
	if err != nil {
		b.Fatal(err)
	}
	h, err := Hash("device-secret-1", testParams)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if ok, _, _ := v.Verify(ctx, "u1", "device-secret-1", h, 1); !ok {
		b.Fatal("no match")
	}
	b.ReportAllocs()
	for b.Loop() {
		if ok, cached, _ := v.Verify(ctx, "u1", "device-secret-1", h, 1); !ok || !cached {
			b.Fatal("not a cache hit")
		}
	}
}

func TestVerifierDummyCostsAVerification(t *testing.T) {
	t.Parallel()
	v := newTestVerifier(t, 1)
	before := v.Verifications()
	if err := v.Dummy(context.Background(), "whatever"); err != nil {
		t.Fatal(err)
	}
	if v.Verifications() != before+1 {
		t.Fatal("Dummy did not run a verification")
	}
	// Too long: refused before any work, as Verify refuses it.
	if err := v.Dummy(context.Background(), strings.Repeat("x", MaxPasswordLen+1)); err != nil {
		t.Fatal(err)
	}
	if v.Verifications() != before+1 {
		t.Fatal("an over-long password was hashed")
	}
}

// TestVerifierBoundsConcurrency: with every worker busy a caller waits,
// and gets ErrBusy when its context ends first; a freed worker serves it.
func TestVerifierBoundsConcurrency(t *testing.T) {
	t.Parallel()
	v := newTestVerifier(t, 2)
	if v.Workers() != 2 {
		t.Fatalf("Workers = %d", v.Workers())
	}
	// Hold both slots as two long verifications would.
	v.slots <- struct{}{}
	v.slots <- struct{}{}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := v.Dummy(ctx, "x"); !errors.Is(err, ErrBusy) {
		t.Fatalf("saturated pool: %v, want ErrBusy", err)
	}
	if v.Verifications() != 0 {
		t.Fatal("a verification ran beyond the workers")
	}
	done := make(chan error, 1)
	go func() { done <- v.Dummy(context.Background(), "x") }()
	select {
	case err := <-done:
		t.Fatalf("ran while every worker was busy: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	<-v.slots // one verification finishes
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if v.Verifications() != 1 {
		t.Fatalf("Verifications = %d, want 1", v.Verifications())
	}
}

// TestVerifierWorkingSet: the pool's working set is its workers times its
// parameters' argon2id memory (19 MiB each with DefaultParams), what
// cmd/warden checks its memory limit against.
func TestVerifierWorkingSet(t *testing.T) {
	t.Parallel()
	v := newTestVerifier(t, 3)
	if got, want := v.WorkingSet(), int64(3)*int64(testParams.Memory)*1024; got != want {
		t.Errorf("test params, 3 workers: %d, want %d", got, want)
	}
	d, err := NewVerifier(VerifierOptions{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.WorkingSet(); got != 2*19<<20 {
		t.Errorf("default params, 2 workers: %d, want 38 MiB", got)
	}
}
