package admin_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/warden-mqtt/warden/admin"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// BenchmarkLoginFailure compares a wrong password for an existing user
// with a login naming no user, with production argon2id parameters: the
// two should cost the same, so timing does not reveal which users exist.
func BenchmarkLoginFailure(b *testing.B) {
	st := storetest.OpenBolt(b)
	ctx := context.Background()
	tokens, err := credential.NewTokens(ctx, st, "bench")
	if err != nil {
		b.Fatal(err)
	}
	h, err := credential.Hash("the-right-password-1", credential.DefaultParams)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.CreateUser(ctx, store.User{Username: "operator", PasswordHash: h}); err != nil {
		b.Fatal(err)
	}
	// LoginMaxFailures -1: no lockout, so every iteration hashes.
	srv, err := admin.New(admin.WithRegistryAndTrust(b, admin.Options{Store: st, Tokens: tokens, LoginMaxFailures: -1, Logger: slog.New(slog.DiscardHandler)}))
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, body string }{
		{"wrong-password", `{"username":"operator","password":"a-wrong-password-1"}`},
		{"unknown-user", `{"username":"nobody-at-all","password":"a-wrong-password-1"}`},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				rec := httptest.NewRecorder()
				req := httptest.NewRequest("POST", "/api/login", strings.NewReader(c.body))
				req.Header.Set("Content-Type", "application/json")
				srv.Handler().ServeHTTP(rec, req)
				if rec.Code != http.StatusForbidden {
					b.Fatalf("status %d", rec.Code)
				}
			}
		})
	}
}
