package admin_test

import (
	"strings"
	"testing"

	"github.com/warden-mqtt/warden/admin"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/store/storetest"
)

// TestNewNamesMissingOptions: New builds no client registry or trust store
// of its own; without them (or without a store and tokens) it refuses,
// naming every option that is missing.
func TestNewNamesMissingOptions(t *testing.T) {
	st := storetest.OpenBolt(t)
	tokens, err := credential.NewTokens(t.Context(), st, "warden-test")
	if err != nil {
		t.Fatal(err)
	}
	full := admin.WithRegistryAndTrust(t, admin.Options{Store: st, Tokens: tokens, Params: fastParams})
	for _, c := range []struct {
		name    string
		unset   func(*admin.Options)
		missing []string
	}{
		{"no registry", func(o *admin.Options) { o.Registry = nil }, []string{"Options.Registry"}},
		{"no trust store", func(o *admin.Options) { o.Trust = nil }, []string{"Options.Trust"}},
		{"neither", func(o *admin.Options) { o.Registry, o.Trust = nil, nil }, []string{"Options.Registry", "Options.Trust"}},
		{"nothing", func(o *admin.Options) { *o = admin.Options{} }, []string{"Options.Store", "Options.Tokens", "Options.Registry", "Options.Trust"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := full
			c.unset(&o)
			srv, err := admin.New(o)
			if err == nil || srv != nil {
				t.Fatalf("New = %v, %v; want an error", srv, err)
			}
			for _, name := range c.missing {
				if !strings.Contains(err.Error(), name) {
					t.Errorf("error %q does not name %s", err, name)
				}
			}
		})
	}
	if _, err := admin.New(full); err != nil {
		t.Fatalf("New with every required option: %v", err)
	}
}
