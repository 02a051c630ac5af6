package main

import (
	"github.com/warden-mqtt/warden/credential"
)

// loginGuard is the defence of password logins, built once and shared by
// MQTT CONNECT, the HTTP logins and the client registry, so that all run on one bounded pool
// of argon2id workers (their number bounds the memory a login flood can
// take: 19 MiB each) and see one lockout state.
type loginGuard struct {
	verifier *credential.Verifier
	lockout  *credential.Lockout
}

func newLoginGuard(cfg Config) (*loginGuard, error) {
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
	return &loginGuard{verifier: v, lockout: l}, nil
}
