package main

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/credential"
)

// env returns a getenv over a fixed map, so tests never see the real
// environment.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func defaultConfig() Config {
	return Config{
		MQTTAddr:        ":1883",
		HTTPAddr:        ":8080",
		WebUI:           true,
		DataDir:         "./data",
		LogLevel:        "info",
		ShutdownTimeout: 10 * time.Second,
		AuditLog:        "stderr",

		ConnectTimeout:       10 * time.Second,
		RegistryMaxOpen:      time.Hour,
		MQTTMaxPendingWrites: 1024,
		ClientCertValidity:   365 * 24 * time.Hour,
		AuthMaxFailuresUser:  10,
		AuthMaxFailuresIP:    100,
		AuthFailureWindow:    5 * time.Minute,
		AuthBackoff:          5 * time.Minute,
		MFA:                  true,

		MFATrustedDeviceDays: 30,
		NATSUser:             "warden",
		NATSJWTExpiry:        24 * time.Hour,

		MQTTMaxPacketSize:        1 << 20,
		MQTTMaxKeepalive:         time.Hour,
		MQTTMaxSessionExpiry:     24 * time.Hour,
		MQTTMaxOfflineSessions:   10,
		MQTTMaxQueuedMessages:    1000,
		MQTTMaxTopicLevels:       128,
		MQTTMaxTopicLength:       65535,
		RestoreMaxSize:           256 << 20,
		AuthMaxFailuresUserTotal: 100,

		LDAPFilter:            "(uid={username})",
		LDAPUsernameAttribute: "uid",
		LDAPMode:              "GROUP",
		LDAPGroupFilter:       "(member={dn})",
		LDAPTimeout:           5 * time.Second,
		LDAPCacheTTL:          5 * time.Minute,
		LDAPRecheck:           15 * time.Minute,

		MemoryReturnInterval: 5 * time.Second,
	}
}

