package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/warden-mqtt/warden/admin"
	"github.com/warden-mqtt/warden/audit"
	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/broker"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/natscallout"
	"github.com/warden-mqtt/warden/store"
)

// Config is every setting of the warden binary (DESIGN.md, "Configuration").
// Each field has a flag and an environment variable; a flag beats the
// variable, the variable beats the default. An empty listener address
// turns that listener off.
type Config struct {
	// MQTTAddr is the MQTT-over-TCP listen address.
	MQTTAddr string
	// MQTTSAddr is the MQTT-over-TLS listen address; empty: off.
	MQTTSAddr string
	// WSAddr is the MQTT-over-WebSocket listen address; empty: off.
	WSAddr string
	// HTTPAddr is the admin HTTP API listen address; empty: off.
	HTTPAddr string
	// WebUI serves the admin web UI at "/" on HTTPAddr (the API stays
	// under /api either way).
	WebUI bool
	// DataDir holds the embedded store file and ca.pem, the internal CA's
	// certificate for devices. The CA's key and the token signing keys
	// live in the store (in Redis with RedisURL), not here.
	DataDir string
	// RedisURL selects the Redis store (redis:// or rediss://); empty
	// selects the embedded store in DataDir.
	RedisURL string
	// NodeID names this node in the cluster's list of connected clients
	// (authhook.Options.NodeID); empty: the host name and a random suffix.
	NodeID string
	// AdminPassword is the initial password of the admin user, used only
	// when the admin is created; empty: a random one is generated and
	// logged once. It is a secret: never print it.
	AdminPassword string
	// TLSCert and TLSKey are the server certificate and key (PEM files);
	// empty: the internal CA issues one.
	TLSCert string
	TLSKey  string
	// ClientCA is a PEM bundle of extra CAs trusted for client
	// certificates, beside the internal CA and /api/certificates.
	ClientCA string
	// TLSHosts are extra names and addresses for the certificate the
	// internal CA issues to the MQTT TLS listeners.
	TLSHosts string
	// WSTLS serves the WebSocket listener as WSS.
	WSTLS bool
	// WSAllowedOrigins (comma-separated scheme://host[:port]) are the
	// browser origins that may open MQTT-over-WebSocket connections;
	// requests without an Origin header (not browsers) always may.
	WSAllowedOrigins string
	// HTTPTLS serves the admin API over HTTPS, with HTTPTLSCert and
	// HTTPTLSKey, or else the MQTT TLS listeners' certificate. Setting
	// HTTPTLSCert turns HTTPS on as well.
	HTTPTLS     bool
	HTTPTLSCert string
	HTTPTLSKey  string
	// ConnectTimeout closes a connection that has not completed its TLS
	// handshake and CONNECT in time.
	ConnectTimeout time.Duration
	// AuthMaxFailuresUser failed password logins (MQTT and HTTP) of a
	// username from one address, AuthMaxFailuresUserTotal from all
	// addresses, or AuthMaxFailuresIP from one address for any username,
	// within AuthFailureWindow, block password logins (only those) of that
	// pair, username or address for AuthBackoff.
	AuthMaxFailuresUser      int
	AuthMaxFailuresUserTotal int
	AuthMaxFailuresIP        int
	AuthFailureWindow        time.Duration
	AuthBackoff              time.Duration
	// AuthVerifyWorkers bounds concurrent argon2id verifications, for
	// MQTT and HTTP together; 0: half the CPU cores.
	AuthVerifyWorkers int
	// MQTTMaxSessionExpiry, MQTTMaxQueuedMessages, MQTTMaxTopicLevels and
	// MQTTMaxTopicLength bound what one client makes the broker keep (see
	// broker.Config); MQTTMaxOfflineSessions caps one user's offline
	// persistent sessions (authhook.Options.MaxOfflineSessions).
	MQTTMaxSessionExpiry   time.Duration
	MQTTMaxOfflineSessions int
	MQTTMaxQueuedMessages  int
	MQTTMaxTopicLevels     int
	MQTTMaxTopicLength     int
	// MQTTMaxPendingWrites bounds the packets queued for one client (see
	// broker.Config.MaxPendingWrites).
	MQTTMaxPendingWrites int
	// MQTTMaxPacketSize is the largest MQTT packet a client may send, in
	// bytes (broker.Config.MaxPacketSize).
	MQTTMaxPacketSize int
	// MQTTMaxConnections caps the MQTT sockets open at once, counted from
	// accept; 0 derives it from the open-file limit
	// (broker.DefaultMaxConnections).
	MQTTMaxConnections int
	// MQTTMaxKeepalive is the keepalive ceiling (broker.Config.MaxKeepalive);
	// 0 turns it off.
	MQTTMaxKeepalive time.Duration
	// RegistryMaxOpen caps how long POST /api/client-registry/open opens
	// the registry.
	RegistryMaxOpen time.Duration
	// RegistryAutoGrantRoles (comma-separated role names), when set,
	// grants every registration on arrival while the registry is open.
	RegistryAutoGrantRoles string
	// ClientCertValidity is the lifetime of client certificates the
	// registry issues from CSRs.
	ClientCertValidity time.Duration
	// MFA switches multi-factor authentication on: enrolled users log in
	// with a TOTP code after their password. Off, the MFA endpoints
	// answer 403 and logins ask for no code; enrollments are kept.
	MFA bool
	// MFATrustedDeviceDays is how long a device trusted at an MFA login
	// skips the MFA step.
	MFATrustedDeviceDays int
	// MFAMQTTPassword lets users with MFA connect over MQTT with their
	// password alone (off: they send a login token or a certificate).
	MFAMQTTPassword bool
	// LogLevel is debug, info, warn or error.
	LogLevel string
	// ShutdownTimeout bounds how long a clean shutdown may take.
	ShutdownTimeout time.Duration
	// AuditLog is where the audit trail (admin changes, authentication
	// failures; JSON lines) goes: "stderr", "stdout", "off" or a file
	// path, appended to.
	AuditLog string
	// RestoreMaxSize bounds the decompressed content of a backup archive
	// a restore accepts (POST /api/maintenance/db/restore and warden
	// restore), in bytes; the HTTP upload is capped accordingly.
	RestoreMaxSize int
	// NATSURL (comma-separated seed URLs of a NATS cluster) makes warden
	// answer that cluster's auth callouts; empty: off.
	NATSURL string
	// NATSUser and NATSPassword are the user warden connects to NATS as,
	// in the callout's auth account, and its password, which is also the
	// password of the system user NATSUser+"-system" that sends the
	// servers' kick requests (warden nats-config configures both).
	// NATSPassword is a secret: never print it.
	NATSUser     string
	NATSPassword string
	// NATSJWTExpiry bounds the user JWTs of clients admitted without a
	// login token (a token's expiry applies otherwise).
	NATSJWTExpiry time.Duration
	// WebhookClientCA is a PEM bundle of the CAs whose client certificates
	// authenticate a broker on the webhooks (/api/broker/...) without a
	// token; it needs the admin API over TLS. Empty: tokens only.
	WebhookClientCA string
	// WebhookCacheMaxAge is the cache lifetime announced on the webhooks'
	// successful answers (cache-control: max-age); 0: none.
	WebhookCacheMaxAge time.Duration
	// VerneMQAPIURL and VerneMQAPIKey are VerneMQ's HTTP API, through which
	// changes disconnect the sessions they end or alter; EMQXAPIURL,
	// EMQXAPIKey and EMQXAPISecret are EMQX's REST API, likewise. Empty
	// URL: off. The key and secrets are secrets: never print them.
	VerneMQAPIURL string
	VerneMQAPIKey string
	EMQXAPIURL    string
	EMQXAPIKey    string
	EMQXAPISecret string
	// LDAPURL is the directory users may log in with (ldap:// or
	// ldaps://, one server); empty: off. The other LDAP settings apply
	// only with it (validateLDAP says how they combine).
	LDAPURL string
	// LDAPStartTLS upgrades an ldap:// connection with StartTLS before
	// anything is sent; LDAPCAFile (PEM) is the CA bundle that verifies
	// the directory's certificate (empty: the system's roots).
	// LDAPInsecure allows plain ldap:// without StartTLS, which sends
	// passwords in the clear: for tests only.
	LDAPStartTLS bool
	LDAPCAFile   string
	LDAPInsecure bool
	// LDAPBaseDN is where user entries are searched; LDAPFilter finds a
	// user's entry, with {username} replaced by the RFC 4515-escaped
	// username; LDAPUsernameAttribute holds the username on the entry.
	LDAPBaseDN            string
	LDAPFilter            string
	LDAPUsernameAttribute string
	// LDAPBindDN and LDAPBindPassword are the service account that
	// searches for users (search-then-bind); LDAPBindDNTemplate instead
	// builds a user's DN from its username ({username}, RFC 4514-escaped)
	// to bind as directly. Exactly one of the two ways is configured.
	// LDAPBindPassword is a secret: never print it.
	LDAPBindDN         string
	LDAPBindPassword   string
	LDAPBindDNTemplate string
	// LDAPMode is how directory users get roles: "GROUP" (the roles linked
	// to their groups, found under LDAPGroupBaseDN, default LDAPBaseDN,
	// with LDAPGroupFilter, {dn} being the user's DN) or "ATTRIBUTE" (the
	// role names listed in the user's LDAPRoleAttribute).
	LDAPMode          string
	LDAPGroupBaseDN   string
	LDAPGroupFilter   string
	LDAPRoleAttribute string
	// LDAPTimeout bounds every directory call; LDAPCacheTTL is how long a
	// successful directory bind is reused for MQTT reconnects;
	// LDAPRecheck is how often directory users with live tokens or
	// sessions are checked to still exist and be enabled.
	LDAPTimeout  time.Duration
	LDAPCacheTTL time.Duration
	LDAPRecheck  time.Duration
	// PprofAddr serves net/http/pprof on its own loopback listener;
	// empty: off. Profiles show memory contents, so only loopback
	// addresses are accepted.
	PprofAddr string
	// MemoryReturnInterval is how often warden checks whether its heap
	// holds much more than it uses after a burst and returns the free part
	// to the OS (memreturn.go); 0: never.
	MemoryReturnInterval time.Duration
	// InsecureNoAuth replaces warden's auth hook with Mochi's allow-all
	// hook: every CONNECT, publish and subscribe is allowed. It exists
	// only to measure what the auth layer costs (scripts/bench-compare.sh);
	// never set it on a broker anyone else can reach.
	InsecureNoAuth bool
}

