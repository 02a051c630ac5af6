package main

import (
	"bytes"
	"context"
	"fmt"

	"github.com/warden-mqtt/warden/natscallout"
)

// natsConfigUsage is the nats-config part of the Commands help.
const natsConfigUsage = `  warden nats-config [--nats-user NAME] [--nats-password PASSWORD]
        print, on stdout, the NATS server configuration every node of a
        NATS cluster includes so that warden answers its auth callouts:
        the accounts AUTH (warden's user), MQTT (where admitted clients
        land; JetStream on, as NATS's MQTT needs) and SYS (the system
        account, with warden's system user), and the auth_callout block
        with warden's issuer key, created in the store if it has none.
        With --nats-password (or WARDEN_NATS_PASSWORD) the password is
        printed as its bcrypt hash; without, as $WARDEN_NATS_PASSWORD,
        which each nats-server then reads from its environment.
`

// natsConfigCommand is `warden nats-config`.
func natsConfigCommand(ctx context.Context, args []string, env commandEnv) int {
	const synopsis = "warden nats-config [--nats-user NAME] [--nats-password PASSWORD] [--data-dir DIR | --redis-url URL]"
	cf := newCommandFlags("nats-config", env)
	for _, o := range options {
		if o.flag == "nats-user" || o.flag == "nats-password" {
			o.bind(cf.FlagSet, &cf.cfg, o)
		}
	}
	if _, exit := cf.parse(args, 0, synopsis); exit >= 0 {
		return exit
	}
	if err := natscallout.CheckUser(cf.cfg.NATSUser); err != nil {
		return cf.usageError(synopsis, "--nats-user (WARDEN_NATS_USER): %v", err)
	}
	s, kind, ok := cf.open(ctx)
	if !ok {
		return exitFail
	}
	defer s.Close()
	issuer, err := natscallout.LoadIssuer(ctx, s)
	if err != nil {
		return cf.failed("%v", err)
	}
	pub, err := issuer.PublicKey()
	if err != nil {
		return cf.failed("%v", err)
	}
	// Written whole or not at all: a half-printed file would pass for a
	// configuration.
	var out bytes.Buffer
	if err := natscallout.WriteServerConfig(&out, natscallout.ServerConfig{Issuer: pub, User: cf.cfg.NATSUser, Password: cf.cfg.NATSPassword}); err != nil {
		return cf.failed("%v", err)
	}
	if _, err := env.stdout.Write(out.Bytes()); err != nil {
		return cf.failed("%v", err)
	}
	password := "the bcrypt hash of --nats-password (WARDEN_NATS_PASSWORD)"
	if cf.cfg.NATSPassword == "" {
		password = "$" + natscallout.PasswordEnv + ", so set " + natscallout.PasswordEnv + " in every nats-server's environment"
	}
	fmt.Fprintf(env.stderr, "warden nats-config: NATS configuration for the callout issuer %s of %s printed; users %s and %s%s, password %s\n",
		pub, cf.where(kind), cf.cfg.NATSUser, cf.cfg.NATSUser, natscallout.SystemUserSuffix, password)
	return exitOK
}
