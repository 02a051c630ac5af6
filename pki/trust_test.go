package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/internal/poll"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// trustBackends runs fn on each store implementation. node opens another
// handle on the same data, as a second warden node would: a second
// connection for Redis; for bolt, whose file one process owns, the same
// store.
func trustBackends(t *testing.T, fn func(t *testing.T, s store.Store, node func() store.Store)) {
	t.Run("bolt", func(t *testing.T) {
		s := storetest.OpenBolt(t)
		fn(t, s, func() store.Store { return s })
	})
	t.Run("redis", func(t *testing.T) {
		url := storetest.StartRedis(t).URL
		open := func() store.Store { return storetest.OpenRedis(t, storetest.URL(url)) }
		fn(t, open(), open)
	})
}

// newTrust returns a TrustStore on s that follows the feed for the test.
func newTrust(t *testing.T, s store.Store, ca *CA, config ...*x509.Certificate) *TrustStore {
	t.Helper()
	ts, err := NewTrustStore(t.Context(), s, TrustOptions{CA: ca, Config: config, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("NewTrustStore: %v", err)
	}
	return ts
}

// clientOf issues a client certificate for cn from ca, as a tls pair.
func clientOf(t *testing.T, ca *CA, cn string) (*x509.Certificate, tls.Certificate) {
	t.Helper()
	key := newKey(t, "p256")
	leaf, leafPEM, err := ca.IssueClient(key.Public(), cn, time.Hour)
	if err != nil {
		t.Fatalf("IssueClient: %v", err)
	}
	pair, err := tls.X509KeyPair(leafPEM, pkcs8PEM(t, key))
	if err != nil {
		t.Fatal(err)
	}
	return leaf, pair
}

// trusts reports whether pool verifies leaf for client authentication.
func trusts(pool *x509.CertPool, leaf *x509.Certificate) bool {
	_, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err == nil
}

func ids(list []TrustedCert) []string {
	out := make([]string, len(list))
	for i, c := range list {
		out[i] = c.ID()
	}
	return out
}

func TestTrustStoreAddListRemove(t *testing.T) {
	t.Parallel()
	trustBackends(t, func(t *testing.T, s store.Store, _ func() store.Store) {
		ctx := t.Context()
		internal, configured, a, b := newTestCA(t), newTestCA(t), newTestCA(t), newTestCA(t)
		ts := newTrust(t, s, internal, configured.Certificate())

		list, err := ts.List(ctx)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if want := []string{internal.Fingerprint(), configured.Fingerprint()}; !slices.Equal(ids(list), want) {
			t.Fatalf("fresh List = %v, want the internal CA then the configured one %v", ids(list), want)
		}
		if list[0].Origin != OriginInternalCA || list[0].Removable() || list[1].Origin != OriginConfig || list[1].Removable() {
			t.Errorf("fresh List origins = %v/%v removable %v/%v", list[0].Origin, list[1].Origin, list[0].Removable(), list[1].Removable())
		}

		// A bundle with comments adds both, in order; the result says how
		// each is trusted now.
		added, err := ts.Add(ctx, []byte("# a\n"+string(a.CertPEM())+"# b\n"+string(b.CertPEM())))
		if err != nil {
			t.Fatalf("Add: %v", err)
		}
		if want := []string{a.Fingerprint(), b.Fingerprint()}; !slices.Equal(ids(added), want) || !added[0].Removable() || !added[1].Removable() {
			t.Fatalf("Add returned %v, want two removable certificates %v", ids(added), want)
		}
		// Adding again, and adding the internal and the configured CA,
		// stores nothing new and is no error.
		again, err := ts.Add(ctx, slices.Concat(b.CertPEM(), internal.CertPEM(), configured.CertPEM(), b.CertPEM()))
		if err != nil {
			t.Fatalf("Add again: %v", err)
		}
		if want := []string{b.Fingerprint(), internal.Fingerprint(), configured.Fingerprint()}; !slices.Equal(ids(again), want) {
			t.Errorf("Add again returned %v, want each input certificate once %v", ids(again), want)
		}
		if again[1].Origin != OriginInternalCA || again[2].Origin != OriginConfig {
			t.Errorf("re-added fixed certificates reported as origins %v, %v", again[1].Origin, again[2].Origin)
		}
		list, err = ts.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{internal.Fingerprint(), configured.Fingerprint(), a.Fingerprint(), b.Fingerprint()}
		if !slices.Equal(ids(list), want) {
			t.Fatalf("List after adds = %v, want %v (no duplicates)", ids(list), want)
		}
		raw, err := s.Setting(ctx, SettingTrusted)
		if err != nil || bytes.Count(raw, []byte("BEGIN CERTIFICATE")) != 2 {
			t.Errorf("stored setting holds %d certificates (err %v), want 2", bytes.Count(raw, []byte("BEGIN CERTIFICATE")), err)
		}

		got, err := ts.Get(ctx, a.Fingerprint())
		if err != nil || !bytes.Equal(got.PEM(), a.CertPEM()) {
			t.Errorf("Get(a) = %q, %v; want a's PEM", got.PEM(), err)
		}
		if _, err := ts.Get(ctx, strings.Repeat("0", 64)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(unknown) error = %v, want store.ErrNotFound", err)
		}

		for name, id := range map[string]string{"the internal CA": internal.Fingerprint(), "a configured CA": configured.Fingerprint()} {
			if err := ts.Remove(ctx, id); !errors.Is(err, ErrNotRemovable) {
				t.Errorf("Remove(%s) error = %v, want ErrNotRemovable", name, err)
			}
		}
		if err := ts.Remove(ctx, strings.Repeat("0", 64)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Remove(unknown) error = %v, want store.ErrNotFound", err)
		}
		if err := ts.Remove(ctx, a.Fingerprint()); err != nil {
			t.Fatalf("Remove(a): %v", err)
		}
		if err := ts.Remove(ctx, a.Fingerprint()); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("second Remove(a) error = %v, want store.ErrNotFound", err)
		}
		list, err = ts.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{internal.Fingerprint(), configured.Fingerprint(), b.Fingerprint()}; !slices.Equal(ids(list), want) {
			t.Errorf("List after Remove(a) = %v, want %v", ids(list), want)
		}

		// The inventory survives a restart: a new TrustStore on the same
		// store trusts b.
		leaf, _ := clientOf(t, b, "device")
		if !trusts(newTrust(t, s, internal).Pool(), leaf) {
			t.Error("a new TrustStore on the same store does not trust the stored CA")
		}
	})
}

