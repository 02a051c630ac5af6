package admin

import (
	"testing"

	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/pki"
	"github.com/warden-mqtt/warden/registry"
)

// WithRegistryAndTrust fills the options New requires that a test leaves
// nil, as cmd/warden wires them: a client registry and a trust store on
// o.Store with the store's internal CA, the registry hashing on the
// server's Verifier (built here with o.Params when o.Verifier is nil, as
// New would build it). The trust store follows the store until the test
// ends. Tests only.
func WithRegistryAndTrust(t testing.TB, o Options) Options {
	t.Helper()
	if o.Registry != nil && o.Trust != nil {
		return o
	}
	ca, err := pki.LoadOrCreateCA(t.Context(), o.Store, pki.DefaultCAName)
	if err != nil {
		t.Fatal(err)
	}
	if o.Verifier == nil {
		if o.Verifier, err = credential.NewVerifier(credential.VerifierOptions{Params: o.Params}); err != nil {
			t.Fatal(err)
		}
	}
	if o.Registry == nil {
		o.Registry, err = registry.New(registry.Options{Store: o.Store, CA: ca, Logger: o.Logger, Policy: o.Policy, Params: o.Params, Verifier: o.Verifier})
		if err != nil {
			t.Fatal(err)
		}
	}
	if o.Trust == nil {
		if o.Trust, err = pki.NewTrustStore(t.Context(), o.Store, pki.TrustOptions{CA: ca, Logger: o.Logger}); err != nil {
			t.Fatal(err)
		}
	}
	return o
}

// EnrollmentQR is enrollmentQR, for the QR code tests.
var EnrollmentQR = enrollmentQR
