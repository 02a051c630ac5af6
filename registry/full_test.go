package registry_test

import (
	"testing"
	"time"

	"github.com/warden-mqtt/warden/registry"
	"github.com/warden-mqtt/warden/store"
)

// TestRegistryFullDoesNotTellWhichUsersExist: with MaxPending requests
// stored, a registration naming an existing user is ErrFull, as one
// naming nobody is, not the ErrConflict that says the name is taken;
// password and CSR alike. Once there is room, the existing name gets its
// conflict again.
func TestRegistryFullDoesNotTellWhichUsersExist(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st, func(o *registry.Options) { o.MaxPending = 1 })
		if _, err := st.CreateUser(e.ctx, store.User{Username: "existing-user"}); err != nil {
			t.Fatal(err)
		}
		e.open(time.Hour)
		e.pending(registry.Request{Username: "filler-dev", Password: devicePW})
		e.refused(registry.Request{Username: "unknown-user", Password: devicePW}, registry.ErrFull)
		e.refused(registry.Request{Username: "existing-user", Password: devicePW}, registry.ErrFull)
		e.refused(registry.Request{Username: "existing-user", CSR: csrB64(t, edKey(t), "existing-user")}, registry.ErrFull)

		if err := st.DeleteRegistryRequest(e.ctx, "filler-dev"); err != nil {
			t.Fatal(err)
		}
		e.refused(registry.Request{Username: "existing-user", Password: devicePW}, registry.ErrConflict)
	})
}
