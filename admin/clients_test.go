package admin_test

import (
	"net/http"
	"testing"

	"github.com/warden-mqtt/warden/store/storetest"
)

// TestClientsWithoutABroker: a node without an auth hook (Options.Clients
// nil: --insecure-no-auth) knows no connected clients and says so with a
// 503 on both routes, after the usual authentication and permission
// checks.
func TestClientsWithoutABroker(t *testing.T) {
	t.Parallel()
	a := newAPI(t, storetest.OpenBolt(t))
	for _, r := range []struct{ method, path string }{{"GET", "/api/clients"}, {"DELETE", "/api/clients/dev-1"}} {
		code, body := a.do(r.method, r.path, a.admin, nil)
		if code != http.StatusServiceUnavailable || errorCode(t, body) != http.StatusServiceUnavailable {
			t.Errorf("%s %s: %d %s, want 503", r.method, r.path, code, body)
		}
		if code, _ := a.do(r.method, r.path, "", nil); code != http.StatusUnauthorized {
			t.Errorf("%s %s without a token: %d, want 401", r.method, r.path, code)
		}
	}
}