func TestLoadConfigPrecedence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(*Config)
	}{
		{
			name: "nothing set gives the defaults",
			want: func(*Config) {},
		},
		{
			name: "an environment variable beats the default",
			env:  map[string]string{"WARDEN_MQTT_ADDR": "127.0.0.1:1884", "WARDEN_LOG_LEVEL": "debug", "WARDEN_SHUTDOWN_TIMEOUT": "3s"},
			want: func(c *Config) {
				c.MQTTAddr = "127.0.0.1:1884"
				c.LogLevel = "debug"
				c.ShutdownTimeout = 3 * time.Second
			},
		},
		{
			name: "a flag beats the environment variable",
			args: []string{"--mqtt-addr", "127.0.0.1:1885", "-log-level=warn", "--shutdown-timeout=1m"},
			env:  map[string]string{"WARDEN_MQTT_ADDR": "127.0.0.1:1884", "WARDEN_LOG_LEVEL": "debug", "WARDEN_SHUTDOWN_TIMEOUT": "3s"},
			want: func(c *Config) { c.MQTTAddr = "127.0.0.1:1885"; c.LogLevel = "warn"; c.ShutdownTimeout = time.Minute },
		},
		{
			name: "a flag set to empty beats the environment variable and turns the listener off",
			args: []string{"--http-addr="},
			env:  map[string]string{"WARDEN_HTTP_ADDR": ":9090"},
			want: func(c *Config) { c.HTTPAddr = "" },
		},
		{
			name: "an empty environment variable counts as unset",
			env:  map[string]string{"WARDEN_DATA_DIR": ""},
			want: func(*Config) {},
		},
		{
			name: "flags and variables mix per setting",
			args: []string{"--data-dir", "/flag/dir"},
			env:  map[string]string{"WARDEN_DATA_DIR": "/env/dir", "WARDEN_WS_ADDR": ":8083", "WARDEN_MQTTS_ADDR": ":8883"},
			want: func(c *Config) { c.DataDir = "/flag/dir"; c.WSAddr = ":8083"; c.MQTTSAddr = ":8883" },
		},
		{
			name: "every setting has a variable",
			env: map[string]string{
				"WARDEN_MQTT_ADDR": ":1", "WARDEN_MQTTS_ADDR": ":2", "WARDEN_WS_ADDR": ":3", "WARDEN_HTTP_ADDR": ":4", "WARDEN_WEB_UI": "false",
				"WARDEN_DATA_DIR": "/d", "WARDEN_REDIS_URL": "redis://r:6379/1",
				"WARDEN_TLS_CERT": "c.pem", "WARDEN_TLS_KEY": "k.pem", "WARDEN_CLIENT_CA": "ca.pem",
				"WARDEN_LOG_LEVEL": "error", "WARDEN_SHUTDOWN_TIMEOUT": "2s", "WARDEN_INSECURE_NO_AUTH": "true",
				"WARDEN_PPROF_ADDR": "127.0.0.1:6060", "WARDEN_MEMORY_RETURN_INTERVAL": "30s", "WARDEN_AUDIT_LOG": "/var/log/warden-audit.jsonl",
				"WARDEN_TLS_HOSTS": "mqtt.example.com", "WARDEN_WS_TLS": "true", "WARDEN_CONNECT_TIMEOUT": "3s",
				"WARDEN_AUTH_MAX_FAILURES_USER": "5", "WARDEN_AUTH_MAX_FAILURES_IP": "-1",
				"WARDEN_AUTH_FAILURE_WINDOW": "1m", "WARDEN_AUTH_BACKOFF": "30s",
				"WARDEN_AUTH_MAX_FAILURES_USER_TOTAL": "50", "WARDEN_AUTH_VERIFY_WORKERS": "3", "WARDEN_MFA_MQTT_PASSWORD": "true",
				"WARDEN_REGISTRY_MAX_OPEN": "10m", "WARDEN_MQTT_MAX_PENDING_WRITES": "256", "WARDEN_REGISTRY_AUTO_GRANT_ROLES": "line-a", "WARDEN_CLIENT_CERT_VALIDITY": "720h",
				"WARDEN_MFA": "false", "WARDEN_MFA_TRUSTED_DEVICE_DAYS": "7",
				"WARDEN_MQTT_MAX_PACKET_SIZE": "65536", "WARDEN_MQTT_MAX_CONNECTIONS": "5000", "WARDEN_MQTT_MAX_KEEPALIVE": "20m",
				"WARDEN_WS_ALLOWED_ORIGINS": "https://ui.example.com", "WARDEN_HTTP_TLS": "true",
				"WARDEN_HTTP_TLS_CERT": "h.pem", "WARDEN_HTTP_TLS_KEY": "hk.pem",
				"WARDEN_MQTT_MAX_SESSION_EXPIRY": "1h", "WARDEN_MQTT_MAX_OFFLINE_SESSIONS": "3", "WARDEN_MQTT_MAX_QUEUED_MESSAGES": "50",
				"WARDEN_MQTT_MAX_TOPIC_LEVELS": "16", "WARDEN_MQTT_MAX_TOPIC_LENGTH": "1024",
				"WARDEN_RESTORE_MAX_SIZE": "1048576", "WARDEN_NATS_URL": "nats://n1:4222,nats://n2:4222",
				"WARDEN_NATS_USER": "warden-eu", "WARDEN_NATS_PASSWORD": "nats-pw", "WARDEN_NATS_JWT_EXPIRY": "2h",
				"WARDEN_WEBHOOK_CLIENT_CA": "broker-ca.pem", "WARDEN_WEBHOOK_CACHE_MAX_AGE": "30s",
				"WARDEN_VERNEMQ_API_URL": "http://vernemq:8888", "WARDEN_VERNEMQ_API_KEY": "vmq-key",
				"WARDEN_EMQX_API_URL": "https://emqx:18084", "WARDEN_EMQX_API_KEY": "emqx-key", "WARDEN_EMQX_API_SECRET": "emqx-secret",
			},
			want: func(c *Config) {
				*c = Config{MQTTAddr: ":1", MQTTSAddr: ":2", WSAddr: ":3", HTTPAddr: ":4", DataDir: "/d",
					RedisURL: "redis://r:6379/1", TLSCert: "c.pem", TLSKey: "k.pem", ClientCA: "ca.pem",
					LogLevel: "error", ShutdownTimeout: 2 * time.Second, InsecureNoAuth: true,
					PprofAddr: "127.0.0.1:6060", MemoryReturnInterval: 30 * time.Second, AuditLog: "/var/log/warden-audit.jsonl",
					TLSHosts: "mqtt.example.com", WSTLS: true, ConnectTimeout: 3 * time.Second,
					AuthMaxFailuresUser: 5, AuthMaxFailuresIP: -1, AuthFailureWindow: time.Minute, AuthBackoff: 30 * time.Second,
					AuthMaxFailuresUserTotal: 50, AuthVerifyWorkers: 3, MFAMQTTPassword: true,
					RegistryMaxOpen: 10 * time.Minute, MQTTMaxPendingWrites: 256, RegistryAutoGrantRoles: "line-a", ClientCertValidity: 720 * time.Hour,
					MFA: false, MFATrustedDeviceDays: 7,
					MQTTMaxPacketSize: 65536, MQTTMaxConnections: 5000, MQTTMaxKeepalive: 20 * time.Minute,
					WSAllowedOrigins: "https://ui.example.com", HTTPTLS: true, HTTPTLSCert: "h.pem", HTTPTLSKey: "hk.pem",
					MQTTMaxSessionExpiry: time.Hour, MQTTMaxOfflineSessions: 3, MQTTMaxQueuedMessages: 50, MQTTMaxTopicLevels: 16, MQTTMaxTopicLength: 1024,
					RestoreMaxSize: 1 << 20, NATSURL: "nats://n1:4222,nats://n2:4222", NATSUser: "warden-eu", NATSPassword: "nats-pw", NATSJWTExpiry: 2 * time.Hour,
					WebhookClientCA: "broker-ca.pem", WebhookCacheMaxAge: 30 * time.Second,
					VerneMQAPIURL: "http://vernemq:8888", VerneMQAPIKey: "vmq-key",
					EMQXAPIURL: "https://emqx:18084", EMQXAPIKey: "emqx-key", EMQXAPISecret: "emqx-secret",
					// The directory is off here (the LDAP cases below): its defaults.
					LDAPFilter: "(uid={username})", LDAPUsernameAttribute: "uid", LDAPMode: "GROUP", LDAPGroupFilter: "(member={dn})",
					LDAPTimeout: 5 * time.Second, LDAPCacheTTL: 5 * time.Minute, LDAPRecheck: 15 * time.Minute}
			},
		},
	}
	// The LDAP settings exclude one another in pairs (ldaps:// or
	// StartTLS, a service account or a DN template, GROUP or ATTRIBUTE):
	// two cases give each its variable.
	tests = append(tests, struct {
		name string
		args []string
		env  map[string]string
		want func(*Config)
	}{
		name: "every LDAP setting of search-then-bind in GROUP mode has a variable",
		env: map[string]string{
			"WARDEN_LDAP_URL": "ldap://dir:389", "WARDEN_LDAP_START_TLS": "true", "WARDEN_LDAP_CA_FILE": "dir-ca.pem",
			"WARDEN_LDAP_BASE_DN": "ou=people,dc=example,dc=org", "WARDEN_LDAP_FILTER": "(&(objectClass=person)(cn={username}))",
			"WARDEN_LDAP_USERNAME_ATTRIBUTE": "cn", "WARDEN_LDAP_BIND_DN": "cn=warden,dc=example,dc=org", "WARDEN_LDAP_BIND_PASSWORD": "bind-pw",
			"WARDEN_LDAP_MODE": "GROUP", "WARDEN_LDAP_GROUP_BASE_DN": "ou=groups,dc=example,dc=org", "WARDEN_LDAP_GROUP_FILTER": "(uniqueMember={dn})",
			"WARDEN_LDAP_TIMEOUT": "2s", "WARDEN_LDAP_CACHE_TTL": "1m", "WARDEN_LDAP_RECHECK": "30m",
		},
		want: func(c *Config) {
			c.LDAPURL, c.LDAPStartTLS, c.LDAPCAFile = "ldap://dir:389", true, "dir-ca.pem"
			c.LDAPBaseDN, c.LDAPFilter, c.LDAPUsernameAttribute = "ou=people,dc=example,dc=org", "(&(objectClass=person)(cn={username}))", "cn"
			c.LDAPBindDN, c.LDAPBindPassword = "cn=warden,dc=example,dc=org", "bind-pw"
			c.LDAPMode, c.LDAPGroupBaseDN, c.LDAPGroupFilter = "GROUP", "ou=groups,dc=example,dc=org", "(uniqueMember={dn})"
			c.LDAPTimeout, c.LDAPCacheTTL, c.LDAPRecheck = 2*time.Second, time.Minute, 30*time.Minute
		},
	}, struct {
		name string
		args []string
		env  map[string]string
		want func(*Config)
	}{
		name: "every LDAP setting of a direct bind in ATTRIBUTE mode has a variable",
		env: map[string]string{
			"WARDEN_LDAP_URL": "ldap://dir:389", "WARDEN_LDAP_INSECURE": "true", "WARDEN_LDAP_BASE_DN": "dc=example,dc=org",
			"WARDEN_LDAP_MODE": "ATTRIBUTE", "WARDEN_LDAP_ROLE_ATTRIBUTE": "employeeType",
			"WARDEN_LDAP_BIND_DN_TEMPLATE": "uid={username},ou=people,dc=example,dc=org",
		},
		want: func(c *Config) {
			c.LDAPURL, c.LDAPInsecure, c.LDAPBaseDN = "ldap://dir:389", true, "dc=example,dc=org"
			c.LDAPBindDNTemplate, c.LDAPMode, c.LDAPRoleAttribute = "uid={username},ou=people,dc=example,dc=org", "ATTRIBUTE", "employeeType"
		},
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := loadConfig(tt.args, env(tt.env))
			if err != nil {
				t.Fatalf("loadConfig: %v", err)
			}
			want := defaultConfig()
			tt.want(&want)
			if got != want {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestLoadConfigAdminPasswordFromEnvAndFlag(t *testing.T) {
	t.Parallel()
	pEnv := validPassword(t)
	pFlag := validPassword(t)
	got, err := loadConfig(nil, env(map[string]string{"WARDEN_ADMIN_PASSWORD": pEnv}))
	if err != nil || got.AdminPassword != pEnv {
		t.Fatalf("env: got err %v, password taken: %v", err, got.AdminPassword == pEnv)
	}
	got, err = loadConfig([]string{"--admin-password", pFlag}, env(map[string]string{"WARDEN_ADMIN_PASSWORD": pEnv}))
	if err != nil || got.AdminPassword != pFlag {
		t.Fatalf("flag: got err %v, flag password taken: %v", err, got.AdminPassword == pFlag)
	}
}

func TestLoadConfigRejectsBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"an unknown flag", []string{"--nope"}, nil, "unknown flag --nope"},
		{"a bad duration flag", []string{"--shutdown-timeout", "soon"}, nil, "shutdown-timeout"},
		{"a bad duration variable names the variable", nil, map[string]string{"WARDEN_SHUTDOWN_TIMEOUT": "soon"}, "WARDEN_SHUTDOWN_TIMEOUT"},
		{"a positional argument", []string{"serve"}, nil, `unexpected argument "serve"`},
		{"a non-positive shutdown timeout", []string{"--shutdown-timeout=0s"}, nil, "must be positive"},
		{"an empty audit log", []string{"--audit-log="}, nil, `--audit-log (WARDEN_AUDIT_LOG): empty: want "stderr", "stdout", "off" or a file path`},
		{"trusted devices for no day", []string{"--mfa-trusted-device-days=0"}, nil, "--mfa-trusted-device-days (WARDEN_MFA_TRUSTED_DEVICE_DAYS): must be from 1 to 365"},
		{"trusted devices for over a year", nil, map[string]string{"WARDEN_MFA_TRUSTED_DEVICE_DAYS": "366"}, "must be from 1 to 365, got 366"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(tt.args, env(tt.env))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestLoadConfigHelpReturnsErrHelp(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"--help", "-h", "-help"} {
		if _, err := loadConfig([]string{arg}, env(nil)); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s: got %v, want flag.ErrHelp", arg, err)
		}
	}
}

func TestValidateReportsEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	weak := "a"
	if credential.DefaultPolicy().Check(weak) == nil {
		t.Fatalf("test assumption broken: %q satisfies the default policy", weak)
	}
	c := defaultConfig()
	c.LogLevel = "loud"
	c.TLSCert = "server.pem"         // without a key
	c.RedisURL = "http://redis:6379" // wrong scheme
	c.MQTTAddr = "1883"              // no colon
	c.HTTPAddr = "localhost:http"    // not a numeric port
	c.AdminPassword = weak
	c.ShutdownTimeout = -time.Second

	err := c.Validate()
	if err == nil {
		t.Fatal("Validate accepted a broken config")
	}
	msg := err.Error()
	for _, want := range []string{
		"--log-level (WARDEN_LOG_LEVEL)",
		"--tls-key (WARDEN_TLS_KEY): missing",
		"--redis-url (WARDEN_REDIS_URL): scheme must be redis:// or rediss://",
		"--mqtt-addr (WARDEN_MQTT_ADDR)",
		"--http-addr (WARDEN_HTTP_ADDR)",
		"--admin-password (WARDEN_ADMIN_PASSWORD): does not satisfy the password policy",
		"--shutdown-timeout (WARDEN_SHUTDOWN_TIMEOUT)",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q; got:\n%s", want, msg)
		}
	}
	if n := strings.Count(msg, "\n") + 1; n != 7 {
		t.Errorf("got %d problems, want 7:\n%s", n, msg)
	}
}

