package pki

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warden-mqtt/warden/store"
)

// SettingTrusted is the store setting that holds the certificates added
// through the admin API, as one PEM bundle in the order they were added.
// One setting (not one key per certificate) keeps a change a single
// atomic write that every node sees as one event.
const SettingTrusted = "pki/trusted"

// minTrustedRSABits is the smallest RSA key accepted for a trusted
// certificate: whoever can factor a trusted key can mint a certificate
// for any user, so a key too weak for a client is too weak for a CA.
const minTrustedRSABits = 2048

// Reload retry bounds: when the store cannot be read after a change
// (Redis down), the pool is retried with backoff rather than left stale
// until the next, possibly distant, change.
const (
	minReloadRetry = 500 * time.Millisecond
	maxReloadRetry = 30 * time.Second
)

// ErrNotRemovable is returned by TrustStore.Remove for a certificate that
// configuration trusts (the internal CA, a --client-ca certificate): the
// API cannot take away what the operator configured.
var ErrNotRemovable = errors.New("the internal CA and --client-ca certificates cannot be removed")

// Origin says why a certificate is trusted.
type Origin int

// Origins of trusted certificates.
const (
	// OriginInternalCA is warden's own CA (LoadOrCreateCA).
	OriginInternalCA Origin = iota + 1
	// OriginConfig is a certificate of the --client-ca bundle, fixed for
	// the life of the process.
	OriginConfig
	// OriginAdded is a certificate added through the admin API and kept
	// in the store; only these are removable.
	OriginAdded
)

// TrustedCert is one trusted certificate and why it is trusted.
type TrustedCert struct {
	Cert   *x509.Certificate
	Origin Origin
}

// ID is the certificate's identifier in the API: its SHA-256 fingerprint.
func (c TrustedCert) ID() string { return Fingerprint(c.Cert.Raw) }

// Removable reports whether the API may remove the certificate.
func (c TrustedCert) Removable() bool { return c.Origin == OriginAdded }

// PEM returns the certificate in PEM form.
func (c TrustedCert) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Cert.Raw})
}

// TrustOptions configure a TrustStore.
type TrustOptions struct {
	// CA is the internal CA; required.
	CA *CA
	// Config are certificates the operator configured (--client-ca): always
	// trusted, never removable.
	Config []*x509.Certificate
	// Logger receives reload failures; nil means slog.Default().
	Logger *slog.Logger
}

// TrustStore is the set of certificates client certificates are verified
// against: the internal CA, the configured ones, and those added through
// the admin API. The current pool sits behind an atomic pointer, so a TLS
// handshake reads it without a lock; it is rebuilt whenever the stored
// inventory changes on any node sharing the store, which is how a CA added
// or removed over HTTP takes effect on every listener without a restart.
type TrustStore struct {
	st    store.Store
	ca    *CA
	fixed []TrustedCert // the internal CA, then the configured certificates
	log   *slog.Logger

	// mu serializes this node's read-modify-write of SettingTrusted and
	// every reload, so a reload that read an older value can never swap
	// it in after one that read a newer value.
	mu  sync.Mutex
	cur atomic.Pointer[trustState]
}

// trustState is one immutable version of the trust pool.
type trustState struct {
	raw   []byte              // the SettingTrusted value it was built from
	added []*x509.Certificate // the stored certificates, in stored order
	pool  *x509.CertPool      // fixed + added
}

