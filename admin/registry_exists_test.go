package admin_test

import (
	"bytes"
	"net/http"
	"testing"
	"time"
)

// TestRegistryRegisterDoesNotTellWhichUsersExist (item 7): the public
// register endpoint answers a request for an existing user's name exactly
// as one for a name that another device's request (with other
// credentials) holds: the same 409 body, password or CSR alike; while the
// registry is locked, every refusal is the same 423, a name whose granted
// request is still kept for its device's last poll included.
func TestRegistryRegisterDoesNotTellWhichUsersExist(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		clock, _ := gWithClock(t, a)
		a.must("POST", "/api/client-registry/open", map[string]any{"duration": 600000}, http.StatusNoContent, nil)
		gWant(t, a, map[string]any{"username": "dev-pending", "password": gDevicePW, "context": "serial 1"}, http.StatusAccepted)
		gWant(t, a, map[string]any{"username": "dev-granted", "password": gDevicePW, "context": "serial 2"}, http.StatusAccepted)
		a.must("POST", "/api/client-registry/confirm", map[string]any{"username": "dev-granted"}, http.StatusNoContent, nil)

		other := "another-secret-9"
		taken := gWant(t, a, map[string]any{"username": "dev-pending", "password": other, "context": "x"}, http.StatusConflict)
		for _, name := range []string{"admin", "dev-granted"} {
			if b := gWant(t, a, map[string]any{"username": name, "password": other, "context": "x"}, http.StatusConflict); !bytes.Equal(b, taken) {
				t.Errorf("existing user %s: %s, want the answer for a pending request %s", name, b, taken)
			}
		}
		csrTaken := gWant(t, a, map[string]any{"username": "dev-pending", "csr": gCSR(t, gECKey(t), "dev-pending"), "context": "x"}, http.StatusConflict)
		if b := gWant(t, a, map[string]any{"username": "admin", "csr": gCSR(t, gECKey(t), "admin"), "context": "x"}, http.StatusConflict); !bytes.Equal(b, csrTaken) {
			t.Errorf("existing user with a CSR: %s, want %s", b, csrTaken)
		}

		a.must("POST", "/api/client-registry/lock", nil, http.StatusNoContent, nil)
		clock.Advance(time.Second)
		locked := gWant(t, a, map[string]any{"username": "never-seen", "password": other, "context": "x"}, http.StatusLocked)
		for _, name := range []string{"admin", "dev-granted", "dev-pending"} {
			if b := gWant(t, a, map[string]any{"username": name, "password": other, "context": "x"}, http.StatusLocked); !bytes.Equal(b, locked) {
				t.Errorf("%s while locked: %s, want %s", name, b, locked)
			}
		}
		// The granted device itself still gets its answer.
		gWant(t, a, map[string]any{"username": "dev-granted", "password": gDevicePW, "context": "serial 2"}, http.StatusCreated)

		// While the registry is full (the granted request kept for its
		// device fills a registry of one), an existing user's name gets
		// the 429 a new name gets, not the 409 that would tell it exists.
		full := rvFullRegistry(t, a, clock, 1)
		full.must("POST", "/api/client-registry/open", map[string]any{"duration": 600000}, http.StatusNoContent, nil)
		tooMany := gWant(t, full, map[string]any{"username": "never-seen", "password": other, "context": "x"}, http.StatusTooManyRequests)
		for _, name := range []string{"admin", "dev-pending"} {
			if b := gWant(t, full, map[string]any{"username": name, "password": other, "context": "x"}, http.StatusTooManyRequests); !bytes.Equal(b, tooMany) {
				t.Errorf("%s while full: %s, want %s", name, b, tooMany)
			}
		}
		if b := gWant(t, full, map[string]any{"username": "admin", "csr": gCSR(t, gECKey(t), "admin"), "context": "x"}, http.StatusTooManyRequests); !bytes.Equal(b, tooMany) {
			t.Errorf("existing user with a CSR while full: %s, want %s", b, tooMany)
		}
	})
}
