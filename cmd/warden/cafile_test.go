package main

import (
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/warden-mqtt/warden/pki"
	"github.com/warden-mqtt/warden/store/storetest"
)

// TestCAFileChangeIsLogged starts warden with a TLS listener on the
// embedded store, again on it, then on Redis with the same data dir
// (issue 15, item 16): the first start logs that it wrote ca.pem, the
// second logs nothing about it, the third says the file now holds the
// Redis store's CA, with both fingerprints.
func TestCAFileChangeIsLogged(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildWarden(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	caFile := filepath.Join(dataDir, caCertFile)
	start := func(env ...string) string {
		t.Helper()
		p := startWarden(t, bin, append([]string{"WARDEN_DATA_DIR=" + dataDir, "WARDEN_MQTTS_ADDR=127.0.0.1:0"}, env...)...)
		p.waitFor("warden ready")
		p.signal(syscall.SIGTERM)
		if code := p.exitCode(); code != 0 {
			t.Fatalf("exit %d:\n%s", code, p.out)
		}
		return p.out.String()
	}
	fingerprint := func() string {
		t.Helper()
		b, err := os.ReadFile(caFile)
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(b)
		if block == nil {
			t.Fatalf("%s holds no PEM", caFile)
		}
		return pki.Fingerprint(block.Bytes)
	}

	out := start()
	boltCA := fingerprint()
	if !strings.Contains(out, `msg="internal CA certificate written" path=`+caFile+" fingerprint="+boltCA) {
		t.Errorf("the first start does not say it wrote %s:\n%s", caFile, out)
	}

	out = start()
	if strings.Contains(out, caCertFile) || strings.Contains(out, "CA certificate") {
		t.Errorf("a start that leaves %s as it is logs about it:\n%s", caFile, out)
	}

	out = start("WARDEN_REDIS_URL=" + storetest.StartRedis(t).URL)
	redisCA := fingerprint()
	if redisCA == boltCA {
		t.Fatal("the Redis store has the embedded store's CA; the test needs two CAs")
	}
	want := `level=INFO msg="CA certificate file replaced with the store's CA; devices that trust the old file need the new one" path=` +
		caFile + " old_fingerprint=" + boltCA + " fingerprint=" + redisCA
	if !strings.Contains(out, want) {
		t.Errorf("starting on Redis replaced %s without saying so; want %q in:\n%s", caFile, want, out)
	}
}

func TestHelpSaysWhereTheCALives(t *testing.T) {
	t.Parallel()
	o, _ := optionNamed("data-dir")
	if strings.Contains(o.usage, "JWT") || !strings.Contains(o.usage, "ca.pem") || !strings.Contains(o.usage, "kept in the store") {
		t.Errorf("--data-dir's help does not say the data dir holds ca.pem and the keys live in the store: %q", o.usage)
	}
}
