package registry_test

import (
	"testing"
	"time"

	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/registry"
	"github.com/warden-mqtt/warden/store"
)

// TestRegistryHashesOnTheLoginPool (issue 14, item 2): the public
// registration endpoint and the implicit flow hash and check passwords on
// the verifier the logins share, so a registration flood cannot get
// around the pool's bound on argon2id's CPU and memory.
func TestRegistryHashesOnTheLoginPool(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, st store.Store) {
		ver, err := credential.NewVerifier(credential.VerifierOptions{Workers: 1, Params: fastParams})
		if err != nil {
			t.Fatal(err)
		}
		e := newEnv(t, st, func(o *registry.Options) { o.Verifier = ver })
		e.open(time.Hour)

		before := ver.Verifications()
		e.pending(registry.Request{Username: "dev-pool-1", Password: devicePW}) // hashed
		e.pending(registry.Request{Username: "dev-pool-1", Password: devicePW}) // poll: verified
		if got := e.reg.ConnectAttempt(e.ctx, "dev-pool-2", []byte(devicePW), nil); got != registry.Pending {
			t.Fatalf("implicit registration: %v, want Pending", got)
		}
		e.refused(registry.Request{Username: "dev-pool-1", Password: devicePW + "-other"}, registry.ErrConflict) // verified, wrong
		if n := ver.Verifications() - before; n != 4 {
			t.Fatalf("%d argon2id runs on the shared pool for 2 registrations, a poll and a wrong poll, want 4", n)
		}
	})
}
