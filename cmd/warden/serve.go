package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nats-io/nats.go"
	"github.com/warden-mqtt/warden/admin"
	"github.com/warden-mqtt/warden/audit"
	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/broker"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/directory"
	"github.com/warden-mqtt/warden/natscallout"
	"github.com/warden-mqtt/warden/pki"
	"github.com/warden-mqtt/warden/registry"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/webhook"
	"github.com/warden-mqtt/warden/webui"
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
// serving MQTT on the bound sockets; with --nats-url the same hook also
// answers that NATS cluster's auth callouts (callout, nil when off). The
// hook is returned for the broker webhooks (nil with --insecure-no-auth).
func startBroker(ctx context.Context, cfg Config, socks *sockets, s store.Store, tokens *credential.Tokens, reg *registry.Registry, trust *pki.TrustStore, log *slog.Logger, brokerLog *slog.Logger, auditLog *audit.Logger, metrics *authhook.Metrics, guard *loginGuard) (b *broker.Broker, callout *natscallout.Service, hook *authhook.Hook, err error) {
	var tlsCfg *tls.Config
	if cfg.MQTTSAddr != "" || cfg.WSTLS {
		tlsCfg, err = serverTLS(cfg, trust, log)
		if err != nil {
			return nil, nil, nil, err
		}
	}
	if cfg.InsecureNoAuth {
		if cfg.NATSURL != "" {
			return nil, nil, nil, errors.New("--nats-url: warden answers NATS auth callouts with its rules, which --insecure-no-auth switches off")
		}
		if cfg.webhooksConfigured() {
			return nil, nil, nil, errors.New("--webhook-client-ca, --vernemq-api-url, --emqx-api-url: warden answers broker webhooks with its rules, which --insecure-no-auth switches off")
		}
		b, err = startInsecureBroker(cfg, socks, tlsCfg, log, brokerLog)
		return b, nil, nil, err
	}
	hookOpts := authhook.Options{
		Store:              s,
		Tokens:             tokens,
		Logger:             log,
		Audit:              auditLog,
		Metrics:            metrics,
		Lockout:            guard.lockout,
		Verifier:           guard.verifier,
		Rehasher:           guard.rehasher,
		MFA:                cfg.MFA,
		MFAAllowPassword:   cfg.MFAMQTTPassword,
		Registry:           reg,
		MaxOfflineSessions: cfg.MQTTMaxOfflineSessions,
		NodeID:             nodeID(cfg.NodeID),
	}
	if guard.directory != nil { // a nil *Service in the interface would not be nil
		hookOpts.Directory = guard.directory
		guard.directory.SetAudit(auditLog)
	}
	hook, err = authhook.New(ctx, hookOpts)
	if err != nil {
		return nil, nil, nil, err
	}
	log.Info("node", "node_id", hookOpts.NodeID)
	b, err = broker.New(brokerConfig(cfg, socks, tlsCfg, brokerLog), hook)
	if err != nil {
		_ = hook.Stop()
		return nil, nil, nil, err
	}
	hook.Attach(b.Server())
	if err := b.Start(); err != nil {
		_ = b.Close()
		return nil, nil, nil, err
	}
	for _, l := range []struct{ id, name string }{{broker.ListenerTCP, "mqtt"}, {broker.ListenerTLS, "mqtts"}, {broker.ListenerWS, "ws"}} {
		if a := b.Addr(l.id); a != "" {
			log.Info("listening", "listener", l.name, "addr", a)
		}
	}
	if cfg.NATSURL != "" {
		if callout, err = startCallout(ctx, cfg, s, hook, log); err != nil {
			_ = b.Close()
			return nil, nil, nil, err
		}
	}
	return b, callout, hook, nil
}

// nodeID is --node-id, or the host name (cut to what a node ID takes)
// and a random suffix: unique across restarts, so a node never mistakes
// an earlier run's kick requests or client list for its own.
func nodeID(configured string) string {
	if configured != "" {
		return configured
	}
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r < 0x80 && authhook.ValidNodeID(string(r)) == nil {
			return r
		}
		return '-'
	}, host)
	if len(host) > 48 {
		host = host[:48]
	}
	if host == "" {
		host = "warden"
	}
	return host + "-" + strings.ToLower(rand.Text()[:8])
}

// webhooksConfigured reports whether a broker webhook setting is given.
func (c Config) webhooksConfigured() bool {
	return c.WebhookClientCA != "" || c.VerneMQAPIURL != "" || c.EMQXAPIURL != ""
}