func TestTrustStoreRefusesUnusableInputAndStoresNothing(t *testing.T) {
	t.Parallel()
	ca, other := newTestCA(t), newTestCA(t)
	weak := selfSigned(t, "weak CA", newKey(t, "rsa1024"), true)
	pemOf := func(c *x509.Certificate) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	full := string(other.CertPEM())
	for name, tc := range map[string]struct{ in, want string }{
		"empty input":                   {" \n", "empty"},
		"text without PEM":              {"hello", "no PEM certificate"},
		"a private key beside a CA":     {full + string(other.KeyPEM()), `PEM block 2 is "PRIVATE KEY"`},
		"a certificate cut short":       {full + full[:len(full)/2], "PEM block 2 is incomplete"},
		"a corrupt certificate":         {"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "PEM block 1"},
		"an RSA key below 2048 bits":    {full + pemOf(weak), "certificate 2 (\"weak CA\") has an RSA key of 1024 bits"},
		"a certificate request":         {string(csrPEM(t, newKey(t, "p256"), "dev")), `"CERTIFICATE REQUEST", not a CERTIFICATE`},
		"base64 of a PEM, not PEM text": {"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==", "no PEM certificate"},
	} {
		t.Run(name, func(t *testing.T) {
			s := storetest.OpenBolt(t)
			ts := newTrust(t, s, ca)
			_, err := ts.Add(t.Context(), []byte(tc.in))
			var ce *CertificateError
			if !errors.As(err, &ce) {
				t.Fatalf("Add error = %v (%T), want a *CertificateError", err, err)
			}
			if !strings.Contains(ce.Reason, tc.want) {
				t.Errorf("reason %q does not mention %q", ce.Reason, tc.want)
			}
			if _, err := s.Setting(t.Context(), SettingTrusted); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("refused input was stored (Setting error %v)", err)
			}
		})
	}
}

