package natscallout

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"text/template"

	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"
)

// The accounts of the NATS configuration warden nats-config prints. The
// callout responder places admitted clients in MQTTAccount (the audience
// of the user JWTs it signs), so the names are shared here rather than
// configured twice.
const (
	// AuthAccount holds warden's auth user; the servers send their
	// callout requests into it.
	AuthAccount = "AUTH"
	// MQTTAccount is where MQTT (and plain NATS) clients land once warden
	// admits them. JetStream is enabled in it because NATS's MQTT
	// listener keeps sessions, QoS 1/2 and retained messages in streams
	// of the client's account.
	MQTTAccount = "MQTT"
	// SystemAccount is the servers' system account. Warden's system user
	// is there to send the servers' kick requests
	// ($SYS.REQ.SERVER.<id>.KICK), which only the system account may.
	SystemAccount = "SYS"
)

// SystemUserSuffix names warden's system user after its auth user
// ("warden" and "warden-system"): NATS users of one configuration need
// distinct names, and both bypass the callout (auth_users).
const SystemUserSuffix = "-system"

// PasswordEnv is the environment variable the printed configuration
// refers to when no password is given: NATS resolves "$NAME" from the
// server's environment when the configuration defines no such variable,
// so the secret stays out of the file. warden reads the same variable.
const PasswordEnv = "WARDEN_NATS_PASSWORD"

// ErrServerConfig is wrapped by every problem WriteServerConfig finds in
// its input.
var ErrServerConfig = errors.New("natscallout: invalid server configuration input")

// bcryptCost is the cost nats-server's own password tool (nats server
// passwd) uses; the auth users log in rarely, so a slow check costs
// nothing that matters.
const bcryptCost = 11

// userName is what a NATS user name in the printed configuration may be:
// plain enough to need no quoting rules of NATS's configuration language.
var userName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// CheckUser reports whether name can be warden's NATS user: a name the
// printed configuration needs no quoting for, short enough that its
// system user's name (SystemUserSuffix) is too.
func CheckUser(name string) error {
	if !userName.MatchString(name) {
		return fmt.Errorf("user name %q: use 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit", name)
	}
	return nil
}

// ServerConfig is the input of the NATS server configuration part that
// every NATS node includes.
type ServerConfig struct {
	// Issuer is the public key of the callout issuer (LoadIssuer): the
	// servers accept callout answers signed by it alone.
	Issuer string
	// User is the name warden connects with; its system user is User +
	// SystemUserSuffix.
	User string
	// Password, when set, is printed as a bcrypt hash (NATS checks bcrypt
	// passwords natively), never in the clear. Empty: the configuration
	// refers to $WARDEN_NATS_PASSWORD in each NATS server's environment.
	Password string
}

// serverConfigTemplate is the NATS configuration text (the format of
// nats-server's configuration files: https://docs.nats.io/running-a-nats-service/configuration).
// Names are checked by userName, so they need no quoting.
var serverConfigTemplate = template.Must(template.New("nats").Parse(`# NATS auth callout configuration for warden (warden nats-config).
# Include it in every NATS server's configuration: include "warden.conf"
# Every client connection, MQTT included, is decided by warden, except
# warden's own users below. Admitted clients land in the account {{.MQTT}}.
{{- if not .Hashed}}
# The password is read from the environment variable {{.Env}}
# of each nats-server process: set it to warden's --nats-password.
{{- end}}
accounts {
  {{.Auth}} {
    users: [ { user: {{.User}}, password: {{.Password}} } ]
  }
  {{.MQTT}} {
    # NATS's MQTT listener keeps sessions and retained messages in JetStream.
    jetstream: enabled
  }
  {{.Sys}} {
    users: [ { user: {{.SysUser}}, password: {{.Password}} } ]
  }
}
system_account: {{.Sys}}

authorization {
  auth_callout {
    # warden's callout issuer (account public key, kept in warden's store)
    issuer: {{.Issuer}}
    auth_users: [ {{.User}}, {{.SysUser}} ]
    account: {{.Auth}}
  }
}
`))

// WriteServerConfig writes the part of a NATS server configuration every
// NATS node includes for warden to answer its auth callouts: the auth
// account with warden's user, the account clients land in (JetStream on,
// for MQTT), the system account with warden's system user, and the
// auth_callout block naming warden's issuer.
func WriteServerConfig(w io.Writer, c ServerConfig) error {
	if !nkeys.IsValidPublicAccountKey(c.Issuer) {
		return fmt.Errorf("%w: the issuer %q is not an account public key", ErrServerConfig, c.Issuer)
	}
	if err := CheckUser(c.User); err != nil {
		return fmt.Errorf("%w: %w", ErrServerConfig, err)
	}
	password := "$" + PasswordEnv
	if c.Password != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(c.Password), bcryptCost)
		if err != nil {
			// bcrypt's errors (length) do not quote the password.
			return fmt.Errorf("%w: the password: %w", ErrServerConfig, err)
		}
		// A bcrypt hash is [./$0-9A-Za-z]: quoted as is, no escapes needed.
		password = `"` + string(hash) + `"`
	}
	return serverConfigTemplate.Execute(w, map[string]any{
		"Auth": AuthAccount, "MQTT": MQTTAccount, "Sys": SystemAccount,
		"User": c.User, "SysUser": c.User + SystemUserSuffix,
		"Password": password, "Hashed": c.Password != "", "Env": PasswordEnv,
		"Issuer": c.Issuer,
	})
}