// NewTrustStore loads the stored certificates and follows the store's
// change feed until ctx is done or the store closes, reloading the pool on
// every change of SettingTrusted and on a reset (restore, missed events).
// The feed is subscribed to before the first load, so no change between
// the two is missed.
func NewTrustStore(ctx context.Context, s store.Store, o TrustOptions) (*TrustStore, error) {
	if s == nil || o.CA == nil {
		return nil, errors.New("pki: TrustOptions.CA and a store are required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	ts := &TrustStore{st: s, ca: o.CA, log: o.Logger}
	seen := map[string]bool{}
	add := func(c *x509.Certificate, origin Origin) {
		if id := Fingerprint(c.Raw); !seen[id] {
			seen[id] = true
			ts.fixed = append(ts.fixed, TrustedCert{Cert: c, Origin: origin})
		}
	}
	add(o.CA.Certificate(), OriginInternalCA)
	for _, c := range o.Config {
		add(c, OriginConfig)
	}

	// The subscription is cancelled if the first load fails, so a failed
	// NewTrustStore leaves nothing running.
	wctx, cancel := context.WithCancel(ctx)
	events, err := s.Watch(wctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("pki: follow trusted certificates: %w", err)
	}
	ts.mu.Lock()
	_, err = ts.reloadLocked(ctx)
	ts.mu.Unlock()
	if err != nil {
		cancel()
		return nil, err
	}
	go func() {
		defer cancel()
		ts.follow(wctx, events)
	}()
	return ts, nil
}

// follow reloads the pool on relevant events until the feed ends. A failed
// reload is retried with backoff; a newer event also retries at once.
func (ts *TrustStore) follow(ctx context.Context, events <-chan store.Event) {
	store.Follow(ctx, events,
		func(e store.Event) bool { return e.Kind == store.KindSetting && e.ID == SettingTrusted },
		func(ctx context.Context) error {
			ts.mu.Lock()
			changed, err := ts.reloadLocked(ctx)
			n := len(ts.cur.Load().added)
			ts.mu.Unlock()
			if err == nil && changed {
				// Operators check this line on each node after a change.
				ts.log.Info("trusted certificates reloaded", "added_certificates", n)
			}
			return err
		},
		minReloadRetry, maxReloadRetry,
		func(err error, retryIn time.Duration) {
			// Keep serving the last good pool: dropping every trusted CA
			// because Redis blinked would lock out the whole fleet.
			ts.log.Warn("trusted certificates not reloaded; keeping the previous set", "err", err, "retry_in", retryIn)
		})
}

// reloadLocked reads SettingTrusted and swaps in a new pool if it changed
// (the node's own writes have swapped already). ts.mu must be held.
func (ts *TrustStore) reloadLocked(ctx context.Context) (changed bool, err error) {
	raw, added, err := ts.readAdded(ctx)
	if err != nil {
		return false, err
	}
	if old := ts.cur.Load(); old != nil && bytes.Equal(old.raw, raw) {
		return false, nil
	}
	ts.swapLocked(raw, added)
	return true, nil
}

// swapLocked publishes a new pool built from the fixed certificates and
// added. ts.mu must be held.
func (ts *TrustStore) swapLocked(raw []byte, added []*x509.Certificate) {
	pool := x509.NewCertPool()
	for _, c := range ts.fixed {
		pool.AddCert(c.Cert)
	}
	for _, c := range added {
		pool.AddCert(c)
	}
	ts.cur.Store(&trustState{raw: raw, added: added, pool: pool})
}

// readAdded returns the stored bundle and its certificates; a missing
// setting is an empty inventory.
func (ts *TrustStore) readAdded(ctx context.Context) ([]byte, []*x509.Certificate, error) {
	raw, err := ts.st.Setting(ctx, SettingTrusted)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("pki: read trusted certificates: %w", err)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return raw, nil, nil
	}
	certs, err := ParseCertificatesPEM(raw)
	if err != nil {
		// Not a *CertificateError to callers: the stored value is ours,
		// so a bad one is an internal fault, never the client's input.
		return nil, nil, fmt.Errorf("pki: stored setting %q: %s", SettingTrusted, err)
	}
	return raw, certs, nil
}

// CA returns the internal CA.
func (ts *TrustStore) CA() *CA { return ts.ca }

// Pool returns the pool of trusted certificates as of now. It must not be
// modified: it is shared by every handshake until the next change.
func (ts *TrustStore) Pool() *x509.CertPool { return ts.cur.Load().pool }

// ServerConfig returns a copy of base that verifies client certificates
// against the pool current at each handshake (through GetConfigForClient),
// not against a pool fixed when the listener started. Everything else,
// ClientAuth included, is taken from base as it is now; base's own
// GetConfigForClient is replaced.
func (ts *TrustStore) ServerConfig(base *tls.Config) *tls.Config {
	tmpl := base.Clone()
	tmpl.GetConfigForClient = nil
	cfg := tmpl.Clone()
	// Also set the field, for code that inspects the config rather than
	// handshaking with it.
	cfg.ClientCAs = ts.Pool()
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		// A fresh clone per handshake: crypto/tls forbids changing a
		// config once it is in use. Session tickets stay valid across
		// clones (crypto/tls uses the original config's ticket keys), and
		// a resumed session is checked against this pool again, so one
		// verified by a since-removed CA is not resumed.
		c := tmpl.Clone()
		c.ClientCAs = ts.Pool()
		return c, nil
	}
	return cfg
}

// List returns every trusted certificate: the internal CA, the configured
// ones, then those added through the API in the order they were added. It
// reads the store, so it includes changes this node has not yet reloaded.
func (ts *TrustStore) List(ctx context.Context) ([]TrustedCert, error) {
	_, added, err := ts.readAdded(ctx)
	if err != nil {
		return nil, err
	}
	out := append([]TrustedCert(nil), ts.fixed...)
	for _, c := range added {
		if ts.fixedCert(Fingerprint(c.Raw)) == nil {
			out = append(out, TrustedCert{Cert: c, Origin: OriginAdded})
		}
	}
	return out, nil
}

