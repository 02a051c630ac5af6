package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/admin"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/internal/poll"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// Tests of the login defence over HTTP (issue 14, items 2 and 5). Clients
// come from several loopback addresses, as from other machines.

// postFrom POSTs body as JSON to path from the local address local.
func (a *api) postFrom(local, path string, body any) (int, http.Header, []byte) {
	a.t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}, Timeout: 30 * time.Second}
	j, err := json.Marshal(body)
	if err != nil {
		a.t.Fatal(err)
	}
	resp, err := c.Post(a.url+path, "application/json", bytes.NewReader(j))
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, out
}

func loginBody(user, password string) map[string]string {
	return map[string]string{"username": user, "password": password}
}

// TestLoginLockoutPerAddress (item 5): wrong passwords for the admin from
// one address lock the admin's password logins from that address only
// (answered as a wrong password); the admin logs in from its own.
func TestLoginLockoutPerAddress(t *testing.T) {
	t.Parallel()
	a := newAPI(t, storetest.OpenBolt(t))
	var wrong []byte
	for range 8 {
		_, _, wrong = a.postFrom("127.0.0.2", "/api/login", loginBody("admin", "wrong-password-1"))
	}
	code, _, b := a.postFrom("127.0.0.2", "/api/login", loginBody("admin", adminPassword))
	if code != http.StatusForbidden || !bytes.Equal(b, wrong) {
		t.Fatalf("right password from the guessing address: %d %s, want the wrong-password answer %s", code, b, wrong)
	}
	if code, _, b := a.postFrom("127.0.0.1", "/api/login", loginBody("admin", adminPassword)); code != http.StatusOK {
		t.Fatalf("admin from its own address while another address is locked out: %d %s, want 200", code, b)
	}
}

// TestLoginAddressLimit (item 2): an address over its failure limit gets
// 429 with Retry-After on every password login endpoint, whatever the
// username, without a verification; other addresses log in.
func TestLoginAddressLimit(t *testing.T) {
	t.Parallel()
	ver, err := credential.NewVerifier(credential.VerifierOptions{Workers: 1, Params: fastParams})
	if err != nil {
		t.Fatal(err)
	}
	lock := credential.NewLockout(credential.LockoutOptions{MaxPerIP: 5, Backoff: 2 * time.Minute})
	a := newAPI(t, storetest.OpenBolt(t), func(o *admin.Options) { o.Lockout, o.Verifier = lock, ver })
	for i := range 5 {
		if code, _, b := a.postFrom("127.0.0.3", "/api/login", loginBody(fmt.Sprint("user-", i), "guess-password")); code != http.StatusForbidden {
			t.Fatalf("guess %d: %d %s", i, code, b)
		}
	}
	before := ver.Verifications()
	for _, path := range []string{"/api/login", "/api/oauth2", "/api/v1/authenticate"} {
		code, h, b := a.postFrom("127.0.0.3", path, loginBody("admin", adminPassword))
		if code != http.StatusTooManyRequests || errorCode(t, b) != http.StatusTooManyRequests {
			t.Fatalf("%s from the blocked address: %d %s, want 429", path, code, b)
		}
		if s, err := strconv.Atoi(h.Get("Retry-After")); err != nil || s < 1 || s > 120 {
			t.Fatalf("%s: Retry-After %q, want 1 to 120 seconds", path, h.Get("Retry-After"))
		}
	}
	if ver.Verifications() != before {
		t.Error("a blocked address made the server hash")
	}
	if code, _, b := a.postFrom("127.0.0.4", "/api/login", loginBody("admin", adminPassword)); code != http.StatusOK {
		t.Fatalf("another address: %d %s", code, b)
	}
}

