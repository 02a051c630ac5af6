package credential

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// slowParams make a verification last long enough (milliseconds) for
// parallel guesses to queue behind the pool's one worker.
var slowParams = Params{Memory: 8 << 10, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// TestGateBoundsParallelGuesses: guesses that wait for the pool at once
// all passed the lockout check made before they waited; the gate checks
// again once each holds the worker, and counts a failure before letting
// the worker go, so with one worker no more guesses run than the
// lockout's limit, whether they go to a real hash (VerifyIf) or the
// dummy one (DummyIf). The rest are answered ErrBlocked, unhashed.
func TestGateBoundsParallelGuesses(t *testing.T) {
	t.Parallel()
	hash, err := Hash("right-password-1", slowParams)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(VerifierOptions{Workers: 1, Params: slowParams})
	if err != nil {
		t.Fatal(err)
	}
	const limit, guesses = 3, 30
	for name, guess := range map[string]func(ctx context.Context, g Gate, pw string) error{
		"VerifyIf": func(ctx context.Context, g Gate, pw string) error {
			_, _, err := v.VerifyIf(ctx, g, "u1", pw, hash, 1)
			return err
		},
		"DummyIf": func(ctx context.Context, g Gate, pw string) error { return v.DummyIf(ctx, g, pw) },
	} {
		t.Run(name, func(t *testing.T) {
			l := NewLockout(LockoutOptions{MaxPerUserIP: limit, MaxPerUser: 1000, MaxPerIP: 1000, Backoff: time.Minute})
			before := v.Verifications()
			errs := make(chan error, guesses)
			var wg sync.WaitGroup
			for i := range guesses {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if b, _ := l.Check("victim", "10.0.0.9:4000"); b != NotBlocked {
						errs <- ErrBlocked // refused before waiting, as a caller would
						return
					}
					errs <- guess(context.Background(), l.Gate("victim", "10.0.0.9:4000"), "guess-"+string(rune('a'+i)))
				}()
			}
			wg.Wait()
			close(errs)
			blocked := 0
			for err := range errs {
				switch {
				case errors.Is(err, ErrBlocked):
					blocked++
				case err != nil:
					t.Fatalf("guess: %v", err)
				}
			}
			if ran := v.Verifications() - before; ran != limit || blocked != guesses-limit {
				t.Fatalf("%d parallel guesses, limit %d: %d verifications ran and %d were blocked, want %d and %d",
					guesses, limit, ran, blocked, limit, guesses-limit)
			}
			if b, _ := l.Check("victim", "10.0.0.9:4000"); b != BlockedUser {
				t.Fatalf("after the guesses the lockout says %v, want BlockedUser", b)
			}
		})
	}
}

// TestGateLeavesCachedSuccessesAndPlainCallsAlone: a cached success is
// answered without asking the gate (it costs nothing to bound); the zero
// Gate (Verify, Dummy, Check) allows everything.
func TestGateLeavesCachedSuccessesAndPlainCallsAlone(t *testing.T) {
	t.Parallel()
	v := newTestVerifier(t, 1)
	hash, err := Hash("device-secret-1", testParams)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if ok, _, err := v.Verify(ctx, "u1", "device-secret-1", hash, 1); !ok || err != nil {
		t.Fatalf("Verify: %v %v", ok, err)
	}
	asked, failed := 0, 0
	closed := Gate{Allow: func() bool { asked++; return false }, Failed: func() { failed++ }}
	if ok, cached, err := v.VerifyIf(ctx, closed, "u1", "device-secret-1", hash, 1); !ok || !cached || err != nil {
		t.Fatalf("cached success behind a closed gate: %v %v %v, want a cache hit", ok, cached, err)
	}
	if _, _, err := v.VerifyIf(ctx, closed, "u1", "wrong-password", hash, 1); !errors.Is(err, ErrBlocked) {
		t.Fatalf("uncached verification behind a closed gate: %v, want ErrBlocked", err)
	}
	if err := v.DummyIf(ctx, closed, "anything"); !errors.Is(err, ErrBlocked) {
		t.Fatalf("dummy behind a closed gate: %v, want ErrBlocked", err)
	}
	if asked != 2 || failed != 0 {
		t.Fatalf("gate asked %d times and told of %d failures, want 2 and 0", asked, failed)
	}
	open := Gate{Failed: func() { failed++ }}
	if ok, _, err := v.VerifyIf(ctx, open, "u1", "wrong-password", hash, 1); ok || err != nil {
		t.Fatalf("wrong password: %v %v", ok, err)
	}
	if ok, _, err := v.VerifyIf(ctx, open, "u1", "x", "not-a-hash", 1); ok || !errors.Is(err, ErrMalformedHash) {
		t.Fatalf("malformed hash: %v %v", ok, err)
	}
	if err := v.DummyIf(ctx, open, "anything"); err != nil {
		t.Fatalf("dummy: %v", err)
	}
	if failed != 3 {
		t.Fatalf("%d failures reported, want 3 (wrong password, malformed hash, dummy)", failed)
	}
}
