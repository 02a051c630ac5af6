package pki

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/warden-mqtt/warden/store"
)

// SettingCA is the store setting that holds the CA certificate and key,
// shared by every node so they all issue and trust the same certificates.
const SettingCA = "pki/ca"

// caLifetime is the validity of a CA created by LoadOrCreateCA: long,
// because replacing the CA invalidates every client certificate in the
// field.
const caLifetime = 10 * 365 * 24 * time.Hour

// storedCA is the JSON form of SettingCA.
type storedCA struct {
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

// LoadOrCreateCA returns the fleet's CA from the store, creating it on
// first start. When several nodes start at once exactly one CA wins: the
// create is conditional, and a node that loses the race loads the
// winner's CA. Any other store error is returned rather than answered with
// a new CA, since a node with its own CA would split the fleet.
func LoadOrCreateCA(ctx context.Context, s store.Store, commonName string) (*CA, error) {
	ca, err := readCA(ctx, s)
	if err == nil {
		return ca, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}

	ca, err = NewCA(commonName, caLifetime)
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(storedCA{Cert: string(ca.CertPEM()), Key: string(ca.KeyPEM())})
	if err != nil {
		return nil, fmt.Errorf("pki: encode CA: %w", err)
	}
	err = s.CreateSetting(ctx, SettingCA, raw)
	switch {
	case err == nil:
		return ca, nil
	case errors.Is(err, store.ErrConflict):
		// Another node stored its CA between our read and our create.
		return readCA(ctx, s)
	default:
		return nil, fmt.Errorf("pki: store CA: %w", err)
	}
}

// readCA loads the CA from SettingCA. A missing setting is returned as an
// error matching store.ErrNotFound; a present but unreadable one is an
// error the operator must fix, never a reason to make a new CA.
func readCA(ctx context.Context, s store.Store) (*CA, error) {
	raw, err := s.Setting(ctx, SettingCA)
	if err != nil {
		return nil, fmt.Errorf("pki: read CA: %w", err)
	}
	var sc storedCA
	if err := json.Unmarshal(raw, &sc); err != nil {
		return nil, fmt.Errorf("pki: decode stored CA setting %q: %w", SettingCA, err)
	}
	ca, err := LoadCA([]byte(sc.Cert), []byte(sc.Key))
	if err != nil {
		return nil, fmt.Errorf("pki: stored CA setting %q: %w", SettingCA, err)
	}
	return ca, nil
}