// option describes one setting: its flag, its environment variable, its
// default and where it lands in Config. The one table drives parsing, the
// environment fallback and the --help text, so they cannot disagree.
type option struct {
	flag, env, def, arg, usage string
	// readme completes the default in README.md's configuration table,
	// in Markdown, after "`def`" (or "empty"): ": off", " per user".
	readme string
	// secret options never have their value echoed in errors or help.
	secret bool
	// bind registers the flag on fs, pointing into c, with def as default.
	bind func(fs *flag.FlagSet, c *Config, o option)
}

func stringOpt(field func(*Config) *string) func(*flag.FlagSet, *Config, option) {
	return func(fs *flag.FlagSet, c *Config, o option) { fs.StringVar(field(c), o.flag, o.def, o.usage) }
}

func durationOpt(field func(*Config) *time.Duration) func(*flag.FlagSet, *Config, option) {
	return func(fs *flag.FlagSet, c *Config, o option) {
		d, err := time.ParseDuration(o.def)
		if err != nil {
			panic("warden: bad default for --" + o.flag + ": " + err.Error())
		}
		*field(c) = d
		fs.Var((*durationValue)(field(c)), o.flag, o.usage)
	}
}

func intOpt(field func(*Config) *int) func(*flag.FlagSet, *Config, option) {
	return func(fs *flag.FlagSet, c *Config, o option) {
		n, err := strconv.Atoi(o.def)
		if err != nil {
			panic("warden: bad default for --" + o.flag + ": " + err.Error())
		}
		*field(c) = n
		fs.Var(intValue{p: field(c), unit: o.arg, example: o.def}, o.flag, o.usage)
	}
}

func boolOpt(field func(*Config) *bool) func(*flag.FlagSet, *Config, option) {
	return func(fs *flag.FlagSet, c *Config, o option) {
		boolVar(fs, field(c), o.flag, o.def == "true", o.usage)
	}
}