// startCallout answers the auth callouts of the NATS cluster at
// --nats-url with hook's decisions, signing with the store's issuer key.
func startCallout(ctx context.Context, cfg Config, s store.Store, hook *authhook.Hook, log *slog.Logger) (*natscallout.Service, error) {
	issuer, err := natscallout.LoadIssuer(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("nats issuer: %w", err)
	}
	svc, err := natscallout.Start(ctx, natscallout.Options{
		URL: cfg.NATSURL,
		// nats-config gives NATS a bcrypt hash of the password, which a busy
		// server takes a while to check: wait longer than nats.go's 2 s.
		Connect: []nats.Option{nats.UserInfo(cfg.NATSUser, cfg.NATSPassword), nats.Name("warden"), nats.Timeout(20 * time.Second)},
		// The system user nats-config prints lists and kicks clients.
		System:      []nats.Option{nats.UserInfo(cfg.NATSUser+natscallout.SystemUserSuffix, cfg.NATSPassword), nats.Timeout(20 * time.Second)},
		Decider:     hook,
		Store:       s,
		Issuer:      issuer,
		Permissions: natscallout.Permissions,
		Account:     natscallout.MQTTAccount,
		Expiry:      cfg.NATSJWTExpiry,
		Logger:      log,
	})
	if err != nil {
		// The URL may hold nothing secret (Validate refuses credentials in it).
		return nil, fmt.Errorf("nats auth callout at %s: %w", cfg.NATSURL, err)
	}
	log.Info("answering nats auth callouts", "nats", cfg.NATSURL, "user", cfg.NATSUser, "account", natscallout.MQTTAccount)
	return svc, nil
}

// startHTTP serves the admin API on ln, bound to --http-addr (nil, nil
// when off), with the broker webhooks answered by hook's decisions (none
// when hook is nil: --insecure-no-auth). The webhooks' handler follows the
// model until ctx ends or closeHooks.
func startHTTP(ctx context.Context, cfg Config, ln net.Listener, s store.Store, tokens *credential.Tokens, reg *registry.Registry, trust *pki.TrustStore, hook *authhook.Hook, log *slog.Logger, auditLog *audit.Logger, tel *telemetry, guard *loginGuard) (srv *http.Server, closeHooks func(), err error) {
	closeHooks = func() {}
	if ln == nil {
		return nil, closeHooks, nil
	}
	webhookCAs, err := loadWebhookCAs(cfg.WebhookClientCA)
	if err != nil {
		return nil, closeHooks, err
	}
	opts := admin.Options{Store: s, Tokens: tokens, Registry: reg, Trust: trust, Logger: log, Audit: auditLog, MFAEnabled: cfg.MFA, TrustedDeviceDays: cfg.MFATrustedDeviceDays,
		Metrics: tel.registry, Ready: tel.ready, RestoreMaxBytes: int64(cfg.RestoreMaxSize), Lockout: guard.lockout, Verifier: guard.verifier,
		Rehasher: guard.rehasher, WebhookClientCAs: webhookCAs, LDAPEnabled: cfg.LDAPURL != "", LDAPMode: cfg.LDAPMode}
	if guard.directory != nil {
		opts.Directory = guard.directory
	}
	if cfg.WebUI {
		opts.UI = webui.Handler()
	}
	if hook != nil {
		opts.Clients = hook
		hooks, err := webhook.New(ctx, webhook.Options{
			Decider: hook,
			// Certificates the broker forwards chain to warden's trusted
			// certificates as of each call, as on warden's own listeners.
			ClientCAs:   trust.Pool,
			CacheMaxAge: cfg.WebhookCacheMaxAge,
			Logger:      log,
			VerneMQ:     webhook.VerneMQAPI{URL: cfg.VerneMQAPIURL, Key: cfg.VerneMQAPIKey},
			EMQX:        webhook.EMQXAPI{URL: cfg.EMQXAPIURL, Key: cfg.EMQXAPIKey, Secret: cfg.EMQXAPISecret},
		})
		if err != nil {
			return nil, closeHooks, err
		}
		closeHooks = hooks.Close
		opts.BrokerHooks = hooks.Routes()
		opts.Broker = hook
	}
	api, err := admin.New(opts)
	if err != nil {
		closeHooks()
		return nil, func() {}, err
	}
	var tlsCfg *tls.Config
	if cfg.HTTPTLS || cfg.HTTPTLSCert != "" {
		if tlsCfg, err = httpTLS(cfg, trust, webhookCAs, log); err != nil {
			closeHooks()
			return nil, func() {}, err
		}
	}
	srv = &http.Server{
		Handler: api.Handler(),
		// ReadHeaderTimeout also bounds the TLS handshake.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		TLSConfig:         tlsCfg,
	}
	go func() {
		var err error
		if tlsCfg != nil {
			err = srv.ServeTLS(ln, "", "") // certificates are in TLSConfig
		} else {
			err = srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin HTTP server stopped", "err", err)
		}
	}()
	log.Info("listening", "listener", "http", "addr", ln.Addr().String(), "tls", tlsCfg != nil, "webhook_client_ca", webhookCAs != nil)
	return srv, closeHooks, nil
}