// selfSigned makes a self-signed certificate for key; isCA decides whether
// it may sign others. A leaf is for client authentication.
func selfSigned(t *testing.T, cn string, key crypto.Signer, isCA bool) *x509.Certificate {
	t.Helper()
	serial, err := newSerial()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  isCA,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if isCA {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTrustStoreNeverOverwritesAnUnreadableInventory(t *testing.T) {
	t.Parallel()
	s := storetest.OpenBolt(t)
	ca := newTestCA(t)
	corrupt := []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	if err := s.PutSetting(t.Context(), SettingTrusted, corrupt); err != nil {
		t.Fatal(err)
	}
	if _, err := NewTrustStore(t.Context(), s, TrustOptions{CA: ca}); err == nil {
		t.Fatal("NewTrustStore accepted a corrupt inventory")
	}

	// A TrustStore that started before the corruption refuses to write
	// over it, and its error is not the client's fault.
	if err := s.PutSetting(t.Context(), SettingTrusted, nil); err != nil {
		t.Fatal(err)
	}
	ts := newTrust(t, s, ca)
	if err := s.PutSetting(t.Context(), SettingTrusted, corrupt); err != nil {
		t.Fatal(err)
	}
	_, err := ts.Add(t.Context(), newTestCA(t).CertPEM())
	var ce *CertificateError
	if err == nil || errors.As(err, &ce) {
		t.Fatalf("Add over a corrupt inventory: error %v, want an internal (non-*CertificateError) error", err)
	}
	if raw, _ := s.Setting(t.Context(), SettingTrusted); !bytes.Equal(raw, corrupt) {
		t.Errorf("the corrupt inventory was overwritten with %q", raw)
	}
}

// TestTrustStoreServerConfigFollowsTheInventory: a TLS listener built once
// refuses a client certificate from an unknown CA, accepts it (verified)
// once the CA is added, and refuses it again, resumed session included,
// once the CA is removed; certificates from the internal CA pass
// throughout, and a client without a certificate is let through to the
// MQTT layer (VerifyClientCertIfGiven is kept).
func TestTrustStoreServerConfigFollowsTheInventory(t *testing.T) {
	t.Parallel()
	trustBackends(t, func(t *testing.T, s store.Store, _ func() store.Store) {
		internal, external := newTestCA(t), newTestCA(t)
		ts := newTrust(t, s, internal)
		serverCert, err := internal.IssueServer(nil, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		serverCfg := ts.ServerConfig(&tls.Config{
			Certificates: []tls.Certificate{serverCert},
			ClientAuth:   tls.VerifyClientCertIfGiven,
		})
		if serverCfg.ClientAuth != tls.VerifyClientCertIfGiven {
			t.Fatalf("ServerConfig changed ClientAuth to %v", serverCfg.ClientAuth)
		}
		_, device := clientOf(t, external, "device-1")
		_, own := clientOf(t, internal, "device-2")
		// One session cache per client identity, as each device has its
		// own: a resumed session carries the identity it was made with.
		caches := map[*tls.Certificate]tls.ClientSessionCache{}
		var resumed bool // whether the last successful dial resumed a session
		dial := func(pair *tls.Certificate) (verified bool, err error) {
			if caches[pair] == nil {
				caches[pair] = tls.NewLRUClientSessionCache(4)
			}
			cfg := &tls.Config{RootCAs: internal.Pool(), ServerName: "localhost", ClientSessionCache: caches[pair]}
			if pair != nil {
				cfg.Certificates = []tls.Certificate{*pair}
			}
			clientErr, serverErr, state := handshake(t, serverCfg, cfg)
			resumed = state.DidResume
			return len(state.VerifiedChains) > 0, errors.Join(clientErr, serverErr)
		}

		if _, err := dial(&device); err == nil {
			t.Fatal("a certificate from an unknown CA was accepted")
		}
		if verified, err := dial(&own); err != nil || !verified {
			t.Fatalf("internal CA certificate: verified %v, err %v", verified, err)
		}
		if verified, err := dial(nil); err != nil || verified {
			t.Fatalf("client without a certificate: verified %v, err %v; want a plain handshake", verified, err)
		}

		if _, err := ts.Add(t.Context(), external.CertPEM()); err != nil {
			t.Fatalf("Add: %v", err)
		}
		// No wait: the node that added the CA trusts it when Add returns.
		if verified, err := dial(&device); err != nil || !verified {
			t.Fatalf("after Add: verified %v, err %v", verified, err)
		}
		// Connect once more so the client holds a session ticket from a
		// handshake verified by the external CA.
		if verified, err := dial(&device); err != nil || !verified || !resumed {
			t.Fatalf("second connect after Add: verified %v, resumed %v, err %v; want a verified resumed session", verified, resumed, err)
		}

		if err := ts.Remove(t.Context(), external.Fingerprint()); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		if verified, err := dial(&device); err == nil {
			t.Fatalf("after Remove the certificate still connects (verified %v), e.g. by resuming a session", verified)
		}
		if verified, err := dial(&own); err != nil || !verified {
			t.Fatalf("internal CA certificate after Remove: verified %v, err %v", verified, err)
		}
	})
}

// TestTrustStorePinsASelfSignedLeaf: a trusted certificate need not be a
// CA; a device's self-signed certificate is trusted as itself.
func TestTrustStorePinsASelfSignedLeaf(t *testing.T) {
	t.Parallel()
	s := storetest.OpenBolt(t)
	key := newKey(t, "p256")
	leaf := selfSigned(t, "device-3", key, false)
	ts := newTrust(t, s, newTestCA(t))
	if trusts(ts.Pool(), leaf) {
		t.Fatal("an unknown self-signed certificate is trusted")
	}
	if _, err := ts.Add(t.Context(), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})); err != nil {
		t.Fatalf("Add: %v", err)
	}
	if !trusts(ts.Pool(), leaf) {
		t.Error("an added self-signed leaf is not trusted")
	}
	// It pins only itself: another certificate with the same name and a
	// different key is not trusted.
	if trusts(ts.Pool(), selfSigned(t, "device-3", newKey(t, "p256"), false)) {
		t.Error("a different self-signed certificate with the pinned name is trusted")
	}
}

// TestTrustStoreFollowsOtherNodes: a CA added or removed on one node, or a
// restore of the whole model, changes what another node sharing the store
// trusts, without anything being restarted.
func TestTrustStoreFollowsOtherNodes(t *testing.T) {
	t.Parallel()
	trustBackends(t, func(t *testing.T, s store.Store, node func() store.Store) {
		ctx := t.Context()
		internal, external := newTestCA(t), newTestCA(t)
		a := newTrust(t, s, internal)
		b := newTrust(t, node(), internal)
		leaf, _ := clientOf(t, external, "device-1")
		before, err := s.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}

		if _, err := a.Add(ctx, external.CertPEM()); err != nil {
			t.Fatalf("Add on node A: %v", err)
		}
		poll.Until(t, 10*time.Second, "node B trusts the CA added on node A", func() bool { return trusts(b.Pool(), leaf) })

		if err := b.Remove(ctx, external.Fingerprint()); err != nil {
			t.Fatalf("Remove on node B: %v", err)
		}
		poll.Until(t, 10*time.Second, "node A stops trusting the CA removed on node B", func() bool { return !trusts(a.Pool(), leaf) })

		if _, err := b.Add(ctx, external.CertPEM()); err != nil {
			t.Fatalf("Add on node B: %v", err)
		}
		poll.Until(t, 10*time.Second, "node A trusts the CA added again on node B", func() bool { return trusts(a.Pool(), leaf) })
		// A restore replaces the model without per-key events: both nodes
		// reload on the reset.
		if err := s.Restore(ctx, before); err != nil {
			t.Fatalf("Restore: %v", err)
		}
		poll.Until(t, 10*time.Second, "after a restore without the CA, neither node trusts it", func() bool {
			return !trusts(a.Pool(), leaf) && !trusts(b.Pool(), leaf)
		})
	})
}