// options lists the settings in the order --help shows them.
var options = []option{
	{flag: "mqtt-addr", env: "WARDEN_MQTT_ADDR", def: ":1883", arg: "addr",
		usage: "MQTT over TCP listen address (host:port; port 0 picks a free port; empty: off)",
		bind:  stringOpt(func(c *Config) *string { return &c.MQTTAddr })},
	{flag: "mqtts-addr", env: "WARDEN_MQTTS_ADDR", def: "", arg: "addr", readme: ": off",
		usage: "MQTT over TLS listen address, with --tls-cert/--tls-key or a certificate from the internal CA (empty: off)",
		bind:  stringOpt(func(c *Config) *string { return &c.MQTTSAddr })},
	{flag: "ws-addr", env: "WARDEN_WS_ADDR", def: "", arg: "addr", readme: ": off",
		usage: "MQTT over WebSocket listen address (empty: off)",
		bind:  stringOpt(func(c *Config) *string { return &c.WSAddr })},
	{flag: "http-addr", env: "WARDEN_HTTP_ADDR", def: ":8080", arg: "addr",
		usage: "admin HTTP API listen address (empty: off)",
		bind:  stringOpt(func(c *Config) *string { return &c.HTTPAddr })},
	{flag: "web-ui", env: "WARDEN_WEB_UI", def: "true", arg: "bool", readme: ": the admin web UI at `/` on `--http-addr`",
		usage: "serve the admin web UI at / on the admin listener (false: only the API, the probes and /metrics)",
		bind:  boolOpt(func(c *Config) *bool { return &c.WebUI })},
	{flag: "data-dir", env: "WARDEN_DATA_DIR", def: "./data", arg: "dir",
		usage: "directory of the embedded store file (warden.db) and of ca.pem, the internal CA's certificate for devices, written when a TLS listener uses the internal CA; the CA's key and the token signing keys are kept in the store (in Redis with --redis-url)",
		bind:  stringOpt(func(c *Config) *string { return &c.DataDir })},
	{flag: "redis-url", env: "WARDEN_REDIS_URL", def: "", arg: "url", readme: ": embedded store in `--data-dir`",
		usage: "Redis store shared by several nodes, redis://[user:pass@]host:port/db or rediss://... (empty: embedded store in --data-dir)",
		bind:  stringOpt(func(c *Config) *string { return &c.RedisURL })},
	{flag: "node-id", env: "WARDEN_NODE_ID", def: "", arg: "id", readme: ": the host name and a random suffix, new at every start",
		usage: "this node's name in the list of connected clients (GET /api/clients?scope=cluster) and in the store key of its part of it: 1 to 64 ASCII letters, digits, '.', '_' or '-' (empty: the host name and a random suffix, new at every start)",
		bind:  stringOpt(func(c *Config) *string { return &c.NodeID })},
	{flag: "admin-password", env: "WARDEN_ADMIN_PASSWORD", def: "", arg: "password", secret: true, readme: ": generated on first start and logged once",
		usage: "password of the admin user, used only when the admin is first created (empty: a random one is generated and logged once)",
		bind:  stringOpt(func(c *Config) *string { return &c.AdminPassword })},
	{flag: "tls-cert", env: "WARDEN_TLS_CERT", def: "", arg: "file", readme: ": issued by the internal CA",
		usage: "server certificate of the MQTT TLS listeners (and of the admin API with --http-tls, unless --http-tls-cert is set), PEM; needs --tls-key (empty: the internal CA issues one)",
		bind:  stringOpt(func(c *Config) *string { return &c.TLSCert })},
	{flag: "tls-key", env: "WARDEN_TLS_KEY", def: "", arg: "file", readme: " (the key of `--tls-cert`)",
		usage: "private key of --tls-cert, PEM",
		bind:  stringOpt(func(c *Config) *string { return &c.TLSKey })},
	{flag: "client-ca", env: "WARDEN_CLIENT_CA", def: "", arg: "file", readme: ": the internal CA and `/api/certificates` only",
		usage: "extra CA bundle trusted for client certificates, PEM (always trusted: the internal CA and certificates added via /api/certificates)",
		bind:  stringOpt(func(c *Config) *string { return &c.ClientCA })},
	{flag: "tls-hosts", env: "WARDEN_TLS_HOSTS", def: "", arg: "names", readme: ": only localhost, 127.0.0.1, ::1 and the host name in the internal CA's server certificate",
		usage: "comma-separated extra DNS names and IPs for the server certificate the internal CA issues (always: localhost, 127.0.0.1, ::1, the host name)",
		bind:  stringOpt(func(c *Config) *string { return &c.TLSHosts })},
	{flag: "ws-tls", env: "WARDEN_WS_TLS", def: "false", arg: "bool",
		usage: "serve --ws-addr as WebSocket over TLS (wss), with the same certificates as --mqtts-addr",
		bind:  boolOpt(func(c *Config) *bool { return &c.WSTLS })},
	{flag: "ws-allowed-origins", env: "WARDEN_WS_ALLOWED_ORIGINS", def: "", arg: "origins", readme: ": no browser origin (clients without `Origin` pass)",
		usage: "comma-separated browser origins (scheme://host[:port], e.g. https://ui.example.com) allowed to open MQTT over WebSocket; other Origin headers get 403, clients sending no Origin (devices, not browsers) pass (empty: no browser page may connect)",
		bind:  stringOpt(func(c *Config) *string { return &c.WSAllowedOrigins })},
	{flag: "http-tls", env: "WARDEN_HTTP_TLS", def: "false", arg: "bool", readme: ": admin API over plain HTTP; `true`: HTTPS with the MQTT TLS certificate",
		usage: "serve the admin API over HTTPS (TLS 1.2+), with --http-tls-cert/--http-tls-key or else the MQTT TLS certificate (--tls-cert/--tls-key or one from the internal CA)",
		bind:  boolOpt(func(c *Config) *bool { return &c.HTTPTLS })},
	{flag: "http-tls-cert", env: "WARDEN_HTTP_TLS_CERT", def: "", arg: "file", readme: "; set: admin API over HTTPS with this certificate",
		usage: "admin API server certificate, PEM; needs --http-tls-key and turns HTTPS on",
		bind:  stringOpt(func(c *Config) *string { return &c.HTTPTLSCert })},
	{flag: "http-tls-key", env: "WARDEN_HTTP_TLS_KEY", def: "", arg: "file", readme: " (the key of `--http-tls-cert`)",
		usage: "private key of --http-tls-cert, PEM",
		bind:  stringOpt(func(c *Config) *string { return &c.HTTPTLSKey })},
	{flag: "connect-timeout", env: "WARDEN_CONNECT_TIMEOUT", def: "10s", arg: "duration", readme: " (TLS handshake + CONNECT)",
		usage: "close an MQTT connection that has not finished its TLS handshake and CONNECT within this time",
		bind:  durationOpt(func(c *Config) *time.Duration { return &c.ConnectTimeout })},
	{flag: "auth-max-failures-user", env: "WARDEN_AUTH_MAX_FAILURES_USER", def: "10", arg: "count", readme: " failed passwords, MQTT and HTTP, of a username from one address (over MQTT every refused CONNECT without a client certificate counts)",
		usage: "failed password logins (MQTT and HTTP; over MQTT every refused CONNECT without a client certificate) of one username from one IP address (IPv6: one /64) within --auth-failure-window that block that username's password logins from that address for --auth-backoff; certificates and login tokens still work (negative: no limit)",
		bind:  intOpt(func(c *Config) *int { return &c.AuthMaxFailuresUser })},
	{flag: "auth-max-failures-user-total", env: "WARDEN_AUTH_MAX_FAILURES_USER_TOTAL", def: "100", arg: "count", readme: " of a username from all addresses",
		usage: "failed password logins of one username from all addresses together within --auth-failure-window that block its password logins from every address for --auth-backoff; keep it well above --auth-max-failures-user (negative: no limit)",
		bind:  intOpt(func(c *Config) *int { return &c.AuthMaxFailuresUserTotal })},
	{flag: "auth-max-failures-ip", env: "WARDEN_AUTH_MAX_FAILURES_IP", def: "100", arg: "count", readme: " from one address",
		usage: "failed password logins from one IP address (IPv6: one /64), any username, within --auth-failure-window that block password logins from it for --auth-backoff: HTTP 429, MQTT 5 0x9F, MQTT 3.1.1 3 (negative: no limit)",
		bind:  intOpt(func(c *Config) *int { return &c.AuthMaxFailuresIP })},
	{flag: "auth-failure-window", env: "WARDEN_AUTH_FAILURE_WINDOW", def: "5m", arg: "duration",
		usage: "window in which failed password logins are counted",
		bind:  durationOpt(func(c *Config) *time.Duration { return &c.AuthFailureWindow })},
	{flag: "auth-backoff", env: "WARDEN_AUTH_BACKOFF", def: "5m", arg: "duration",
		usage: "how long a blocked username or address is refused without checking its password",
		bind:  durationOpt(func(c *Config) *time.Duration { return &c.AuthBackoff })},
	{flag: "mqtt-max-session-expiry", env: "WARDEN_MQTT_MAX_SESSION_EXPIRY", def: "24h", arg: "duration",
		usage: "longest time a disconnected client's session (subscriptions, queued messages) is kept: a longer MQTT 5 Session Expiry Interval is cut to it, and MQTT 3.1.1 sessions with clean session 0 expire after it (whole seconds)",
		bind:  durationOpt(func(c *Config) *time.Duration { return &c.MQTTMaxSessionExpiry })},
	{flag: "mqtt-max-offline-sessions", env: "WARDEN_MQTT_MAX_OFFLINE_SESSIONS", def: "10", arg: "count", readme: " per user",
		usage: "persistent sessions one user may hold while offline; when one more goes offline, the user's oldest offline session ends (raise it for fleets sharing one user)",
		bind:  intOpt(func(c *Config) *int { return &c.MQTTMaxOfflineSessions })},
	{flag: "mqtt-max-queued-messages", env: "WARDEN_MQTT_MAX_QUEUED_MESSAGES", def: "1000", arg: "count", readme: " per client",
		usage: "QoS 1 and 2 messages held for one client, in flight or queued while it is offline; further messages for it are dropped (at most 65535)",
		bind:  intOpt(func(c *Config) *int { return &c.MQTTMaxQueuedMessages })},
	{flag: "mqtt-max-topic-levels", env: "WARDEN_MQTT_MAX_TOPIC_LEVELS", def: "128", arg: "count",
		usage: "most levels in a topic name or filter (PUBLISH, will, SUBSCRIBE, UNSUBSCRIBE); deeper ones are refused (MQTT 5: reason 0x90 or 0x8F)",
		bind:  intOpt(func(c *Config) *int { return &c.MQTTMaxTopicLevels })},
	{flag: "mqtt-max-topic-length", env: "WARDEN_MQTT_MAX_TOPIC_LENGTH", def: "65535", arg: "bytes", readme: " bytes",
		usage: "most bytes in a topic name or filter; longer ones are refused like deeper ones",
		bind:  intOpt(func(c *Config) *int { return &c.MQTTMaxTopicLength })},
	{flag: "auth-verify-workers", env: "WARDEN_AUTH_VERIFY_WORKERS", def: "0", arg: "count", readme: ": half the cores (argon2id verifications at once, 19 MiB each)",
		usage: "argon2id password verifications run at once, for MQTT CONNECTs and HTTP logins together; each takes 19 MiB while it runs, so this bounds their memory; more wait (MQTT up to 5 s, then 0x89/3; HTTP up to 1 s, then 503) (0: half the CPU cores)",
		bind:  intOpt(func(c *Config) *int { return &c.AuthVerifyWorkers })},
	{flag: "mqtt-max-pending-writes", env: "WARDEN_MQTT_MAX_PENDING_WRITES", def: "1024", arg: "count", readme: " packets queued for one client",
		usage: "packets that may wait to be written to one MQTT client before further deliveries to it are dropped; each slot costs 8 bytes per connected client",
		bind:  intOpt(func(c *Config) *int { return &c.MQTTMaxPendingWrites })},
	{flag: "mqtt-max-packet-size", env: "WARDEN_MQTT_MAX_PACKET_SIZE", def: "1048576", arg: "bytes", readme: " bytes (CONNECT: at most 64 KiB)",
		usage: "largest MQTT packet a client may send, fixed header included (CONNECT, read before authentication: at most 64 KiB); a larger one closes the connection (MQTT 5: DISCONNECT 0x95), checked before it is read; MQTT 5 clients get the limit in CONNACK",
		bind:  intOpt(func(c *Config) *int { return &c.MQTTMaxPacketSize })},
	{flag: "mqtt-max-connections", env: "WARDEN_MQTT_MAX_CONNECTIONS", def: "0", arg: "count", readme: ": 90% of the open-file limit (`ulimit -n`)",
		usage: "MQTT sockets open at once over all listeners, counted from accept (before TLS and CONNECT); more are closed at once (0: 90% of the open-file limit, ulimit -n)",
		bind:  intOpt(func(c *Config) *int { return &c.MQTTMaxConnections })},
	{flag: "mqtt-max-keepalive", env: "WARDEN_MQTT_MAX_KEEPALIVE", def: "1h", arg: "duration", readme: "; `0`: no ceiling",
		usage: "keepalive ceiling in whole seconds, as Mosquitto's max_keepalive: MQTT 5 clients asking for 0 (none) or more are told to use it, MQTT 3.1.1 clients are refused with return code 2 (0: no ceiling, keepalive 0 means no timeout)",
		bind:  durationOpt(func(c *Config) *time.Duration { return &c.MQTTMaxKeepalive })},
	{flag: "registry-max-open", env: "WARDEN_REGISTRY_MAX_OPEN", def: "1h", arg: "duration", readme: ": longest an open of the client registry lasts",
		usage: "longest time POST /api/client-registry/open may open the client registry (longer requests are cut to it)",
		bind:  durationOpt(func(c *Config) *time.Duration { return &c.RegistryMaxOpen })},
	{flag: "registry-auto-grant-roles", env: "WARDEN_REGISTRY_AUTO_GRANT_ROLES", def: "", arg: "roles", readme: ": an admin confirms each registration",
		usage: "comma-separated role names: while the registry is open, grant every registration on arrival with these roles (for trusted production lines only; empty: an admin confirms each)",
		bind:  stringOpt(func(c *Config) *string { return &c.RegistryAutoGrantRoles })},
	{flag: "client-cert-validity", env: "WARDEN_CLIENT_CERT_VALIDITY", def: "8760h", arg: "duration", readme: " (a year) for the certificates the registry issues",
		usage: "lifetime of the client certificates the registry issues for CSRs",
		bind:  durationOpt(func(c *Config) *time.Duration { return &c.ClientCertValidity })},
	{flag: "mfa", env: "WARDEN_MFA", def: "true", arg: "bool", readme: ": TOTP for HTTP logins of enrolled users",
		usage: "multi-factor authentication (TOTP) for HTTP logins: enrolled users need a code after their password, and over MQTT a login token or certificate (see --mfa-mqtt-password) (false: the /api/mfa endpoints answer 403, logins ask for no code, enrollments are kept)",
		bind:  boolOpt(func(c *Config) *bool { return &c.MFA })},
	{flag: "mfa-trusted-device-days", env: "WARDEN_MFA_TRUSTED_DEVICE_DAYS", def: "30", arg: "days", readme: ", from 1 to 365",
		usage: "days a device trusted at an MFA login (trustDevice) may skip the MFA step, from 1 to 365",
		bind:  intOpt(func(c *Config) *int { return &c.MFATrustedDeviceDays })},
	{flag: "mfa-mqtt-password", env: "WARDEN_MFA_MQTT_PASSWORD", def: "false", arg: "bool", readme: ": users with MFA need a token or certificate over MQTT",
		usage: "let users with an active MFA key connect over MQTT with their password alone (off: such a user sends a login token obtained with MFA as the MQTT password, or a client certificate)",
		bind:  boolOpt(func(c *Config) *bool { return &c.MFAMQTTPassword })},
	{flag: "log-level", env: "WARDEN_LOG_LEVEL", def: "info", arg: "level", readme: "; `debug`, `warn` or `error`",
		usage: "log level: debug, info, warn or error",
		bind:  stringOpt(func(c *Config) *string { return &c.LogLevel })},
	{flag: "shutdown-timeout", env: "WARDEN_SHUTDOWN_TIMEOUT", def: "10s", arg: "duration",
		usage: "how long a shutdown may take before warden gives up waiting",
		bind:  durationOpt(func(c *Config) *time.Duration { return &c.ShutdownTimeout })},
	{flag: "audit-log", env: "WARDEN_AUDIT_LOG", def: "stderr", arg: "sink", readme: "; `stdout`, `off` or a file path",
		usage: "audit trail of admin changes and authentication failures, as JSON lines: stderr, stdout, off, or a file path (appended to, created with mode 0600)",
		bind:  stringOpt(func(c *Config) *string { return &c.AuditLog })},
	{flag: "restore-max-size", env: "WARDEN_RESTORE_MAX_SIZE", def: strconv.Itoa(store.DefaultRestoreMaxBytes), arg: "bytes", readme: " bytes of uncompressed model a restore accepts",
		usage: "largest model a restore accepts, as uncompressed JSON (POST /api/maintenance/db/restore, whose upload is capped to match, and warden restore); larger archives and archives inflating over 100 times their size are refused",
		bind:  intOpt(func(c *Config) *int { return &c.RestoreMaxSize })},
	{flag: "nats-url", env: "WARDEN_NATS_URL", def: "", arg: "urls", readme: ": off; set (comma-separated seed URLs): warden answers that NATS cluster's auth callouts",
		usage: "comma-separated seed URLs of a NATS cluster (nats://host:4222; tls://, ws://, wss:// too) whose auth callouts warden answers, as --nats-user; print the NATS side with warden nats-config (empty: off)",
		bind:  stringOpt(func(c *Config) *string { return &c.NATSURL })},
	{flag: "nats-user", env: "WARDEN_NATS_USER", def: "warden", arg: "name", readme: " (and `warden-system`, for kick requests)",
		usage: "user warden connects to NATS as, in the callout's auth account; its system user, which sends the servers' kick requests, is this name plus -system (warden nats-config defines both)",
		bind:  stringOpt(func(c *Config) *string { return &c.NATSUser })},
	{flag: "nats-password", env: "WARDEN_NATS_PASSWORD", def: "", arg: "password", secret: true, readme: "; required with `--nats-url`",
		usage: "password of --nats-user and of its system user; required with --nats-url (warden nats-config prints its bcrypt hash, or a $WARDEN_NATS_PASSWORD reference each nats-server resolves from its environment)",
		bind:  stringOpt(func(c *Config) *string { return &c.NATSPassword })},
	{flag: "nats-jwt-expiry", env: "WARDEN_NATS_JWT_EXPIRY", def: "24h", arg: "duration", readme: "; a login token's own expiry applies when earlier",
		usage: "lifetime of the user JWT a NATS client gets without a login token (less up to a tenth, so clients admitted together do not all reconnect at once); changes disconnect affected clients anyway, this bounds a client's session if no warden node can reach NATS",
		bind:  durationOpt(func(c *Config) *time.Duration { return &c.NATSJWTExpiry })},
	{flag: "webhook-client-ca", env: "WARDEN_WEBHOOK_CLIENT_CA", def: "", arg: "file", readme: ": brokers authenticate with a bearer token only",
		usage: "CA bundle, PEM, whose client certificates authenticate a broker (VerneMQ, EMQX) on the webhooks under /api/broker/ without a token (mutual TLS); needs the admin API over TLS (--http-tls or --http-tls-cert) (empty: a broker sends a bearer token of a user with write on the webhook's path)",
		bind:  stringOpt(func(c *Config) *string { return &c.WebhookClientCA })},
	{flag: "webhook-cache-max-age", env: "WARDEN_WEBHOOK_CACHE_MAX_AGE", def: "0s", arg: "duration", readme: ": every call decided afresh",
		usage: "cache lifetime the broker webhooks announce on successful answers (cache-control: max-age, whole seconds up to 24h): the broker reuses a decision that long, so a revocation may wait as long (0: the broker asks every time)",
		bind:  durationOpt(func(c *Config) *time.Duration { return &c.WebhookCacheMaxAge })},
	{flag: "vernemq-api-url", env: "WARDEN_VERNEMQ_API_URL", def: "", arg: "url", readme: ": off; set: changes disconnect affected VerneMQ sessions",
		usage: "VerneMQ's HTTP API (http://vernemq:8888), through which changes disconnect the sessions they end or alter; needs --vernemq-api-key (empty: sessions stay until their next webhook call is refused)",
		bind:  stringOpt(func(c *Config) *string { return &c.VerneMQAPIURL })},
	{flag: "vernemq-api-key", env: "WARDEN_VERNEMQ_API_KEY", def: "", arg: "key", secret: true, readme: "; required with `--vernemq-api-url`",
		usage: "API key of --vernemq-api-url (vmq-admin api-key add)",
		bind:  stringOpt(func(c *Config) *string { return &c.VerneMQAPIKey })},
	{flag: "emqx-api-url", env: "WARDEN_EMQX_API_URL", def: "", arg: "url", readme: ": off; set: changes kick affected EMQX clients",
		usage: "EMQX 5's REST API (http://emqx:18083), through which changes kick the clients they end or alter; needs --emqx-api-key and --emqx-api-secret (empty: clients stay until their next webhook call is refused)",
		bind:  stringOpt(func(c *Config) *string { return &c.EMQXAPIURL })},
	{flag: "emqx-api-key", env: "WARDEN_EMQX_API_KEY", def: "", arg: "key", readme: "; required with `--emqx-api-url`",
		usage: "API key of --emqx-api-url (created in the EMQX dashboard)",
		bind:  stringOpt(func(c *Config) *string { return &c.EMQXAPIKey })},
	{flag: "emqx-api-secret", env: "WARDEN_EMQX_API_SECRET", def: "", arg: "secret", secret: true, readme: "; required with `--emqx-api-url`",
		usage: "secret of --emqx-api-key",
		bind:  stringOpt(func(c *Config) *string { return &c.EMQXAPISecret })},
	{flag: "ldap-url", env: "WARDEN_LDAP_URL", def: "", arg: "url", readme: ": off; set: directory users log in with their directory password",
		usage: "LDAP directory users log in with: ldaps://host:636, or ldap://host:389 with --ldap-start-tls (plain ldap:// only with --ldap-insecure); no credentials in the URL (empty: off)",
		bind:  stringOpt(func(c *Config) *string { return &c.LDAPURL })},
	{flag: "ldap-start-tls", env: "WARDEN_LDAP_START_TLS", def: "false", arg: "bool",
		usage: "upgrade the ldap:// connection with StartTLS before binding (not with ldaps://)",
		bind:  boolOpt(func(c *Config) *bool { return &c.LDAPStartTLS })},
	{flag: "ldap-ca-file", env: "WARDEN_LDAP_CA_FILE", def: "", arg: "file", readme: ": the system's roots",
		usage: "CA bundle, PEM, that verifies the directory's certificate (ldaps:// or --ldap-start-tls) (empty: the system's roots)",
		bind:  stringOpt(func(c *Config) *string { return &c.LDAPCAFile })},
	{flag: "ldap-insecure", env: "WARDEN_LDAP_INSECURE", def: "false", arg: "bool", readme: "; `true` for tests only",
		usage: "TESTS ONLY: allow plain ldap:// without StartTLS, which sends every directory password in the clear",
		bind:  boolOpt(func(c *Config) *bool { return &c.LDAPInsecure })},
	{flag: "ldap-base-dn", env: "WARDEN_LDAP_BASE_DN", def: "", arg: "dn", readme: "; required with `--ldap-url`",
		usage: "DN under which user entries are searched, e.g. ou=people,dc=example,dc=org; required with --ldap-url",
		bind:  stringOpt(func(c *Config) *string { return &c.LDAPBaseDN })},
	{flag: "ldap-filter", env: "WARDEN_LDAP_FILTER", def: "(uid={username})", arg: "filter", readme: " (Active Directory: `(sAMAccountName={username})`)",
		usage: "LDAP filter that finds a user's entry; {username} is replaced by the username, escaped (RFC 4515), so it cannot widen the search",
		bind:  stringOpt(func(c *Config) *string { return &c.LDAPFilter })},
	{flag: "ldap-username-attribute", env: "WARDEN_LDAP_USERNAME_ATTRIBUTE", def: "uid", arg: "attribute",
		usage: "attribute of the user's entry that holds its username",
		bind:  stringOpt(func(c *Config) *string { return &c.LDAPUsernameAttribute })},
	{flag: "ldap-bind-dn", env: "WARDEN_LDAP_BIND_DN", def: "", arg: "dn", readme: ": no service account (then `--ldap-bind-dn-template`)",
		usage: "DN of the service account that searches for users (search, then bind as the user found); needs --ldap-bind-password; not with --ldap-bind-dn-template",
		bind:  stringOpt(func(c *Config) *string { return &c.LDAPBindDN })},
	{flag: "ldap-bind-password", env: "WARDEN_LDAP_BIND_PASSWORD", def: "", arg: "password", secret: true, readme: "; required with `--ldap-bind-dn`",
		usage: "password of --ldap-bind-dn",
		bind:  stringOpt(func(c *Config) *string { return &c.LDAPBindPassword })},
	{flag: "ldap-bind-dn-template", env: "WARDEN_LDAP_BIND_DN_TEMPLATE", def: "", arg: "dn", readme: ": search with `--ldap-bind-dn`",
		usage: "DN to bind as directly, {username} replaced by the username escaped for a DN (RFC 4514), e.g. uid={username},ou=people,dc=example,dc=org; not with --ldap-bind-dn",
		bind:  stringOpt(func(c *Config) *string { return &c.LDAPBindDNTemplate })},
	{flag: "ldap-mode", env: "WARDEN_LDAP_MODE", def: "GROUP", arg: "mode", readme: "; or `ATTRIBUTE`",
		usage: "how directory users get roles: GROUP (the roles linked to the user's groups, a role's ldapGroups) or ATTRIBUTE (the role names listed in --ldap-role-attribute)",
		bind:  stringOpt(func(c *Config) *string { return &c.LDAPMode })},
	{flag: "ldap-group-base-dn", env: "WARDEN_LDAP_GROUP_BASE_DN", def: "", arg: "dn", readme: ": `--ldap-base-dn`",
		usage: "GROUP mode: DN under which groups are searched (empty: --ldap-base-dn)",
		bind:  stringOpt(func(c *Config) *string { return &c.LDAPGroupBaseDN })},
	{flag: "ldap-group-filter", env: "WARDEN_LDAP_GROUP_FILTER", def: "(member={dn})", arg: "filter",
		usage: "GROUP mode: LDAP filter that finds a user's groups; {dn} is replaced by the user's DN, escaped (RFC 4515)",
		bind:  stringOpt(func(c *Config) *string { return &c.LDAPGroupFilter })},
	{flag: "ldap-role-attribute", env: "WARDEN_LDAP_ROLE_ATTRIBUTE", def: "", arg: "attribute", readme: "; required in `ATTRIBUTE` mode",
		usage: "ATTRIBUTE mode: attribute of the user's entry listing its role names, e.g. employeeType; required in that mode",
		bind:  stringOpt(func(c *Config) *string { return &c.LDAPRoleAttribute })},
	{flag: "ldap-timeout", env: "WARDEN_LDAP_TIMEOUT", def: "5s", arg: "duration", readme: " per directory call",
		usage: "bound on every directory call (connect, TLS, bind, search)",
		bind:  durationOpt(func(c *Config) *time.Duration { return &c.LDAPTimeout })},
	{flag: "ldap-cache-ttl", env: "WARDEN_LDAP_CACHE_TTL", def: "5m", arg: "duration", readme: ": a directory bind is reused that long for MQTT reconnects",
		usage: "how long a successful directory bind is reused for MQTT connects with the same password (a failed bind is never cached); also how long cached users keep connecting while the directory is down",
		bind:  durationOpt(func(c *Config) *time.Duration { return &c.LDAPCacheTTL })},
	{flag: "ldap-recheck", env: "WARDEN_LDAP_RECHECK", def: "15m", arg: "duration",
		usage: "how often directory users with tokens or MQTT sessions are checked in the directory; one removed or disabled there loses its tokens and is disconnected",
		bind:  durationOpt(func(c *Config) *time.Duration { return &c.LDAPRecheck })},
	{flag: "pprof-addr", env: "WARDEN_PPROF_ADDR", def: "", arg: "addr", readme: ": off; loopback addresses only",
		usage: "serve Go's profiler (net/http/pprof, /debug/pprof/) on this address, apart from the admin API; loopback only (127.0.0.0/8, [::1] or localhost), since profiles show memory contents (empty: off)",
		bind:  stringOpt(func(c *Config) *string { return &c.PprofAddr })},
	{flag: "memory-return-interval", env: "WARDEN_MEMORY_RETURN_INTERVAL", def: "5s", arg: "duration", readme: "; `0` turns it off",
		usage: "how often to check whether the heap holds far more than it uses after a burst (reconnect storm, clients gone) and, once quiet, return the free part to the OS instead of holding it for minutes (0: never)",
		bind:  durationOpt(func(c *Config) *time.Duration { return &c.MemoryReturnInterval })},
	{flag: "insecure-no-auth", env: "WARDEN_INSECURE_NO_AUTH", def: "false", arg: "bool", readme: "; `true` for benchmarks only",
		usage: "BENCHMARKS ONLY: run the broker without authentication or authorization (Mochi's allow-all hook), to measure what warden's auth costs",
		bind:  boolOpt(func(c *Config) *bool { return &c.InsecureNoAuth })},
}