// loadWebhookCAs reads --webhook-client-ca (nil when empty).
func loadWebhookCAs(path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, nil
	}
	pemData, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--webhook-client-ca: %w", err)
	}
	certs, err := pki.ParseCertificatesPEM(pemData)
	if err != nil {
		return nil, fmt.Errorf("--webhook-client-ca %s: %w", path, err)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
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

// baseTLS is the TLS configuration every warden listener starts from, MQTT
// (TLS and WSS) and the admin API alike: TLS 1.2 or later, and for TLS 1.2
// only ECDHE key exchange with AEAD ciphers (AES-GCM, ChaCha20-Poly1305).
// Go's defaults still offer the ECDHE CBC-SHA1 suites (Lucky13-style
// padding oracles); TLS 1.3 suites are all AEAD and not configurable.
func baseTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	}
}

// serverCertificate is the MQTT TLS listeners' certificate: the operator's
// (--tls-cert/--tls-key) or a fresh one from the internal CA for
// --tls-hosts. Using the internal CA writes its certificate to --data-dir.
func serverCertificate(cfg Config, trust *pki.TrustStore, log *slog.Logger) (tls.Certificate, error) {
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		return cert, nil
	}
	ca := trust.CA()
	// Devices need the CA certificate (public) to trust the server's
	// certificate; put it where an operator finds it.
	if cfg.DataDir != "" {
		writeCAFile(cfg.DataDir, ca, log) // cafile.go
	}
	return ca.IssueServer(splitList(cfg.TLSHosts), serverCertLifetime)
}

// serverTLS builds the MQTT listeners' TLS configuration: baseTLS, the
// server certificate, and client certificates verified (when sent) against
// the trusted certificates current at each handshake: the internal CA,
// --client-ca and those added over HTTP.
func serverTLS(cfg Config, trust *pki.TrustStore, log *slog.Logger) (*tls.Config, error) {
	cert, err := serverCertificate(cfg, trust, log)
	if err != nil {
		return nil, err
	}
	c := baseTLS()
	c.Certificates = []tls.Certificate{cert}
	// Certificates are optional: password devices share the listener.
	// A certificate that is sent must verify, else the handshake fails.
	c.ClientAuth = tls.VerifyClientCertIfGiven
	return trust.ServerConfig(c), nil
}

// httpTLS builds the admin API's TLS configuration: baseTLS with
// --http-tls-cert/--http-tls-key, or else the MQTT TLS listeners'
// certificate (--tls-cert/--tls-key, or one from the internal CA, whose
// certificate devices and operators already trust from --data-dir). The
// API authenticates with bearer tokens; with webhookCAs
// (--webhook-client-ca) it also asks for a client certificate, which
// brokers calling the webhooks send instead: one from another CA fails
// the handshake, none is fine (tokens).
func httpTLS(cfg Config, trust *pki.TrustStore, webhookCAs *x509.CertPool, log *slog.Logger) (*tls.Config, error) {
	var cert tls.Certificate
	var err error
	if cfg.HTTPTLSCert != "" {
		cert, err = tls.LoadX509KeyPair(cfg.HTTPTLSCert, cfg.HTTPTLSKey)
		if err != nil {
			return nil, fmt.Errorf("--http-tls-cert/--http-tls-key: %w", err)
		}
	} else if cert, err = serverCertificate(cfg, trust, log); err != nil {
		return nil, err
	}
	c := baseTLS()
	c.Certificates = []tls.Certificate{cert}
	if webhookCAs != nil {
		c.ClientAuth = tls.VerifyClientCertIfGiven
		c.ClientCAs = webhookCAs
	}
	return c, nil
}

// redactPackets is the ReplaceAttr of warden's log handlers: it replaces
// any value that may hold a password, a token or a payload with
// "[redacted]", whatever its key. Mochi logs whole packets (CONNECT
// password, PUBLISH payload) under keys such as "packet" and "pk", and wills
// under "will"; matching on keys alone would leak under the next key Mochi
// adds, so values are matched by type as well: every []byte, and every
// value of a Mochi type (packets, clients, wills, properties) except
// errors, whose text is a reason code.
func redactPackets(_ []string, a slog.Attr) slog.Attr {
	switch a.Key {
	case "packet", "pk", "will", "payload", "password", "secret", "token":
		return slog.String(a.Key, "[redacted]")
	}
	if a.Value.Kind() == slog.KindAny && sensitiveValue(a.Value.Any()) {
		return slog.String(a.Key, "[redacted]")
	}
	return a
}

