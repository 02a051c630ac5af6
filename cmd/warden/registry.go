package main

import (
	"context"
	"log/slog"
	"strings"

	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/pki"
	"github.com/warden-mqtt/warden/registry"
	"github.com/warden-mqtt/warden/store"
)

// startRegistry builds the client registry and locks it: the registry is
// locked after every start (for all nodes sharing the store), so a node
// restart never leaves it open by accident.
func startRegistry(ctx context.Context, cfg Config, s store.Store, log *slog.Logger, ver *credential.Verifier) (*registry.Registry, error) {
	ca, err := pki.LoadOrCreateCA(ctx, s, pki.DefaultCAName)
	if err != nil {
		return nil, err
	}
	var roles []string
	for _, r := range strings.Split(cfg.RegistryAutoGrantRoles, ",") {
		if r = strings.TrimSpace(r); r != "" {
			roles = append(roles, r)
		}
	}
	for _, name := range roles {
		if _, err := s.RoleByName(ctx, name); err != nil {
			log.Warn("--registry-auto-grant-roles names a role that does not exist (yet)", "role", name)
		}
	}
	reg, err := registry.New(registry.Options{
		Store: s, CA: ca, Logger: log, MaxOpen: cfg.RegistryMaxOpen,
		CertLifetime: cfg.ClientCertValidity, AutoGrantRoles: roles, Verifier: ver,
	})
	if err != nil {
		return nil, err
	}
	if len(roles) > 0 {
		log.Warn("client registry auto-grant is on: while open, every registration is granted", "roles", roles)
	}
	return reg, reg.Lock(ctx)
}