// errVersion is returned by loadConfig when --version was asked for; the
// caller prints versionLine().
var errVersion = errors.New("version requested")

// loadConfig builds the Config from args (without the program name) and
// the environment, then validates it. It returns flag.ErrHelp when --help
// (or -h) was asked for, errVersion for --version. Every problem found,
// in the arguments, the environment or the values, is reported at once.
func loadConfig(args []string, getenv func(string) string) (Config, error) {
	var c Config
	fs, rest, err := parseServerFlags(args, &c)
	if err != nil {
		return Config{}, err
	}
	var errs []error
	if len(rest) > 0 {
		errs = append(errs, unexpectedArgument(rest[0]))
	}

	// Flags given on the command line win; for the others, a non-empty
	// environment variable replaces the default. Going through fs.Set
	// parses env values exactly like flag values.
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, o := range options {
		if given[o.flag] {
			continue
		}
		v := getenv(o.env)
		if v == "" {
			continue
		}
		if err := fs.Set(o.flag, v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %s", o.env, valueProblem(o, v, err)))
		}
	}
	if err := c.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return c, nil
}

// parseServerFlags parses the server's flags (the options and
// --version) from args into c, without the environment. It returns
// flag.ErrHelp for --help and errVersion for --version, else the flag set
// and the arguments after the flags.
func parseServerFlags(args []string, c *Config) (*flag.FlagSet, []string, error) {
	fs := flag.NewFlagSet("warden", flag.ContinueOnError)
	// parseArgs reports errors itself; the flag package prints nothing.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	for _, o := range options {
		o.bind(fs, c, o)
	}
	var version bool
	boolVar(fs, &version, "version", false, "print the version and exit")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return nil, nil, err
	}
	if version {
		return nil, nil, errVersion
	}
	return fs, rest, nil
}

