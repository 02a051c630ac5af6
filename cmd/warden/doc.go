// Command warden runs the warden MQTT broker auth sidecar: an embedded MQTT
// broker whose every connect, subscribe, publish and delivery is decided
// against warden's permission model, and the admin HTTP API that manages it.
//
// This package is the binary only: configuration (flags with environment
// fallbacks), logging, opening the store, first-start bootstrap, wiring
// and signals. Logic lives in the packages it wires; nothing here decides
// access.
//
// Usage:
//
//	warden [flags]
//	warden backup --out FILE [--include-keys]
//	warden restore FILE
//	warden user add NAME --role ROLE [--password-stdin] [--reset-mfa]
//	warden healthcheck [URL]
//	warden version (or --version)
//	warden help (or --help)
//
// The commands (commands.go) work on the store --data-dir or --redis-url
// selects, offline for the embedded store (its file is locked while
// warden runs): backup and restore of the whole model as an archive
// (store/archive.go), and recovery of an admin who cannot log in.
//
// Every flag has an environment variable; a flag beats its variable, the
// variable beats the default:
//
//	--mqtt-addr         WARDEN_MQTT_ADDR         ":1883"
//	--mqtts-addr        WARDEN_MQTTS_ADDR        off
//	--ws-addr           WARDEN_WS_ADDR           off
//	--http-addr         WARDEN_HTTP_ADDR         ":8080"
//	--data-dir          WARDEN_DATA_DIR          "./data"
//	--redis-url         WARDEN_REDIS_URL         empty: embedded store in --data-dir
//	--admin-password    WARDEN_ADMIN_PASSWORD    empty: generated and logged once
//	--tls-cert          WARDEN_TLS_CERT          empty: issued by the internal CA
//	--tls-key           WARDEN_TLS_KEY           empty
//	--client-ca         WARDEN_CLIENT_CA         empty: internal CA and /api/certificates
//	--log-level         WARDEN_LOG_LEVEL         "info"
//	--shutdown-timeout  WARDEN_SHUTDOWN_TIMEOUT  "10s"
//
// `warden --help` prints the full descriptions.
//
// On the first start against an empty store warden creates the built-in
// roles connectware-admin and minimum-access and the user admin holding
// connectware-admin. Without --admin-password the admin's password is
// generated and logged once, at WARN ("generated admin password; ...").
// Later starts never change these records, whatever --admin-password says.
// Every listener is bound before the store is opened, so a port in use
// fails the start before the admin exists; and while a generated password
// has not been used (no token issued to the admin, password unchanged),
// every later start logs at WARN how to get one (adminhint.go).
//
// Logs are slog text lines on stderr, go-redis's own lines included
// (rate-limited, store.SetRedisLogger). warden stops on SIGINT or SIGTERM.
// Exit status: 0 after a clean shutdown, 1 when startup or shutdown fails
// (for example the store file is in use by another process, or Redis is
// unreachable), 2 when the configuration is invalid.
package main
