package main

import (
	"bytes"
	"encoding/pem"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/warden-mqtt/warden/pki"
)

// writeCAFile puts the internal CA's certificate in dir/ca.pem, for
// devices to trust. The CA lives in the store, so a data directory used
// with another store (the embedded store before, Redis now) gets another
// CA's certificate: that replacement is logged at INFO with both
// fingerprints, since devices holding the old file stop trusting the
// server. Creating the file is logged too; an unchanged file is left
// alone, silently.
func writeCAFile(dir string, ca *pki.CA, log *slog.Logger) {
	path := filepath.Join(dir, caCertFile)
	certPEM := ca.CertPEM()
	old, err := os.ReadFile(path)
	switch {
	case err == nil && bytes.Equal(old, certPEM):
		return
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		log.Warn("cannot read the CA certificate file; writing it again", "path", path, "err", err)
	}
	existed := err == nil
	if err := os.MkdirAll(dir, 0o700); err != nil {
		log.Warn("cannot write the internal CA certificate", "path", path, "err", err)
		return
	}
	if err := os.WriteFile(path, certPEM, 0o644); err != nil {
		log.Warn("cannot write the internal CA certificate", "path", path, "err", err)
		return
	}
	if !existed {
		log.Info("internal CA certificate written", "path", path, "fingerprint", ca.Fingerprint())
		return
	}
	log.Info("CA certificate file replaced with the store's CA; devices that trust the old file need the new one",
		"path", path, "old_fingerprint", pemFingerprint(old), "fingerprint", ca.Fingerprint())
}

// pemFingerprint is the fingerprint of the first certificate in a PEM
// file, or a word saying there is none.
func pemFingerprint(b []byte) string {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return "none (no certificate in the file)"
		}
		if block.Type == "CERTIFICATE" {
			return pki.Fingerprint(block.Bytes)
		}
	}
}