// unexpectedArgument is the error for a first argument that is neither a
// flag nor a command.
func unexpectedArgument(arg string) error {
	names := append([]string{"help", "version", "healthcheck"}, slices.Sorted(maps.Keys(commands))...)
	if near := nearest(arg, names); len(near) > 0 {
		return fmt.Errorf("unexpected argument %q; did you mean the command %s? (commands come first: warden %s ...)", arg, strings.Join(near, " or "), near[0])
	}
	return fmt.Errorf("unexpected argument %q: the server takes only flags, and a command (backup, restore, user add, nats-config, healthcheck, version, help) must come first", arg)
}

// valueProblem describes why v could not be set for o, without echoing a
// secret (the value errors quote the value).
func valueProblem(o option, v string, err error) string {
	if o.secret {
		return "invalid value"
	}
	return err.Error()
}

// Validate reports every problem with c at once, joined, so an operator
// fixes the configuration in one round. Messages name the flag and its
// environment variable and never contain the admin password.
func (c Config) Validate() error {
	var errs []error
	add := func(flagName, format string, args ...any) {
		env := ""
		for _, o := range options {
			if o.flag == flagName {
				env = o.env
			}
		}
		errs = append(errs, fmt.Errorf("--%s (%s): %s", flagName, env, fmt.Sprintf(format, args...)))
	}

	if _, err := parseLevel(c.LogLevel); err != nil {
		add("log-level", "%v", err)
	}

	listeners := []struct{ flag, addr string }{
		{"mqtt-addr", c.MQTTAddr}, {"mqtts-addr", c.MQTTSAddr}, {"ws-addr", c.WSAddr}, {"http-addr", c.HTTPAddr},
	}
	for _, l := range listeners {
		if l.addr == "" {
			continue
		}
		if err := checkAddr(l.addr); err != nil {
			add(l.flag, "%v", err)
		}
	}
	if c.PprofAddr != "" {
		if err := checkLoopbackAddr(c.PprofAddr); err != nil {
			add("pprof-addr", "%v", err)
		}
	}
	if c.MemoryReturnInterval < 0 || (c.MemoryReturnInterval > 0 && c.MemoryReturnInterval < 100*time.Millisecond) {
		add("memory-return-interval", "%s: want 0 (off) or at least 100ms", c.MemoryReturnInterval)
	}
	if c.MQTTAddr == "" && c.MQTTSAddr == "" && c.WSAddr == "" {
		// A broker sidecar without any MQTT listener is a
		// misconfiguration, not a mode.
		add("mqtt-addr", "no MQTT listener: set at least one of --mqtt-addr, --mqtts-addr, --ws-addr")
	}

	switch {
	case c.TLSCert != "" && c.TLSKey == "":
		add("tls-key", "missing: --tls-cert is set, so its key is needed too")
	case c.TLSKey != "" && c.TLSCert == "":
		add("tls-cert", "missing: --tls-key is set, so its certificate is needed too")
	}

	if c.NodeID != "" {
		if err := authhook.ValidNodeID(c.NodeID); err != nil {
			add("node-id", "%v", err)
		}
	}
	if c.RedisURL != "" {
		if err := checkRedisURL(c.RedisURL); err != nil {
			add("redis-url", "%v", err)
		}
	} else if strings.TrimSpace(c.DataDir) == "" {
		add("data-dir", "empty: the embedded store needs a directory (or set --redis-url)")
	}

	if c.AdminPassword != "" {
		// The policy's error names the failed rule; it is a credential
		// error and does not quote the password (tested).
		if err := credential.DefaultPolicy().Check(c.AdminPassword); err != nil {
			add("admin-password", "does not satisfy the password policy: %v", err)
		}
	}

	if c.WSTLS && c.WSAddr == "" {
		add("ws-tls", "set, but --ws-addr is empty")
	}
	for _, o := range splitList(c.WSAllowedOrigins) {
		if err := broker.CheckOrigin(o); err != nil {
			add("ws-allowed-origins", "%v", err)
		}
	}
	switch {
	case c.HTTPTLSCert != "" && c.HTTPTLSKey == "":
		add("http-tls-key", "missing: --http-tls-cert is set, so its key is needed too")
	case c.HTTPTLSKey != "" && c.HTTPTLSCert == "":
		add("http-tls-cert", "missing: --http-tls-key is set, so its certificate is needed too")
	}
	if (c.HTTPTLS || c.HTTPTLSCert != "") && c.HTTPAddr == "" {
		add("http-tls", "set, but --http-addr is empty")
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"connect-timeout", c.ConnectTimeout}, {"auth-failure-window", c.AuthFailureWindow}, {"auth-backoff", c.AuthBackoff},
		{"registry-max-open", c.RegistryMaxOpen}, {"client-cert-validity", c.ClientCertValidity}} {
		if d.v <= 0 {
			add(d.flag, "must be positive, got %s", d.v)
		}
	}
	if c.MFATrustedDeviceDays < 1 || c.MFATrustedDeviceDays > admin.MaxTrustedDeviceDays {
		add("mfa-trusted-device-days", "must be from 1 to %d, got %d", admin.MaxTrustedDeviceDays, c.MFATrustedDeviceDays)
	}
	if c.AuthMaxFailuresUser == 0 || c.AuthMaxFailuresIP == 0 {
		add("auth-max-failures-user", "a limit of 0 would block every login; use a negative value for no limit")
	}
	if c.AuthMaxFailuresUserTotal == 0 {
		add("auth-max-failures-user-total", "a limit of 0 would block every login; use a negative value for no limit")
	}
	if c.AuthVerifyWorkers < 0 || c.AuthVerifyWorkers > 1024 {
		add("auth-verify-workers", "must be from 0 (half the CPU cores) to 1024, got %d", c.AuthVerifyWorkers)
	}

	if c.MQTTMaxPendingWrites < 1 || c.MQTTMaxPendingWrites > 1<<20 {
		add("mqtt-max-pending-writes", "must be from 1 to %d, got %d", 1<<20, c.MQTTMaxPendingWrites)
	}
	if c.MQTTMaxPacketSize < minPacketSize || c.MQTTMaxPacketSize > broker.MaxPacketSizeLimit {
		add("mqtt-max-packet-size", "must be from %d to %d bytes, got %d", minPacketSize, broker.MaxPacketSizeLimit, c.MQTTMaxPacketSize)
	}
	if c.MQTTMaxConnections < 0 {
		add("mqtt-max-connections", "must be 0 (from the open-file limit) or positive, got %d", c.MQTTMaxConnections)
	}
	if ka := c.MQTTMaxKeepalive; ka < 0 || ka > 65535*time.Second || ka%time.Second != 0 {
		add("mqtt-max-keepalive", "must be 0 (no ceiling) or whole seconds up to 65535s, got %s", ka)
	}
	if c.RestoreMaxSize < 1 || c.RestoreMaxSize > store.MaxArchiveContentBytes {
		add("restore-max-size", "must be from 1 to %d bytes, got %d", store.MaxArchiveContentBytes, c.RestoreMaxSize)
	}
	if c.ShutdownTimeout <= 0 {
		add("shutdown-timeout", "must be positive, got %s", c.ShutdownTimeout)
	}
	c.validateSessionLimits(add)
	c.validateNATS(add)
	c.validateWebhooks(add)
	c.validateLDAP(add)
	if err := audit.CheckSink(c.AuditLog); err != nil {
		add("audit-log", "%v", err)
	}
	return errors.Join(errs...)
}