func TestNewTrustStoreNeedsACA(t *testing.T) {
	t.Parallel()
	s := storetest.OpenBolt(t)
	if _, err := NewTrustStore(t.Context(), s, TrustOptions{}); err == nil {
		t.Error("NewTrustStore without a CA succeeded")
	}
}

// TestTrustStoreKeepsTrustingWhileRedisIsDown: when the store cannot be
// reached, changes fail with store.ErrUnavailable (the API's 503) and the
// node keeps the pool it has, so devices keep connecting.
func TestTrustStoreKeepsTrustingWhileRedisIsDown(t *testing.T) {
	t.Parallel()
	r := storetest.StartRedis(t)
	s := storetest.OpenRedis(t, storetest.URL(r.URL))
	internal, external := newTestCA(t), newTestCA(t)
	ts := newTrust(t, s, internal)
	if _, err := ts.Add(t.Context(), external.CertPEM()); err != nil {
		t.Fatalf("Add: %v", err)
	}
	leaf, _ := clientOf(t, external, "device-1")

	r.Stop()
	// Concurrently, each with its own deadline: a call against a dead
	// Redis costs the client's dial retries (about 2 s), and writes queue
	// behind each other (and behind a reload) on the node's write lock.
	// Remove reads the inventory the way Add does, under the same lock.
	calls := map[string]func(ctx context.Context) error{
		"Add":  func(ctx context.Context) error { _, err := ts.Add(ctx, newTestCA(t).CertPEM()); return err },
		"List": func(ctx context.Context) error { _, err := ts.List(ctx); return err },
	}
	var wg sync.WaitGroup
	for name, call := range calls {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
			defer cancel()
			if err := call(ctx); !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("%s with Redis down: error %v, want store.ErrUnavailable", name, err)
			}
			if ctx.Err() != nil {
				t.Errorf("%s with Redis down took the caller's whole deadline", name)
			}
		})
	}
	wg.Wait()
	if !trusts(ts.Pool(), leaf) {
		t.Error("the pool lost the added CA while Redis is down")
	}
}