// TestLoginPoolSaturated (item 2): while every verification worker is
// busy, a login waits VerifyWait and then gets 503 with Retry-After; it
// does not count as a failure.
func TestLoginPoolSaturated(t *testing.T) {
	t.Parallel()
	ver, err := credential.NewVerifier(credential.VerifierOptions{Workers: 1, Params: fastParams})
	if err != nil {
		t.Fatal(err)
	}
	a := newAPI(t, storetest.OpenBolt(t), func(o *admin.Options) { o.Verifier, o.VerifyWait = ver, 100*time.Millisecond })
	done := holdTheOnlyWorker(t, a, ver)
	// The admin's right password is cached since newAPI logged it in: a
	// wrong one needs a worker.
	for _, path := range []string{"/api/login", "/api/v1/authenticate"} {
		code, h, b := a.postFrom("127.0.0.1", path, loginBody("admin", "not-the-password"))
		if code != http.StatusServiceUnavailable || errorCode(t, b) != http.StatusServiceUnavailable || h.Get("Retry-After") != "1" {
			t.Fatalf("%s while the pool is saturated: %d Retry-After %q %s, want 503 with Retry-After 1", path, code, h.Get("Retry-After"), b)
		}
	}
	if code := <-done; code != http.StatusForbidden {
		t.Fatalf("slow login: %d, want 403", code)
	}
	// The 503s counted nothing.
	if code, _, b := a.postFrom("127.0.0.1", "/api/login", loginBody("admin", adminPassword)); code != http.StatusOK {
		t.Fatalf("admin after the 503s: %d %s", code, b)
	}
}

// TestLoginUnknownUserCostsAVerification (item 7 over HTTP): an unknown
// or suspended user costs one verification on the shared pool, as a
// wrong password does, and gets the same answer.
func TestLoginUnknownUserCostsAVerification(t *testing.T) {
	t.Parallel()
	ver, err := credential.NewVerifier(credential.VerifierOptions{Workers: 1, Params: fastParams})
	if err != nil {
		t.Fatal(err)
	}
	a := newAPI(t, storetest.OpenBolt(t), func(o *admin.Options) { o.Verifier = ver })
	sus := sCreateUser(t, a, "sus", "sus-password-1")
	if _, err := a.st.UpdateUser(context.Background(), sus.ID, func(u *store.User) error { u.Suspended = true; return nil }); err != nil {
		t.Fatal(err)
	}
	var want []byte
	for _, c := range []struct{ user, password string }{{"admin", "wrong-password"}, {"nobody-here", "any-password"}, {"sus", "sus-password-1"}} {
		before := ver.Verifications()
		code, _, b := a.postFrom("127.0.0.1", "/api/login", loginBody(c.user, c.password))
		if want == nil {
			want = b
		}
		if code != http.StatusForbidden || !bytes.Equal(b, want) {
			t.Errorf("%s: %d %s, want 403 %s", c.user, code, b, want)
		}
		if n := ver.Verifications() - before; n != 1 {
			t.Errorf("%s: %d verifications, want 1", c.user, n)
		}
	}
}

// holdTheOnlyWorker starts a login whose stored hash takes long to verify
// (64 MiB, 8 passes: about a second), so it holds the only worker of ver,
// and returns once it verifies; its answer arrives on the channel.
func holdTheOnlyWorker(t *testing.T, a *api, ver *credential.Verifier) <-chan int {
	t.Helper()
	slow, err := credential.Hash("slow-password-1", credential.Params{Memory: 64 << 10, Time: 8, Threads: 1, SaltLen: 16, KeyLen: 32})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.st.CreateUser(context.Background(), store.User{Username: "slow", PasswordHash: slow}); err != nil {
		t.Fatal(err)
	}
	before := ver.Verifications()
	done := make(chan int, 1)
	go func() {
		code, _, _ := a.postFrom("127.0.0.1", "/api/login", loginBody("slow", "not-it"))
		done <- code
	}()
	poll.Until(t, 10*time.Second, "the slow login starts verifying", func() bool { return ver.Verifications() != before })
	return done
}

// TestPasswordWorkOnTheLoginPool (item 2): changing a password (checking
// the current one, hashing the new one) and creating a user with a
// password run argon2id on the pool the logins share, so a token holder
// looping over them cannot get around its bound: with no worker free
// they get 503 with Retry-After, and nothing changes.
func TestPasswordWorkOnTheLoginPool(t *testing.T) {
	t.Parallel()
	ver, err := credential.NewVerifier(credential.VerifierOptions{Workers: 1, Params: fastParams})
	if err != nil {
		t.Fatal(err)
	}
	a := newAPI(t, storetest.OpenBolt(t), func(o *admin.Options) { o.Verifier, o.VerifyWait = ver, 100*time.Millisecond })
	sCreateUser(t, a, "carol", "carol-password-1")
	tok := a.login("carol", "carol-password-1")
	done := holdTheOnlyWorker(t, a, ver)
	for _, c := range []struct {
		what, method, path, token string
		body                      any
	}{
		{"change-password", "PUT", "/api/users/change-password", tok, map[string]string{"password": "carol-password-1", "newPassword": "carol-password-2"}},
		{"create a user", "POST", "/api/users", a.admin, map[string]any{"username": "dave", "password": "dave-password-1"}},
	} {
		code, h, b := a.doWithHeaders(c.method, c.path, c.token, c.body)
		if code != http.StatusServiceUnavailable || h.Get("Retry-After") != "1" {
			t.Errorf("%s while the pool is saturated: %d Retry-After %q %s, want 503 with Retry-After 1", c.what, code, h.Get("Retry-After"), b)
		}
	}
	<-done
	if _, err := a.st.UserByUsername(context.Background(), "dave"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("user created although the pool was busy: %v", err)
	}
	a.login("carol", "carol-password-1") // the password did not change
}