// Get returns the trusted certificate with the SHA-256 fingerprint id; an
// error matching store.ErrNotFound if there is none.
func (ts *TrustStore) Get(ctx context.Context, id string) (TrustedCert, error) {
	list, err := ts.List(ctx)
	if err != nil {
		return TrustedCert{}, err
	}
	for _, c := range list {
		if c.ID() == id {
			return c, nil
		}
	}
	return TrustedCert{}, fmt.Errorf("trusted certificate %q: %w", id, store.ErrNotFound)
}

// Add trusts every certificate of a PEM bundle and returns them, each as it
// is now trusted. A certificate already trusted (stored, configured or the
// internal CA) is not stored again and is no error, so an upload can be
// repeated safely. Unusable input is refused as a whole with a
// *CertificateError: a block that is not a certificate, or a certificate
// with an RSA key below 2048 bits. The pool of this node is updated before
// Add returns; other nodes follow through the change feed.
//
// Any X.509 certificate is accepted, CA or not: a CA certificate makes the
// certificates it signs trusted; a leaf certificate is trusted as itself
// (crypto/tls accepts a client certificate that is in ClientCAs), which
// pins a self-signed device certificate.
func (ts *TrustStore) Add(ctx context.Context, pemData []byte) ([]TrustedCert, error) {
	certs, err := ParseCertificatesPEM(pemData)
	if err != nil {
		return nil, err
	}
	for i, c := range certs {
		if k, ok := c.PublicKey.(*rsa.PublicKey); ok && k.N.BitLen() < minTrustedRSABits {
			return nil, certErrorf("certificate %d (%q) has an RSA key of %d bits; at least %d required",
				i+1, c.Subject.CommonName, k.N.BitLen(), minTrustedRSABits)
		}
	}

	ts.mu.Lock()
	defer ts.mu.Unlock()
	_, added, err := ts.readAdded(ctx)
	if err != nil {
		return nil, err
	}
	stored := map[string]bool{}
	for _, c := range added {
		stored[Fingerprint(c.Raw)] = true
	}
	var out []TrustedCert
	inInput := map[string]bool{}
	next := added
	for _, c := range certs {
		id := Fingerprint(c.Raw)
		if inInput[id] {
			continue
		}
		inInput[id] = true
		if f := ts.fixedCert(id); f != nil {
			out = append(out, *f)
			continue
		}
		out = append(out, TrustedCert{Cert: c, Origin: OriginAdded})
		if !stored[id] {
			stored[id] = true
			next = append(next, c)
		}
	}
	if len(next) == len(added) {
		return out, nil
	}
	if err := ts.writeLocked(ctx, next); err != nil {
		return nil, err
	}
	return out, nil
}

// Remove stops trusting the added certificate with the SHA-256 fingerprint
// id. It returns an error matching store.ErrNotFound for an unknown id and
// ErrNotRemovable for the internal CA or a configured certificate.
// Connections already verified by the certificate stay open; new
// handshakes on this node are refused at once, on other nodes once they
// see the change.
func (ts *TrustStore) Remove(ctx context.Context, id string) error {
	if ts.fixedCert(id) != nil {
		return fmt.Errorf("trusted certificate %q: %w", id, ErrNotRemovable)
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	_, added, err := ts.readAdded(ctx)
	if err != nil {
		return err
	}
	next := make([]*x509.Certificate, 0, len(added))
	for _, c := range added {
		if Fingerprint(c.Raw) != id {
			next = append(next, c)
		}
	}
	if len(next) == len(added) {
		return fmt.Errorf("trusted certificate %q: %w", id, store.ErrNotFound)
	}
	return ts.writeLocked(ctx, next)
}

// writeLocked stores certs as the new inventory and swaps this node's
// pool at once, so the admin who added a CA can connect with it as soon
// as the request returns. ts.mu must be held.
//
// The store offers no compare-and-swap on settings, so two nodes changing
// the inventory in the same instant can lose one of the changes; writes
// through one node are serialized by ts.mu.
func (ts *TrustStore) writeLocked(ctx context.Context, certs []*x509.Certificate) error {
	var buf bytes.Buffer
	for _, c := range certs {
		if err := pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}); err != nil {
			return fmt.Errorf("pki: encode trusted certificate: %w", err)
		}
	}
	raw := buf.Bytes()
	if err := ts.st.PutSetting(ctx, SettingTrusted, raw); err != nil {
		return fmt.Errorf("pki: store trusted certificates: %w", err)
	}
	ts.swapLocked(raw, certs)
	return nil
}

// fixedCert returns the internal CA or configured certificate with the
// fingerprint id, or nil.
func (ts *TrustStore) fixedCert(id string) *TrustedCert {
	for i := range ts.fixed {
		if ts.fixed[i].ID() == id {
			return &ts.fixed[i]
		}
	}
	return nil
}