// minPacketSize is the least --mqtt-max-packet-size: below it a CONNECT
// with a login token as password would not fit.
const minPacketSize = 1024

// splitList splits a comma-separated flag value, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// validateSessionLimits checks the session and topic limits.
func (c Config) validateSessionLimits(add func(flagName, format string, args ...any)) {
	if c.MQTTMaxSessionExpiry < time.Second || c.MQTTMaxSessionExpiry > math.MaxUint32*time.Second {
		add("mqtt-max-session-expiry", "must be from 1s to %s, got %s", math.MaxUint32*time.Second, c.MQTTMaxSessionExpiry)
	}
	for _, l := range []struct {
		flag   string
		v, max int
	}{{"mqtt-max-offline-sessions", c.MQTTMaxOfflineSessions, 1 << 20}, {"mqtt-max-queued-messages", c.MQTTMaxQueuedMessages, math.MaxUint16},
		{"mqtt-max-topic-levels", c.MQTTMaxTopicLevels, math.MaxUint16}, {"mqtt-max-topic-length", c.MQTTMaxTopicLength, math.MaxUint16}} {
		if l.v < 1 || l.v > l.max {
			add(l.flag, "must be from 1 to %d, got %d", l.max, l.v)
		}
	}
}

// validateNATS checks the NATS callout settings without connecting.
// The URLs may hold credentials, so they are named by position, never
// quoted.
func (c Config) validateNATS(add func(flagName, format string, args ...any)) {
	if c.NATSURL == "" {
		return
	}
	if err := natscallout.CheckUser(c.NATSUser); err != nil {
		add("nats-user", "%v", err)
	}
	if c.NATSJWTExpiry < time.Minute {
		add("nats-jwt-expiry", "must be at least 1m, got %v", c.NATSJWTExpiry)
	}
	urls := splitList(c.NATSURL)
	if len(urls) == 0 {
		add("nats-url", "holds no URL")
	}
	for i, raw := range urls {
		u, err := url.Parse(raw)
		switch {
		case err != nil:
			add("nats-url", "URL %d is not a valid URL (want nats://host:4222)", i+1)
		case !slices.Contains([]string{"nats", "tls", "ws", "wss"}, u.Scheme):
			add("nats-url", "URL %d: scheme must be nats://, tls://, ws:// or wss:// (as nats.go takes them), got %q", i+1, u.Scheme)
		case u.Host == "":
			add("nats-url", "URL %d has no host (want nats://host:4222)", i+1)
		case u.User != nil:
			add("nats-url", "URL %d holds credentials: give them with --nats-user and --nats-password", i+1)
		}
	}
	if c.NATSPassword == "" {
		add("nats-password", "required with --nats-url: the password of --nats-user in the NATS configuration (warden nats-config)")
	}
}

