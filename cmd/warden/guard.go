package main

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/directory"
	"github.com/warden-mqtt/warden/store"
)

// loginGuard is the defence of password logins, built once and shared by
// MQTT CONNECT, the HTTP logins and the client registry, so that all run on one bounded pool
// of argon2id workers (their number bounds the memory a login flood can
// take: 19 MiB each) and see one lockout state. Its rehasher upgrades,
// after either kind of login, a stored hash made with other parameters
// than credential.DefaultParams, those new passwords get.
type loginGuard struct {
	verifier *credential.Verifier
	lockout  *credential.Lockout
	rehasher *credential.Rehasher
	// directory checks directory users' passwords (--ldap-url); nil: off.
	directory *directory.Service
}

// newLoginGuard builds the guard on s; upgrades of password hashes under
// way end with ctx.
func newLoginGuard(ctx context.Context, cfg Config, s store.Store, log *slog.Logger, reg prometheus.Registerer) (*loginGuard, error) {
	v, err := credential.NewVerifier(credential.VerifierOptions{Workers: cfg.AuthVerifyWorkers})
	if err != nil {
		return nil, err
	}
	l := credential.NewLockout(credential.LockoutOptions{
		MaxPerUserIP: cfg.AuthMaxFailuresUser,
		MaxPerUser:   cfg.AuthMaxFailuresUserTotal,
		MaxPerIP:     cfg.AuthMaxFailuresIP,
		Window:       cfg.AuthFailureWindow,
		Backoff:      cfg.AuthBackoff,
	})
	r, err := credential.NewRehasher(ctx, credential.RehasherOptions{Store: s, Verifier: v, Params: credential.DefaultParams, Logger: log})
	if err != nil {
		return nil, err
	}
	d, err := startDirectory(ctx, cfg, s, log, reg)
	if err != nil {
		return nil, err
	}
	return &loginGuard{verifier: v, lockout: l, rehasher: r, directory: d}, nil
}
