package credential

import (
	"context"
	"sync"
	"testing"

	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// todayParams stand for raised parameters; testParams for an older
// release's. Both are cheap.
var todayParams = Params{Memory: 2048, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// rehashFixture is a store with alice, whose hash was made with
// testParams, a verifier and a rehasher to todayParams.
type rehashFixture struct {
	st    store.Store
	ver   *Verifier
	re    *Rehasher
	alice store.User
}

const alicePassword = "alice-password-1"

func newRehashFixture(t *testing.T) *rehashFixture {
	t.Helper()
	st := storetest.OpenBolt(t)
	h, err := Hash(alicePassword, testParams)
	if err != nil {
		t.Fatal(err)
	}
	alice, err := st.CreateUser(t.Context(), store.User{Username: "alice", PasswordHash: h})
	if err != nil {
		t.Fatal(err)
	}
	ver := newTestVerifier(t, 1)
	re, err := NewRehasher(t.Context(), RehasherOptions{Store: st, Verifier: ver, Params: todayParams})
	if err != nil {
		t.Fatal(err)
	}
	return &rehashFixture{st: st, ver: ver, re: re, alice: alice}
}

func (f *rehashFixture) stored(t *testing.T) store.User {
	t.Helper()
	u, err := f.st.User(t.Context(), f.alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestRehasherUpgradesAnOutdatedHash: after a verified login, a hash made
// with other parameters is replaced by one made with today's, of the same
// password, under the same password version; the verifier answers the
// next login from its cache, as it would have without the upgrade.
func TestRehasherUpgradesAnOutdatedHash(t *testing.T) {
	f := newRehashFixture(t)
	f.re.Upgrade(f.alice, alicePassword)
	f.re.Wait()
	got := f.stored(t)
	if NeedsRehash(got.PasswordHash, todayParams) {
		t.Fatalf("stored hash %q not made with today's parameters", got.PasswordHash)
	}
	if ok, err := Verify(alicePassword, got.PasswordHash); !ok || err != nil {
		t.Errorf("the password does not match the new hash: %v %v", ok, err)
	}
	if got.PasswordVersion != f.alice.PasswordVersion || !got.UpdatedAt.Equal(f.alice.UpdatedAt) {
		t.Errorf("version %d updated %v after the upgrade, want %d and %v", got.PasswordVersion, got.UpdatedAt, f.alice.PasswordVersion, f.alice.UpdatedAt)
	}
	runs := f.ver.Verifications()
	ok, cached, err := f.ver.Verify(t.Context(), got.ID, alicePassword, got.PasswordHash, got.PasswordVersion)
	if !ok || !cached || err != nil || f.ver.Verifications() != runs {
		t.Errorf("next login against the new hash: ok %v cached %v err %v (%d argon2id runs), want a cache hit", ok, cached, err, f.ver.Verifications()-runs)
	}
}

// TestRehasherLeavesCurrentHashesAlone: a hash made with today's
// parameters costs no hash and no write.
func TestRehasherLeavesCurrentHashesAlone(t *testing.T) {
	f := newRehashFixture(t)
	f.re.Upgrade(f.alice, alicePassword)
	f.re.Wait()
	current := f.stored(t)
	version, err := f.st.Version(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	runs := f.ver.Verifications()
	f.re.Upgrade(current, alicePassword)
	f.re.Wait()
	after, err := f.st.Version(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if f.ver.Verifications() != runs || after != version || f.stored(t).PasswordHash != current.PasswordHash {
		t.Errorf("an up-to-date hash was rehashed: %d runs, model version %d -> %d", f.ver.Verifications()-runs, version, after)
	}
}

// TestRehasherWritesOncePerUser: logins of one user at once start one
// upgrade; the store is written once.
func TestRehasherWritesOncePerUser(t *testing.T) {
	f := newRehashFixture(t)
	before, err := f.st.Version(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { f.re.Upgrade(f.alice, alicePassword) })
	}
	wg.Wait()
	f.re.Wait()
	f.re.Upgrade(f.alice, alicePassword) // a late login with the record read before the upgrade
	f.re.Wait()
	after, err := f.st.Version(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if after != before+1 {
		t.Errorf("model version %d -> %d, want one write", before, after)
	}
}

// TestRehasherNeverUndoesAPasswordChange: an upgrade started from the
// record of the old password does not overwrite a password changed
// meanwhile.
func TestRehasherNeverUndoesAPasswordChange(t *testing.T) {
	f := newRehashFixture(t)
	newHash, err := Hash("a-new-password-2", testParams)
	if err != nil {
		t.Fatal(err)
	}
	changed, err := f.st.UpdateUser(t.Context(), f.alice.ID, func(u *store.User) error { u.PasswordHash = newHash; return nil })
	if err != nil {
		t.Fatal(err)
	}
	f.re.Upgrade(f.alice, alicePassword) // the login verified the old password before the change
	f.re.Wait()
	if got := f.stored(t); got.PasswordHash != newHash || got.PasswordVersion != changed.PasswordVersion {
		t.Errorf("the upgrade overwrote the changed password (version %d, want %d)", got.PasswordVersion, changed.PasswordVersion)
	}
}

// TestRehasherStopsWithItsContext: once the context ends, upgrades fail
// without writing; a nil Rehasher upgrades nothing.
func TestRehasherStopsWithItsContext(t *testing.T) {
	f := newRehashFixture(t)
	ctx, cancel := context.WithCancel(t.Context())
	re, err := NewRehasher(ctx, RehasherOptions{Store: f.st, Verifier: f.ver, Params: todayParams})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	re.Upgrade(f.alice, alicePassword)
	re.Wait()
	var none *Rehasher
	none.Upgrade(f.alice, alicePassword)
	if got := f.stored(t); got.PasswordHash != f.alice.PasswordHash {
		t.Error("an upgrade ran after its context ended")
	}
}