// mochiModule is the import path prefix of Mochi's packages.
const mochiModule = "github.com/mochi-mqtt/server/v2"

// sensitiveValue reports whether v may carry a secret or a payload: a byte
// slice, or a value (or pointer, slice, map of values) of a type defined in
// Mochi that is not an error.
func sensitiveValue(v any) bool {
	switch v.(type) {
	case nil, error, net.IP:
		return false
	case []byte, json.RawMessage:
		return true
	}
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
		if t.Kind() == reflect.Map && strings.HasPrefix(t.Key().PkgPath(), mochiModule) {
			return true
		}
		t = t.Elem()
	}
	return t.Kind() == reflect.Uint8 || strings.HasPrefix(t.PkgPath(), mochiModule)
}

// brokerConfig is the broker's part of the configuration, shared by the
// normal and the benchmark-only (--insecure-no-auth) start. The broker
// serves the sockets run bound (and closes them).
func brokerConfig(cfg Config, socks *sockets, tlsCfg *tls.Config, brokerLog *slog.Logger) broker.Config {
	return broker.Config{
		TCPAddr:        cfg.MQTTAddr,
		TLSAddr:        cfg.MQTTSAddr,
		WSAddr:         cfg.WSAddr,
		TCPListener:    socks.mqtt,
		TLSListener:    socks.mqtts,
		WSListener:     socks.ws,
		WSTLS:          cfg.WSTLS,
		TLS:            tlsCfg,
		ConnectTimeout: cfg.ConnectTimeout,
		Logger:         brokerLog,

		MaxPendingWrites: cfg.MQTTMaxPendingWrites,
		MaxPacketSize:    cfg.MQTTMaxPacketSize,
		MaxConnections:   cfg.MQTTMaxConnections,
		MaxKeepalive:     maxKeepalive(cfg.MQTTMaxKeepalive),
		WSAllowedOrigins: splitList(cfg.WSAllowedOrigins),

		MaxSessionExpiry:  cfg.MQTTMaxSessionExpiry,
		MaxQueuedMessages: cfg.MQTTMaxQueuedMessages,
		MaxTopicLevels:    cfg.MQTTMaxTopicLevels,
		MaxTopicLength:    cfg.MQTTMaxTopicLength,
	}
}

// maxKeepalive maps --mqtt-max-keepalive, where 0 means no ceiling (as
// Mosquitto's max_keepalive 0), to broker.Config.MaxKeepalive, where no
// ceiling is negative.
func maxKeepalive(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// startDirectory builds the LDAP identity provider from the --ldap-*
// flags (nil when --ldap-url is empty) and, with a service account,
// rechecks its users every --ldap-recheck until ctx ends. It logs the
// provider, never the bind password. It does not contact the directory:
// warden starts while the directory is down, and directory logins answer
// "unavailable" until it is back.
func startDirectory(ctx context.Context, cfg Config, s store.Store, log *slog.Logger, reg prometheus.Registerer) (*directory.Service, error) {
	if cfg.LDAPURL == "" {
		return nil, nil
	}
	p, err := directory.New(directory.Config{
		URL: cfg.LDAPURL, StartTLS: cfg.LDAPStartTLS, CAFile: cfg.LDAPCAFile, Insecure: cfg.LDAPInsecure,
		BaseDN: cfg.LDAPBaseDN, Filter: cfg.LDAPFilter, UsernameAttribute: cfg.LDAPUsernameAttribute,
		BindDN: cfg.LDAPBindDN, BindPassword: cfg.LDAPBindPassword, BindDNTemplate: cfg.LDAPBindDNTemplate,
		Mode: directory.Mode(cfg.LDAPMode), GroupBaseDN: cfg.LDAPGroupBaseDN, GroupFilter: cfg.LDAPGroupFilter,
		RoleAttribute: cfg.LDAPRoleAttribute, Timeout: cfg.LDAPTimeout, CacheTTL: cfg.LDAPCacheTTL,
	})
	if err != nil {
		return nil, fmt.Errorf("--ldap-*: %w", err)
	}
	if err := p.Register(reg); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	bind := "service account " + cfg.LDAPBindDN
	if cfg.LDAPBindDN == "" {
		bind = "direct bind " + cfg.LDAPBindDNTemplate
	}
	log.Info("ldap directory", "url", cfg.LDAPURL, "start_tls", cfg.LDAPStartTLS, "insecure", cfg.LDAPInsecure,
		"base_dn", cfg.LDAPBaseDN, "bind", bind, "mode", cfg.LDAPMode, "cache_ttl", cfg.LDAPCacheTTL, "recheck", cfg.LDAPRecheck)
	svc := directory.NewService(p, s, log)
	go svc.Run(ctx, cfg.LDAPRecheck)
	return svc, nil
}
