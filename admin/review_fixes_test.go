package admin_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/warden-mqtt/warden/admin"
	"github.com/warden-mqtt/warden/pki"
	"github.com/warden-mqtt/warden/registry"
)

// rvFullRegistry is a second server on a's store and tokens whose client
// registry runs on clock and holds at most maxPending requests.
func rvFullRegistry(t *testing.T, a *api, clock *gClock, maxPending int) *api {
	t.Helper()
	ca, err := pki.LoadOrCreateCA(context.Background(), a.st, pki.DefaultCAName)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(registry.Options{Store: a.st, CA: ca, Params: fastParams, Logger: slog.New(slog.DiscardHandler),
		Now: clock.Now, MaxPending: maxPending})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := admin.New(admin.Options{Store: a.st, Tokens: a.tokens, Params: fastParams, Logger: slog.New(slog.DiscardHandler), Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	b := *a
	b.url, b.srv = hs.URL, srv
	return &b
}