// TestLoginParallelGuessesRunAtMostTheLimit (item 5): guesses sent at
// once all pass the lockout's check before they wait for a verification
// worker; the check is repeated once a worker is free, so 40 parallel
// wrong passwords for one username from one address run at most the
// limit's verifications (one worker), and every answer is the ordinary
// refusal.
func TestLoginParallelGuessesRunAtMostTheLimit(t *testing.T) {
	// Verifications slow enough (8 MiB, 2 passes) that all 40 guesses are
	// waiting for the worker before the first one is decided.
	slow := credential.Params{Memory: 8 << 10, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
	ver, err := credential.NewVerifier(credential.VerifierOptions{Workers: 1, Params: slow})
	if err != nil {
		t.Fatal(err)
	}
	lock := credential.NewLockout(credential.LockoutOptions{MaxPerUserIP: 3, MaxPerUser: 100, MaxPerIP: 100, Backoff: time.Minute})
	a := newAPI(t, storetest.OpenBolt(t), func(o *admin.Options) { o.Verifier, o.Lockout = ver, lock })
	h, err := credential.Hash("frank-password-1", slow)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.st.CreateUser(context.Background(), store.User{Username: "frank", PasswordHash: h}); err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"frank", "nobody-at-all"} {
		before := ver.Verifications()
		codes := make(chan int, 40)
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Go(func() {
				code, _, _ := a.postFrom("127.0.0.9", "/api/login", loginBody(user, fmt.Sprint("guess-", i)))
				codes <- code
			})
		}
		wg.Wait()
		close(codes)
		for code := range codes {
			if code != http.StatusForbidden {
				t.Errorf("%s: a parallel guess got %d, want 403", user, code)
			}
		}
		if n := ver.Verifications() - before; n > 3 {
			t.Errorf("%s: 40 parallel guesses ran %d verifications, want at most 3 (the limit per username and address)", user, n)
		}
	}
}

// TestLoginMFALockedPasswordCostsAVerification (item 7 with item 5): a
// user locked after too many wrong MFA codes is refused whatever the
// password, after a dummy verification that counts as a failure; the
// right password is never answered from the verified cache, which would
// be faster and tell a guesser it was right.
func TestLoginMFALockedPasswordCostsAVerification(t *testing.T) {
	t.Parallel()
	ver, err := credential.NewVerifier(credential.VerifierOptions{Workers: 1, Params: fastParams})
	if err != nil {
		t.Fatal(err)
	}
	a := newAPI(t, storetest.OpenBolt(t), func(o *admin.Options) { o.Verifier, o.MFAEnabled = ver, true })
	u := sCreateUser(t, a, "erin", "erin-password-1")
	a.login("erin", "erin-password-1") // the right password is now cached
	if _, err := a.st.UpdateUser(context.Background(), u.ID, func(x *store.User) error {
		x.MFA = &store.MFAState{LockedUntil: time.Now().Add(time.Hour)}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var want []byte
	for _, pw := range []string{"erin-password-1", "erin-password-1", "wrong-password"} {
		before := ver.Verifications()
		code, _, b := a.postFrom("127.0.0.1", "/api/login", loginBody("erin", pw))
		if want == nil {
			want = b
		}
		if code != http.StatusForbidden || !bytes.Equal(b, want) {
			t.Errorf("MFA-locked user, password %q: %d %s, want 403 %s", pw, code, b, want)
		}
		if n := ver.Verifications() - before; n != 1 {
			t.Errorf("MFA-locked user, password %q: %d verifications, want 1 (a dummy, never the cache)", pw, n)
		}
	}
}
