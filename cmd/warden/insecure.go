package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"log/slog"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/warden-mqtt/warden/broker"
)

// insecureWarning is logged at start and beside every listener address
// when --insecure-no-auth is set, so nobody misses it in a log.
const insecureWarning = "INSECURE: --insecure-no-auth is set: every client may connect, publish and subscribe without credentials; for benchmarks only"

// startInsecureBroker starts the embedded broker with an allow-all hook in
// place of warden's auth hook (--insecure-no-auth). It exists so
// scripts/bench-compare.sh can measure what authentication and
// authorization cost on the same broker build and settings.
func startInsecureBroker(cfg Config, socks *sockets, tlsCfg *tls.Config, log *slog.Logger, brokerLog *slog.Logger) (*broker.Broker, error) {
	log.Warn(insecureWarning)
	// allowAll is the only auth and ACL hook here, so broker.New's rule
	// (exactly one OnConnectAuthenticate provider) holds.
	b, err := broker.New(brokerConfig(cfg, socks, tlsCfg, brokerLog), &allowAll{})
	if err != nil {
		return nil, fmt.Errorf("insecure broker: %w", err)
	}
	if err := b.Start(); err != nil {
		_ = b.Close()
		return nil, err
	}
	for _, l := range []struct{ id, name string }{{broker.ListenerTCP, "mqtt"}, {broker.ListenerTLS, "mqtts"}, {broker.ListenerWS, "ws"}} {
		if a := b.Addr(l.id); a != "" {
			log.Info("listening", "listener", l.name, "addr", a)
			log.Warn(insecureWarning, "listener", l.name, "addr", a)
		}
	}
	return b, nil
}

// allowAll is Mochi's auth.AllowHook (hooks/auth/allow_all.go, v2.7.9),
// line for line. It is copied rather than imported because that package
// also holds Mochi's ledger hook, which would pull gopkg.in/yaml.v3 into
// the binary for a benchmark switch.
type allowAll struct {
	mqtt.HookBase
}

// ID names the hook in Mochi's logs, as auth.AllowHook does.
func (h *allowAll) ID() string { return "allow-all-auth" }

// Provides claims the two auth callbacks, so Mochi asks this hook.
func (h *allowAll) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck}, []byte{b})
}

// OnConnectAuthenticate allows every CONNECT.
func (h *allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

// OnACLCheck allows every publish, subscribe and delivery.
func (h *allowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }
