package authhook_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/store"
)

// Tests of what the lockout counts and when it is checked: guesses sent
// in parallel, CONNECTs without a password, and the MFA refusal's cost.

// TestParallelGuessesRunAtMostTheLimit: an attacker sends 40 password
// guesses for one username at once, from one address, with the limit at
// 3 per (username, address). Each guess passed the lockout check before
// it waited for the (one) verification worker; the lockout is checked
// again once a guess holds the worker, so only 3 run argon2id and the
// rest are refused unhashed, with the same answer as a wrong password.
// The same holds for guesses for a username that does not exist (the
// dummy verification).
func TestParallelGuessesRunAtMostTheLimit(t *testing.T) {
	t.Parallel()
	const limit, guesses = 3, 40
	g := startGuarded(t, credential.LockoutOptions{MaxPerUserIP: limit, MaxPerUser: 1000, MaxPerIP: 1000, Backoff: time.Minute}, nil)
	// A hash that takes milliseconds, so the guesses queue behind the worker.
	slow, err := credential.Hash("right-password-1", credential.Params{Memory: 8 << 10, Time: 3, Threads: 1, SaltLen: 16, KeyLen: 32})
	if err != nil {
		t.Fatal(err)
	}
	addUser(t, g.st, "victim", "", nil, func(u *store.User) { u.PasswordHash = slow })
	for i, user := range []string{"victim", "ghost"} {
		from := fmt.Sprint("127.0.0.", 20+i)
		before := g.ver.Verifications()
		codes := make(chan byte, guesses)
		var wg sync.WaitGroup
		for j := range guesses {
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes <- connectFrom(t, g.node, from, connectOpts{username: user, password: fmt.Sprint("guess-", j)})
			}()
		}
		wg.Wait()
		close(codes)
		ran := g.ver.Verifications() - before
		t.Logf("%s: %d parallel guesses from one address, limit %d per (username, address): %d argon2id verifications ran", user, guesses, limit, ran)
		if ran > limit {
			t.Errorf("%s: %d guesses verified, limit %d", user, ran, limit)
		}
		for code := range codes {
			if code != 0x86 {
				t.Fatalf("%s: a guess got CONNACK 0x%02x, want 0x86 (blocked or not, as a wrong password)", user, code)
			}
		}
	}
}

// TestRefusedConnectsWithoutPasswordCount: CONNECTs without a password
// (unknown users, a known user without any credential) count towards the
// address's failure limit like wrong passwords, so a flood of them from
// one address is throttled (0x9F) after --auth-max-failures-ip; refused
// CONNECTs that presented a client certificate do not count, so one bad
// certificate device behind a NAT cannot block the others.
func TestRefusedConnectsWithoutPasswordCount(t *testing.T) {
	t.Parallel()
	g := startGuarded(t, credential.LockoutOptions{MaxPerUserIP: 100, MaxPerUser: 100, MaxPerIP: 5, Backoff: time.Minute}, nil)
	addUser(t, g.st, "cam-3", "cam-secret-3", nil, func(u *store.User) {
		u.GrantTypes = []store.GrantType{{Method: store.GrantPassword}, {Method: store.GrantCertificate}}
	})
	const attacker, nat = "127.0.0.30", "127.0.0.31"
	for i := range 4 {
		if code := connectFrom(t, g.node, attacker, connectOpts{username: fmt.Sprint("nobody-", i)}); code != 0x86 {
			t.Fatalf("unknown user without a password: CONNACK 0x%02x, want 0x86", code)
		}
	}
	if code := connectFrom(t, g.node, attacker, connectOpts{username: "cam-3"}); code != 0x86 {
		t.Fatalf("known user without a credential: CONNACK 0x%02x, want 0x86", code)
	}
	if code := connectFrom(t, g.node, attacker, connectOpts{username: "cam-3", password: "cam-secret-3"}); code != 0x9F {
		t.Fatalf("after 5 refused CONNECTs without a password (limit 5 per address): CONNACK 0x%02x, want 0x9F (address blocked)", code)
	}

	// A certificate for a user that does not exist, six times from one
	// address: refused, not counted.
	stranger := issueClient(t, g.ca, "stranger")
	for range 6 {
		if code := tlsConnectFrom(t, g.node, g.ca, &stranger, nat, connectOpts{}); code != 0x86 {
			t.Fatalf("certificate of an unknown user: CONNACK 0x%02x, want 0x86", code)
		}
	}
	if code := connectFrom(t, g.node, nat, connectOpts{username: "cam-3", password: "cam-secret-3"}); code != 0 {
		t.Fatalf("password login from an address whose certificate devices failed: CONNACK 0x%02x, want 0", code)
	}
}

// TestMFARefusalCostsAVerification: with MFA on, an MFA user's password
// alone is refused (0x86) before it is verified, at the cost of one
// verification like a wrong password, and never from the cache of
// verified passwords: its right password (cached by an earlier login, as
// an HTTP login caches it) is refused no faster than a wrong one, so the
// time does not tell a guesser it was right.
func TestMFARefusalCostsAVerification(t *testing.T) {
	t.Parallel()
	g := startGuarded(t, credential.LockoutOptions{MaxPerUserIP: -1, MaxPerUser: -1, MaxPerIP: -1}, func(o *authhook.Options) { o.MFA = true })
	boss := mfaUser(t, g.st, "boss", "boss-secret-12", nil)
	// The right password verified once, outside MQTT (the HTTP login).
	if ok, _, err := g.ver.Verify(context.Background(), boss.ID, "boss-secret-12", boss.PasswordHash, boss.PasswordVersion); !ok || err != nil {
		t.Fatalf("warm-up verification: %v %v", ok, err)
	}
	for i, pw := range []string{"boss-secret-12", "boss-secret-12", "wrong-guess-1"} {
		before := g.ver.Verifications()
		if code := connectFrom(t, g.node, "127.0.0.1", connectOpts{username: "boss", password: pw}); code != 0x86 {
			t.Fatalf("attempt %d: CONNACK 0x%02x, want 0x86", i+1, code)
		}
		if n := g.ver.Verifications() - before; n != 1 {
			t.Errorf("attempt %d (right password: %v): %d verifications, want 1 (as a wrong password)", i+1, pw == "boss-secret-12", n)
		}
	}
}
