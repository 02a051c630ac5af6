package natscallout_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/warden-mqtt/warden/internal/mqtttest"
	"github.com/warden-mqtt/warden/natscallout"
)

// natsNode writes the printed configuration as warden.conf beside a
// minimal node configuration that includes it (a free client port, an
// MQTT listener, JetStream on the test's directory), starts nats-server
// from that file and returns it with its parsed options.
func natsNode(t *testing.T, printed string) (*server.Server, *server.Options) {
	t.Helper()
	dir := t.TempDir()
	main := "server_name: n1\nlisten: 127.0.0.1:-1\n" +
		"jetstream { store_dir: " + jsonString(filepath.Join(dir, "js")) + " }\n" +
		"mqtt { listen: 127.0.0.1:-1 }\n" +
		"include \"warden.conf\"\n"
	if err := os.WriteFile(filepath.Join(dir, "warden.conf"), []byte(printed), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(path, []byte(main), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server refuses the configuration: %v\n%s", err, printed)
	}
	opts.NoSigs, opts.NoLog = true, true
	// The bcrypt check of a CONNECT takes seconds under -race, longer
	// than the server's short first PING, which nats.go takes for a
	// refused handshake.
	opts.DisableShortFirstPing = true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("NewServer: %v\n%s", err, printed)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready within 10s")
	}
	return s, opts
}