// maxWebhookCacheMaxAge bounds --webhook-cache-max-age: a cached
// decision outlives a revocation by up to that long.
const maxWebhookCacheMaxAge = 24 * time.Hour

// validateWebhooks checks the broker webhooks' settings. The API URLs are
// never quoted (a URL may hold a password), nor are keys and secrets.
func (c Config) validateWebhooks(add func(flagName, format string, args ...any)) {
	if c.WebhookClientCA != "" {
		switch {
		case c.HTTPAddr == "":
			add("webhook-client-ca", "set, but --http-addr is empty: the broker webhooks are served by the admin API")
		case !c.HTTPTLS && c.HTTPTLSCert == "":
			add("webhook-client-ca", "needs the admin API over TLS, which carries the client certificate: set --http-tls (or --http-tls-cert and --http-tls-key)")
		}
	}
	if d := c.WebhookCacheMaxAge; d < 0 || d > maxWebhookCacheMaxAge || d%time.Second != 0 {
		add("webhook-cache-max-age", "must be 0 or whole seconds up to %s, got %s", maxWebhookCacheMaxAge, d)
	}
	for _, api := range []struct {
		url, urlFlag, example string
		creds                 []struct{ flag, value string }
	}{
		{c.VerneMQAPIURL, "vernemq-api-url", "http://vernemq:8888", []struct{ flag, value string }{{"vernemq-api-key", c.VerneMQAPIKey}}},
		{c.EMQXAPIURL, "emqx-api-url", "http://emqx:18083", []struct{ flag, value string }{{"emqx-api-key", c.EMQXAPIKey}, {"emqx-api-secret", c.EMQXAPISecret}}},
	} {
		if api.url == "" {
			for _, cr := range api.creds {
				if cr.value != "" {
					add(cr.flag, "set, but --%s is empty", api.urlFlag)
				}
			}
			continue
		}
		if c.HTTPAddr == "" {
			add(api.urlFlag, "set, but --http-addr is empty: only the broker webhooks, served by the admin API, track the sessions to disconnect")
		}
		if err := checkAPIURL(api.url, api.example); err != nil {
			add(api.urlFlag, "%v", err)
		}
		for _, cr := range api.creds {
			if cr.value == "" {
				add(cr.flag, "required with --%s", api.urlFlag)
			}
		}
	}
}

