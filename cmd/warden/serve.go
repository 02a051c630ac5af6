package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/warden-mqtt/warden/admin"
	"github.com/warden-mqtt/warden/audit"
	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/broker"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/pki"
	"github.com/warden-mqtt/warden/registry"
	"github.com/warden-mqtt/warden/store"
)

// tokenIssuer is the JWT "iss" of every token warden issues; all nodes
// must agree on it.
const tokenIssuer = "warden"

// serverCertLifetime: the internal CA re-issues the server certificate at
// every start, so a year is plenty.
const serverCertLifetime = 365 * 24 * time.Hour

// caCertFile is where the internal CA's certificate is written in
// --data-dir, for devices to trust.
const caCertFile = "ca.pem"

// startBroker wires the auth hook and the embedded broker and starts
// serving MQTT.
func startBroker(ctx context.Context, cfg Config, s store.Store, tokens *credential.Tokens, reg *registry.Registry, trust *pki.TrustStore, log *slog.Logger, brokerLog *slog.Logger, auditLog *audit.Logger, metrics *authhook.Metrics, guard *loginGuard) (*broker.Broker, error) {
	var err error
	var tlsCfg *tls.Config
	if cfg.MQTTSAddr != "" || cfg.WSTLS {
		tlsCfg, err = serverTLS(cfg, trust, log)
		if err != nil {
			return nil, err
		}
	}
	if cfg.InsecureNoAuth {
		return startInsecureBroker(cfg, tlsCfg, log, brokerLog)
	}
	hook, err := authhook.New(ctx, authhook.Options{
		Store:            s,
		Tokens:           tokens,
		Logger:           log,
		Audit:            auditLog,
		Metrics:          metrics,
		Lockout:          guard.lockout,
		Verifier:         guard.verifier,
		MFA:              cfg.MFA,
		MFAAllowPassword: cfg.MFAMQTTPassword,
		Registry:         reg,
	})
	if err != nil {
		return nil, err
	}
	b, err := broker.New(brokerConfig(cfg, tlsCfg, brokerLog), hook)
	if err != nil {
		_ = hook.Stop()
		return nil, err
	}
	hook.Attach(b.Server())
	if err := b.Start(); err != nil {
		_ = b.Close()
		return nil, err
	}
	for _, l := range []struct{ id, name string }{{broker.ListenerTCP, "mqtt"}, {broker.ListenerTLS, "mqtts"}, {broker.ListenerWS, "ws"}} {
		if a := b.Addr(l.id); a != "" {
			log.Info("listening", "listener", l.name, "addr", a)
		}
	}
	return b, nil
}

// startHTTP serves the admin API on --http-addr (nil, nil when off).
func startHTTP(cfg Config, s store.Store, tokens *credential.Tokens, reg *registry.Registry, trust *pki.TrustStore, log *slog.Logger, auditLog *audit.Logger, tel *telemetry, guard *loginGuard) (*http.Server, error) {
	if cfg.HTTPAddr == "" {
		return nil, nil
	}
	api, err := admin.New(admin.Options{Store: s, Tokens: tokens, Registry: reg, Trust: trust, Logger: log, Audit: auditLog, MFAEnabled: cfg.MFA, TrustedDeviceDays: cfg.MFATrustedDeviceDays,
		Metrics: tel.registry, Ready: tel.ready, Lockout: guard.lockout, Verifier: guard.verifier})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("--http-addr: %w", err)
	}
	srv := &http.Server{
		Handler:           api.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin HTTP server stopped", "err", err)
		}
	}()
	log.Info("listening", "listener", "http", "addr", ln.Addr().String())
	return srv, nil
}

// startTrust loads the internal CA and the --client-ca bundle and starts
// the live set of trusted client certificates, shared by the TLS listeners
// and the admin API (/api/certificates). It follows the store until ctx is
// done, so a CA added or removed on any node takes effect here without a
// restart.
func startTrust(ctx context.Context, cfg Config, s store.Store, log *slog.Logger) (*pki.TrustStore, error) {
	ca, err := pki.LoadOrCreateCA(ctx, s, pki.DefaultCAName)
	if err != nil {
		return nil, err
	}
	var configured []*x509.Certificate
	if cfg.ClientCA != "" {
		pem, err := os.ReadFile(cfg.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("--client-ca: %w", err)
		}
		configured, err = pki.ParseCertificatesPEM(pem)
		if err != nil {
			return nil, fmt.Errorf("--client-ca %s: %w", cfg.ClientCA, err)
		}
	}
	return pki.NewTrustStore(ctx, s, pki.TrustOptions{CA: ca, Config: configured, Logger: log})
}

// serverTLS builds the MQTT listeners' TLS configuration: the operator's
// certificate or one from the internal CA, and client certificates
// verified (when sent) against the trusted certificates current at each
// handshake: the internal CA, --client-ca and those added over HTTP.
func serverTLS(cfg Config, trust *pki.TrustStore, log *slog.Logger) (*tls.Config, error) {
	ca := trust.CA()
	// Devices need the CA certificate (public) to trust the server's
	// certificate; put it where an operator finds it.
	if cfg.DataDir != "" {
		path := filepath.Join(cfg.DataDir, caCertFile)
		if err := os.MkdirAll(cfg.DataDir, 0o700); err == nil {
			if err := os.WriteFile(path, ca.CertPEM(), 0o644); err != nil {
				log.Warn("cannot write the internal CA certificate", "path", path, "err", err)
			} else {
				log.Info("internal CA certificate written", "path", path, "fingerprint", ca.Fingerprint())
			}
		}
	}
	var cert tls.Certificate
	var err error
	if cfg.TLSCert != "" {
		cert, err = tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
	} else {
		var hosts []string
		for _, h := range strings.Split(cfg.TLSHosts, ",") {
			if h = strings.TrimSpace(h); h != "" {
				hosts = append(hosts, h)
			}
		}
		cert, err = ca.IssueServer(hosts, serverCertLifetime)
		if err != nil {
			return nil, err
		}
	}
	return trust.ServerConfig(&tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		// Certificates are optional: password devices share the listener.
		// A certificate that is sent must verify, else the handshake fails.
		ClientAuth: tls.VerifyClientCertIfGiven,
	}), nil
}

// redactPackets drops the "packet" attribute Mochi attaches to some log
// records: it holds whole publishes, payloads and CONNECT passwords
// included, and secrets never go to logs.
func redactPackets(_ []string, a slog.Attr) slog.Attr {
	if a.Key == "packet" {
		return slog.String("packet", "[redacted]")
	}
	return a
}

// brokerConfig is the broker's part of the configuration, shared by the
// normal and the benchmark-only (--insecure-no-auth) start.
func brokerConfig(cfg Config, tlsCfg *tls.Config, brokerLog *slog.Logger) broker.Config {
	return broker.Config{
		TCPAddr:        cfg.MQTTAddr,
		TLSAddr:        cfg.MQTTSAddr,
		WSAddr:         cfg.WSAddr,
		WSTLS:          cfg.WSTLS,
		TLS:            tlsCfg,
		ConnectTimeout: cfg.ConnectTimeout,
		Logger:         brokerLog,

		MaxPendingWrites: cfg.MQTTMaxPendingWrites,
	}
}