func TestValidateNeverQuotesTheAdminPassword(t *testing.T) {
	t.Parallel()
	// Short enough to fail any sane policy, distinctive enough to find.
	secret := "Zq9"
	c := defaultConfig()
	c.AdminPassword = secret
	err := c.Validate()
	if err == nil {
		t.Fatal("a 3-character admin password passed validation")
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("error quotes the admin password: %v", err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		change  func(*Config)
		wantErr string // empty: valid
	}{
		{"the defaults are valid", func(*Config) {}, ""},
		{"port 0 is valid", func(c *Config) { c.MQTTAddr = "127.0.0.1:0"; c.HTTPAddr = "[::1]:0" }, ""},
		{"a key without a certificate", func(c *Config) { c.TLSKey = "k.pem" }, "--tls-cert (WARDEN_TLS_CERT): missing"},
		{"a certificate with its key", func(c *Config) { c.TLSCert = "c.pem"; c.TLSKey = "k.pem" }, ""},
		{"a port out of range", func(c *Config) { c.WSAddr = ":70000" }, "--ws-addr"},
		{"an empty data dir with the embedded store", func(c *Config) { c.DataDir = "" }, "--data-dir (WARDEN_DATA_DIR): empty"},
		{"an empty data dir with Redis", func(c *Config) { c.DataDir = ""; c.RedisURL = "redis://localhost:6379/0" }, ""},
		{"rediss is accepted", func(c *Config) { c.RedisURL = "rediss://user:pw@localhost:6380/2" }, ""},
		{"a redis URL without a host", func(c *Config) { c.RedisURL = "redis:///0" }, "no host"},
		{"an unparsable redis URL", func(c *Config) { c.RedisURL = "redis://h:port:x/%zz" }, "not a valid URL"},
		{"a node ID", func(c *Config) { c.NodeID = "edge-1.plant_2" }, ""},
		{"a node ID with a slash", func(c *Config) { c.NodeID = "edge/1" }, "--node-id (WARDEN_NODE_ID): node ID \"edge/1\": only ASCII letters"},
		{"a node ID over 64 characters", func(c *Config) { c.NodeID = strings.Repeat("n", 65) }, "--node-id (WARDEN_NODE_ID): node ID must be 1 to 64 characters"},
		{"no MQTT listener at all", func(c *Config) { c.MQTTAddr = "" }, "no MQTT listener"},
		{"only a WebSocket listener", func(c *Config) { c.MQTTAddr = ""; c.WSAddr = ":8083" }, ""},
		{"log levels ignore case", func(c *Config) { c.LogLevel = "DEBUG" }, ""},
		{"a restore limit of 0", func(c *Config) { c.RestoreMaxSize = 0 }, "--restore-max-size (WARDEN_RESTORE_MAX_SIZE): must be from 1"},
		{"pprof on 127.0.0.1", func(c *Config) { c.PprofAddr = "127.0.0.1:6060" }, ""},
		{"pprof anywhere in 127.0.0.0/8", func(c *Config) { c.PprofAddr = "127.1.2.3:0" }, ""},
		{"pprof on ::1", func(c *Config) { c.PprofAddr = "[::1]:6060" }, ""},
		{"pprof on localhost, any case", func(c *Config) { c.PprofAddr = "LocalHost:6060" }, ""},
		{"pprof on every interface", func(c *Config) { c.PprofAddr = ":6060" }, "--pprof-addr (WARDEN_PPROF_ADDR): \":6060\" listens on every interface"},
		{"pprof on 0.0.0.0", func(c *Config) { c.PprofAddr = "0.0.0.0:6060" }, "--pprof-addr (WARDEN_PPROF_ADDR): \"0.0.0.0:6060\" is not a loopback address"},
		{"pprof on [::]", func(c *Config) { c.PprofAddr = "[::]:6060" }, "is not a loopback address"},
		{"pprof on a LAN address", func(c *Config) { c.PprofAddr = "192.168.1.10:6060" }, "is not a loopback address"},
		{"pprof on a host name other than localhost", func(c *Config) { c.PprofAddr = "warden.example.com:6060" }, "is not a loopback address"},
		{"pprof on localhost's look-alike", func(c *Config) { c.PprofAddr = "localhost.example.com:6060" }, "is not a loopback address"},
		{"memory return off", func(c *Config) { c.MemoryReturnInterval = 0 }, ""},
		{"memory return every second", func(c *Config) { c.MemoryReturnInterval = time.Second }, ""},
		{"memory return negative", func(c *Config) { c.MemoryReturnInterval = -time.Second }, "--memory-return-interval (WARDEN_MEMORY_RETURN_INTERVAL): -1s: want 0 (off) or at least 100ms"},
		{"memory return too often", func(c *Config) { c.MemoryReturnInterval = time.Millisecond }, "--memory-return-interval (WARDEN_MEMORY_RETURN_INTERVAL): 1ms"},
		{"pprof without a port", func(c *Config) { c.PprofAddr = "127.0.0.1" }, "--pprof-addr (WARDEN_PPROF_ADDR): \"127.0.0.1\" is not host:port"},
		{"a restore limit over the format's ceiling", func(c *Config) { c.RestoreMaxSize = 1<<30 + 1 }, "--restore-max-size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := defaultConfig()
			tt.change(&c)
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("got %v, want valid", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestValidateWebhooks: the broker webhooks' settings, each problem named
// with its flag and variable, never quoting a key, a secret or an API URL
// (which may hold credentials).
func TestValidateWebhooks(t *testing.T) {
	t.Parallel()
	const secret = "s3cret-API-key"
	withTLS := func(c *Config) { c.HTTPTLS = true }
	for _, c := range []struct {
		name string
		set  func(c *Config)
		want string // "": valid
	}{
		{"off by default", func(c *Config) {}, ""},
		{"a client CA with the admin API over TLS", func(c *Config) { withTLS(c); c.WebhookClientCA = "broker-ca.pem" }, ""},
		{"a client CA with an admin certificate", func(c *Config) {
			c.HTTPTLSCert, c.HTTPTLSKey, c.WebhookClientCA = "h.pem", "hk.pem", "broker-ca.pem"
		}, ""},
		{"a client CA over plain HTTP", func(c *Config) { c.WebhookClientCA = "broker-ca.pem" },
			"--webhook-client-ca (WARDEN_WEBHOOK_CLIENT_CA): needs the admin API over TLS, which carries the client certificate: set --http-tls"},
		{"a client CA without the admin API", func(c *Config) { withTLS(c); c.HTTPAddr = ""; c.WebhookClientCA = "broker-ca.pem" },
			"--webhook-client-ca (WARDEN_WEBHOOK_CLIENT_CA): set, but --http-addr is empty"},
		{"a cache of a minute", func(c *Config) { c.WebhookCacheMaxAge = time.Minute }, ""},
		{"a negative cache", func(c *Config) { c.WebhookCacheMaxAge = -time.Second }, "--webhook-cache-max-age (WARDEN_WEBHOOK_CACHE_MAX_AGE): must be 0 or whole seconds"},
		{"a cache in milliseconds", func(c *Config) { c.WebhookCacheMaxAge = 1500 * time.Millisecond }, "--webhook-cache-max-age"},
		{"a cache over a day", func(c *Config) { c.WebhookCacheMaxAge = 25 * time.Hour }, "up to 24h0m0s, got 25h0m0s"},
		{"VerneMQ's API with its key", func(c *Config) { c.VerneMQAPIURL, c.VerneMQAPIKey = "http://vernemq:8888", secret }, ""},
		{"VerneMQ's API without a key", func(c *Config) { c.VerneMQAPIURL = "http://vernemq:8888" },
			"--vernemq-api-key (WARDEN_VERNEMQ_API_KEY): required with --vernemq-api-url"},
		{"a VerneMQ key without the API", func(c *Config) { c.VerneMQAPIKey = secret },
			"--vernemq-api-key (WARDEN_VERNEMQ_API_KEY): set, but --vernemq-api-url is empty"},
		{"VerneMQ's API without the admin API", func(c *Config) { c.HTTPAddr = ""; c.VerneMQAPIURL, c.VerneMQAPIKey = "http://vernemq:8888", secret },
			"--vernemq-api-url (WARDEN_VERNEMQ_API_URL): set, but --http-addr is empty"},
		{"credentials in VerneMQ's URL", func(c *Config) { c.VerneMQAPIURL, c.VerneMQAPIKey = "http://u:"+secret+"@vernemq:8888", secret },
			"--vernemq-api-url (WARDEN_VERNEMQ_API_URL): holds credentials"},
		{"a VerneMQ URL of another scheme", func(c *Config) { c.VerneMQAPIURL, c.VerneMQAPIKey = "vernemq:8888", secret },
			"scheme must be http:// or https:// (want http://vernemq:8888)"},
		{"a VerneMQ URL without host", func(c *Config) { c.VerneMQAPIURL, c.VerneMQAPIKey = "http:///api", secret }, "no host"},
		{"a VerneMQ URL with a query", func(c *Config) { c.VerneMQAPIURL, c.VerneMQAPIKey = "http://vernemq:8888/?key="+secret, secret }, "holds a query"},
		{"EMQX's API with key and secret", func(c *Config) {
			c.EMQXAPIURL, c.EMQXAPIKey, c.EMQXAPISecret = "https://emqx:18084", "key-id", secret
		}, ""},
		{"EMQX's API without a secret", func(c *Config) { c.EMQXAPIURL, c.EMQXAPIKey = "https://emqx:18084", "key-id" },
			"--emqx-api-secret (WARDEN_EMQX_API_SECRET): required with --emqx-api-url"},
		{"EMQX's API without a key", func(c *Config) { c.EMQXAPIURL, c.EMQXAPISecret = "https://emqx:18084", secret },
			"--emqx-api-key (WARDEN_EMQX_API_KEY): required with --emqx-api-url"},
		{"an EMQX secret without the API", func(c *Config) { c.EMQXAPISecret = secret },
			"--emqx-api-secret (WARDEN_EMQX_API_SECRET): set, but --emqx-api-url is empty"},
		{"an unparsable EMQX URL", func(c *Config) {
			c.EMQXAPIURL, c.EMQXAPIKey, c.EMQXAPISecret = "http://emqx:port:x/%zz"+secret, "k", secret
		},
			"--emqx-api-url (WARDEN_EMQX_API_URL): not a valid URL"},
	} {
		t.Run(c.name, func(t *testing.T) { t.Parallel(); checkValidate(t, c.set, c.want, secret) })
	}
}

// checkValidate validates the defaults changed by set: valid when want is
// empty, else an error containing want; never one quoting secret.
func checkValidate(t *testing.T, set func(*Config), want, secret string) {
	t.Helper()
	cfg := defaultConfig()
	set(&cfg)
	err := cfg.Validate()
	switch {
	case want == "" && err != nil:
		t.Errorf("Validate: %v, want nil", err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Errorf("Validate: %v, want %q", err, want)
	case err != nil && strings.Contains(err.Error(), secret):
		t.Errorf("the error quotes a secret: %v", err)
	}
}

func TestValidateRedisURLErrorHidesThePassword(t *testing.T) {
	t.Parallel()
	c := defaultConfig()
	c.RedisURL = "http://user:s3cretPW@redis:6379"
	err := c.Validate()
	if err == nil || strings.Contains(err.Error(), "s3cretPW") {
		t.Fatalf("got %v, want an error without the URL's password", err)
	}
}

func TestHelpListsEveryFlagWithItsVariableAndDefault(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	code := run(t.Context(), []string{"--help"}, env(nil), &out)
	if code != exitOK {
		t.Fatalf("exit code %d, want 0", code)
	}
	help := out.String()
	want := []struct{ flag, env, def string }{
		{"--mqtt-addr", "WARDEN_MQTT_ADDR", `":1883"`},
		{"--mqtts-addr", "WARDEN_MQTTS_ADDR", "empty"},
		{"--ws-addr", "WARDEN_WS_ADDR", "empty"},
		{"--http-addr", "WARDEN_HTTP_ADDR", `":8080"`},
		{"--web-ui", "WARDEN_WEB_UI", `"true"`},
		{"--data-dir", "WARDEN_DATA_DIR", `"./data"`},
		{"--redis-url", "WARDEN_REDIS_URL", "empty"},
		{"--node-id", "WARDEN_NODE_ID", "empty"},
		{"--admin-password", "WARDEN_ADMIN_PASSWORD", "empty"},
		{"--tls-cert", "WARDEN_TLS_CERT", "empty"},
		{"--tls-key", "WARDEN_TLS_KEY", "empty"},
		{"--client-ca", "WARDEN_CLIENT_CA", "empty"},
		{"--tls-hosts", "WARDEN_TLS_HOSTS", "empty"},
		{"--ws-tls", "WARDEN_WS_TLS", `"false"`},
		{"--ws-allowed-origins", "WARDEN_WS_ALLOWED_ORIGINS", "empty"},
		{"--http-tls", "WARDEN_HTTP_TLS", `"false"`},
		{"--http-tls-cert", "WARDEN_HTTP_TLS_CERT", "empty"},
		{"--http-tls-key", "WARDEN_HTTP_TLS_KEY", "empty"},
		{"--connect-timeout", "WARDEN_CONNECT_TIMEOUT", `"10s"`},
		{"--auth-max-failures-user", "WARDEN_AUTH_MAX_FAILURES_USER", `"10"`},
		{"--auth-max-failures-user-total", "WARDEN_AUTH_MAX_FAILURES_USER_TOTAL", `"100"`},
		{"--auth-max-failures-ip", "WARDEN_AUTH_MAX_FAILURES_IP", `"100"`},
		{"--auth-failure-window", "WARDEN_AUTH_FAILURE_WINDOW", `"5m"`},
		{"--auth-backoff", "WARDEN_AUTH_BACKOFF", `"5m"`},
		{"--mqtt-max-session-expiry", "WARDEN_MQTT_MAX_SESSION_EXPIRY", `"24h"`},
		{"--mqtt-max-offline-sessions", "WARDEN_MQTT_MAX_OFFLINE_SESSIONS", `"10"`},
		{"--mqtt-max-queued-messages", "WARDEN_MQTT_MAX_QUEUED_MESSAGES", `"1000"`},
		{"--mqtt-max-topic-levels", "WARDEN_MQTT_MAX_TOPIC_LEVELS", `"128"`},
		{"--mqtt-max-topic-length", "WARDEN_MQTT_MAX_TOPIC_LENGTH", `"65535"`},
		{"--auth-verify-workers", "WARDEN_AUTH_VERIFY_WORKERS", `"0"`},
		{"--mqtt-max-pending-writes", "WARDEN_MQTT_MAX_PENDING_WRITES", `"1024"`},
		{"--mqtt-max-packet-size", "WARDEN_MQTT_MAX_PACKET_SIZE", `"1048576"`},
		{"--mqtt-max-connections", "WARDEN_MQTT_MAX_CONNECTIONS", `"0"`},
		{"--mqtt-max-keepalive", "WARDEN_MQTT_MAX_KEEPALIVE", `"1h"`},
		{"--registry-max-open", "WARDEN_REGISTRY_MAX_OPEN", `"1h"`},
		{"--registry-auto-grant-roles", "WARDEN_REGISTRY_AUTO_GRANT_ROLES", "empty"},
		{"--client-cert-validity", "WARDEN_CLIENT_CERT_VALIDITY", `"8760h"`},
		{"--mfa", "WARDEN_MFA", `"true"`},
		{"--mfa-trusted-device-days", "WARDEN_MFA_TRUSTED_DEVICE_DAYS", `"30"`},
		{"--mfa-mqtt-password", "WARDEN_MFA_MQTT_PASSWORD", `"false"`},
		{"--log-level", "WARDEN_LOG_LEVEL", `"info"`},
		{"--shutdown-timeout", "WARDEN_SHUTDOWN_TIMEOUT", `"10s"`},
		{"--audit-log", "WARDEN_AUDIT_LOG", `"stderr"`},
		{"--restore-max-size", "WARDEN_RESTORE_MAX_SIZE", `"268435456"`},
		{"--nats-url", "WARDEN_NATS_URL", "empty"},
		{"--nats-user", "WARDEN_NATS_USER", `"warden"`},
		{"--nats-password", "WARDEN_NATS_PASSWORD", "empty"},
		{"--nats-jwt-expiry", "WARDEN_NATS_JWT_EXPIRY", `"24h"`},
		{"--webhook-client-ca", "WARDEN_WEBHOOK_CLIENT_CA", "empty"},
		{"--webhook-cache-max-age", "WARDEN_WEBHOOK_CACHE_MAX_AGE", `"0s"`},
		{"--vernemq-api-url", "WARDEN_VERNEMQ_API_URL", "empty"},
		{"--vernemq-api-key", "WARDEN_VERNEMQ_API_KEY", "empty"},
		{"--emqx-api-url", "WARDEN_EMQX_API_URL", "empty"},
		{"--emqx-api-key", "WARDEN_EMQX_API_KEY", "empty"},
		{"--emqx-api-secret", "WARDEN_EMQX_API_SECRET", "empty"},
		{"--ldap-url", "WARDEN_LDAP_URL", "empty"},
		{"--ldap-start-tls", "WARDEN_LDAP_START_TLS", `"false"`},
		{"--ldap-ca-file", "WARDEN_LDAP_CA_FILE", "empty"},
		{"--ldap-insecure", "WARDEN_LDAP_INSECURE", `"false"`},
		{"--ldap-base-dn", "WARDEN_LDAP_BASE_DN", "empty"},
		{"--ldap-filter", "WARDEN_LDAP_FILTER", `"(uid={username})"`},
		{"--ldap-username-attribute", "WARDEN_LDAP_USERNAME_ATTRIBUTE", `"uid"`},
		{"--ldap-bind-dn", "WARDEN_LDAP_BIND_DN", "empty"},
		{"--ldap-bind-password", "WARDEN_LDAP_BIND_PASSWORD", "empty"},
		{"--ldap-bind-dn-template", "WARDEN_LDAP_BIND_DN_TEMPLATE", "empty"},
		{"--ldap-mode", "WARDEN_LDAP_MODE", `"GROUP"`},
		{"--ldap-group-base-dn", "WARDEN_LDAP_GROUP_BASE_DN", "empty"},
		{"--ldap-group-filter", "WARDEN_LDAP_GROUP_FILTER", `"(member={dn})"`},
		{"--ldap-role-attribute", "WARDEN_LDAP_ROLE_ATTRIBUTE", "empty"},
		{"--ldap-timeout", "WARDEN_LDAP_TIMEOUT", `"5s"`},
		{"--ldap-cache-ttl", "WARDEN_LDAP_CACHE_TTL", `"5m"`},
		{"--ldap-recheck", "WARDEN_LDAP_RECHECK", `"15m"`},
		{"--pprof-addr", "WARDEN_PPROF_ADDR", "empty"},
		{"--memory-return-interval", "WARDEN_MEMORY_RETURN_INTERVAL", `"5s"`},
		{"--insecure-no-auth", "WARDEN_INSECURE_NO_AUTH", `"false"`},
	}
	for _, w := range want {
		if !strings.Contains(help, "  "+w.flag+" ") {
			t.Errorf("help lacks flag %s", w.flag)
		}
		if !strings.Contains(help, "env "+w.env+", default "+w.def+"\n") {
			t.Errorf("help lacks %q with default %s", w.env, w.def)
		}
	}
	if len(want) != len(options) {
		t.Errorf("test covers %d options, config has %d", len(want), len(options))
	}
}

func TestRunExitsTwoOnConfigErrors(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	code := run(t.Context(), []string{"--log-level", "loud", "--tls-cert", "c.pem"}, env(nil), &out)
	if code != exitConfig {
		t.Fatalf("exit code %d, want %d; output:\n%s", code, exitConfig, out.String())
	}
	for _, want := range []string{"invalid configuration", "--log-level", "--tls-key", "warden --help"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// validPassword returns a fresh password that satisfies the default policy.
func validPassword(t *testing.T) string {
	t.Helper()
	p, err := credential.Generate(credential.DefaultPolicy(), 20)
	if err != nil {
		t.Fatalf("generate password: %v", err)
	}
	return p
}