// checkAPIURL accepts a broker API's base URL: http or https, a host, no
// credentials (they go in their own flags), query or fragment. The URL is
// not quoted: it may hold credentials.
func checkAPIURL(raw, example string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("not a valid URL (want %s)", example)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("scheme must be http:// or https:// (want %s)", example)
	case u.Host == "":
		return fmt.Errorf("no host (want %s)", example)
	case u.User != nil:
		return errors.New("holds credentials: give them with the API key flags")
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("holds a query or fragment: give the API's base URL (want %s)", example)
	}
	return nil
}

// parseLevel accepts the four slog level names, case-insensitively.
func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown level %q: want debug, info, warn or error", s)
}

// checkAddr accepts host:port with a numeric port (0 allowed: tests bind
// free ports) and an empty host (all interfaces). Service names are
// refused: they depend on /etc/services and hide typos.
func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		why := err.Error()
		var ae *net.AddrError
		if errors.As(err, &ae) {
			why = ae.Err // without the address, which we quote already
		}
		return fmt.Errorf("%q is not host:port: %s; e.g. :1883 (all interfaces) or 127.0.0.1:1883", addr, why)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", addr, port)
	}
	return nil
}

// checkLoopbackAddr accepts what checkAddr accepts, but only on a
// loopback host: an IP in 127.0.0.0/8, ::1, or the name localhost. Other
// names are refused without resolving them: what a name resolves to can
// change after the check.
func checkLoopbackAddr(addr string) error {
	if err := checkAddr(addr); err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(addr) // checked just above
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	if host == "" {
		return fmt.Errorf("%q listens on every interface: give a loopback address (127.0.0.1:6060, [::1]:6060 or localhost:6060); profiles show memory contents", addr)
	}
	return fmt.Errorf("%q is not a loopback address: give 127.0.0.1, [::1] or localhost with a port; profiles show memory contents", addr)
}

// checkRedisURL checks what can be checked without connecting. The URL
// may hold a password, so it is never quoted in the error.
func checkRedisURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a valid URL (want redis://host:port/db or rediss://host:port/db)")
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return fmt.Errorf("scheme must be redis:// or rediss://, got %q", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("no host (want redis://host:port/db)")
	}
	return nil
}

// usage is the --help text: one entry per option with its flag, its
// environment variable and its default.
func usage() string {
	var b strings.Builder
	b.WriteString(`Usage: warden [flags]
       warden COMMAND [arguments]

warden runs an MQTT broker whose every connect, subscribe, publish and
delivery is checked against its user and permission model, with an admin
HTTP API to manage that model.

Commands (details below the flags):
  backup       write a backup archive of the model to a file
  restore      replace the model with a backup archive
  user add     create a user or reset its password, roles and MFA (recovery)
  nats-config  print the NATS server configuration for warden's auth callout
  healthcheck  exit 0 when a running warden answers /healthz (container probe)
  version      print the version, commit and Go version
  help         print this help

Each flag may also be set by its environment variable; a flag given on the
command line beats the variable, the variable beats the default.

Flags:
  --help, -h
        print this help and exit
  --version
        print the version, commit and Go version and exit
`)
	for _, o := range options {
		def := strconv.Quote(o.def)
		if o.def == "" {
			def = "empty"
		}
		fmt.Fprintf(&b, "  --%s %s\n", o.flag, o.arg)
		fmt.Fprintf(&b, "        env %s, default %s\n", o.env, def)
		fmt.Fprintf(&b, "        %s\n", o.usage)
	}
	b.WriteString(commandsUsage)    // commands.go
	b.WriteString(healthcheckUsage) // healthcheck.go
	b.WriteString(`
Exit status: 0 after a clean shutdown (SIGINT, SIGTERM), 1 when startup or
shutdown fails, 2 when the configuration is invalid.
`)
	return b.String()
}