// jsonString quotes a path for the NATS configuration (JSON string rules
// are a subset of NATS's).
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// accountOf connects as user and asks the server which account it is in.
func accountOf(t *testing.T, s *server.Server, user, password string) (string, error) {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo(user, password), nats.MaxReconnects(0), nats.Timeout(20*time.Second))
	if err != nil {
		return "", err
	}
	defer nc.Close()
	msg, err := nc.Request("$SYS.REQ.USER.INFO", nil, 5*time.Second)
	if err != nil {
		t.Fatalf("user info request as %s: %v", user, err)
	}
	var resp struct {
		Data server.UserInfo `json:"data"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		t.Fatal(err)
	}
	return resp.Data.Account, nil
}

func newIssuer(t *testing.T) string {
	t.Helper()
	kp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	return publicKey(t, kp)
}

// checkNode checks what a node running the printed configuration must
// do: auth callout on with warden's issuer, account and users; JetStream
// in the MQTT account; warden's users admitted with the password into
// their accounts without a callout (none answers here), a wrong password
// refused.
func checkNode(t *testing.T, s *server.Server, opts *server.Options, issuer, password string) {
	t.Helper()
	ac := opts.AuthCallout
	if ac == nil {
		t.Fatal("auth callout is not enabled")
	}
	if ac.Issuer != issuer || ac.Account != natscallout.AuthAccount || strings.Join(ac.AuthUsers, ",") != "warden,warden-system" {
		t.Errorf("auth callout %+v: want issuer %s, account %s, auth users warden and warden-system", *ac, issuer, natscallout.AuthAccount)
	}
	if opts.SystemAccount != natscallout.SystemAccount {
		t.Errorf("system account %q, want %q", opts.SystemAccount, natscallout.SystemAccount)
	}
	mqtt, err := s.LookupAccount(natscallout.MQTTAccount)
	if err != nil {
		t.Fatalf("account %s: %v", natscallout.MQTTAccount, err)
	}
	if !mqtt.JetStreamEnabled() {
		t.Errorf("JetStream is off in account %s; NATS's MQTT needs it", natscallout.MQTTAccount)
	}
	for user, want := range map[string]string{"warden": natscallout.AuthAccount, "warden-system": natscallout.SystemAccount} {
		got, err := accountOf(t, s, user, password)
		if err != nil || got != want {
			t.Errorf("%s with its password: account %q, %v; want account %s", user, got, err, want)
		}
	}
	if _, err := accountOf(t, s, "warden", password+"x"); err == nil {
		t.Error("warden with a wrong password was admitted")
	}
	checkMQTTGoesToWarden(t, s, opts, password)
}

// checkMQTTGoesToWarden: an MQTT CONNECT on the node becomes an auth
// callout request that warden's user receives in the auth account.
func checkMQTTGoesToWarden(t *testing.T, s *server.Server, opts *server.Options, password string) {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("warden", password), nats.MaxReconnects(0), nats.Timeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	requests, err := nc.SubscribeSync(server.AuthCalloutSubject)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", net.JoinHostPort(opts.MQTT.Host, strconv.Itoa(opts.MQTT.Port)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	connect := mqtttest.Connect{Version: 4, ClientID: "sensor-1", Username: "alice", Password: "alice-pw", Keepalive: 30}
	if _, err := conn.Write(connect.Bytes()); err != nil {
		t.Fatal(err)
	}
	if _, err := requests.NextMsg(10 * time.Second); err != nil {
		t.Errorf("no auth callout request reached warden for an MQTT CONNECT: %v", err)
	}
}

// TestServerConfigWithPasswordRunsANATSServer: with the password given,
// the printed configuration holds its bcrypt hash, never the password, and
// a real nats-server started from it admits warden's users with it.
func TestServerConfigWithPasswordRunsANATSServer(t *testing.T) {
	t.Parallel()
	issuer := newIssuer(t)
	const password = "Callout-pass-1"
	var out bytes.Buffer
	if err := natscallout.WriteServerConfig(&out, natscallout.ServerConfig{Issuer: issuer, User: "warden", Password: password}); err != nil {
		t.Fatal(err)
	}
	printed := out.String()
	if strings.Contains(printed, password) || strings.Contains(printed, "$"+natscallout.PasswordEnv) {
		t.Fatalf("the configuration holds the password or the variable instead of a hash:\n%s", printed)
	}
	s, opts := natsNode(t, printed)
	checkNode(t, s, opts, issuer, password)
}

// TestServerConfigWithoutPasswordReadsTheEnvironment: without a password
// the configuration refers to $WARDEN_NATS_PASSWORD, which nats-server
// resolves from its environment.
func TestServerConfigWithoutPasswordReadsTheEnvironment(t *testing.T) {
	const password = "from-the-environment"
	t.Setenv(natscallout.PasswordEnv, password) // nats-server reads it while parsing
	issuer := newIssuer(t)
	var out bytes.Buffer
	if err := natscallout.WriteServerConfig(&out, natscallout.ServerConfig{Issuer: issuer, User: "warden"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "password: $"+natscallout.PasswordEnv+" ") {
		t.Fatalf("the configuration does not refer to $%s:\n%s", natscallout.PasswordEnv, out.String())
	}
	s, opts := natsNode(t, out.String())
	checkNode(t, s, opts, issuer, password)
}

// TestServerConfigRefusesBadInput: an issuer that is not an account
// public key, or a user name NATS's configuration would need quoting
// rules for, is refused before anything is printed.
func TestServerConfigRefusesBadInput(t *testing.T) {
	t.Parallel()
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	userPub := publicKey(t, user)
	for name, c := range map[string]natscallout.ServerConfig{
		"a user public key as issuer": {Issuer: userPub, User: "warden"},
		"no issuer":                   {User: "warden"},
		"an empty user":               {Issuer: newIssuer(t)},
		"a user with a space":         {Issuer: newIssuer(t), User: "war den"},
		"a user with a quote":         {Issuer: newIssuer(t), User: `w"arden`},
		"a user with a brace":         {Issuer: newIssuer(t), User: "warden}"},
	} {
		var out bytes.Buffer
		err := natscallout.WriteServerConfig(&out, c)
		if !errors.Is(err, natscallout.ErrServerConfig) {
			t.Errorf("%s: %v, want ErrServerConfig", name, err)
		}
		if out.Len() > 0 {
			t.Errorf("%s: printed %q", name, out.String())
		}
	}
}
