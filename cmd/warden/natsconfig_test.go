package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/natscallout"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// natsConfig runs `warden nats-config` on the embedded store in dataDir
// with the given environment.
func natsConfig(t *testing.T, vars map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runCommand(t.Context(), append([]string{"nats-config"}, args...), env(vars), strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestNATSConfigRunsANATSServer: the printed configuration, included by a
// node's own configuration file, starts a real nats-server with auth
// callout on, trusting the issuer kept in warden's store; warden's user
// logs in with WARDEN_NATS_PASSWORD, which is printed only as a hash; a
// second run prints the same issuer.
func TestNATSConfigRunsANATSServer(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	password := validPassword(t)
	vars := map[string]string{"WARDEN_DATA_DIR": dataDir, "WARDEN_NATS_PASSWORD": password}
	code, printed, errOut := natsConfig(t, vars)
	if code != 0 {
		t.Fatalf("nats-config: exit %d, stderr %q", code, errOut)
	}
	if strings.Contains(printed, password) || strings.Contains(errOut, password) {
		t.Fatal("nats-config printed the password")
	}

	st := storetest.OpenBolt(t, storetest.Path(filepath.Join(dataDir, storeFile)))
	kp, err := natscallout.LoadIssuer(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	issuer, _ := kp.PublicKey()
	_ = st.Close()
	if !strings.Contains(errOut, issuer) {
		t.Errorf("stderr %q does not name the issuer %s", errOut, issuer)
	}
	if code, again, _ := natsConfig(t, vars); code != 0 || !strings.Contains(again, "issuer: "+issuer+"\n") {
		t.Errorf("a second run: exit %d, want the same issuer %s in:\n%s", code, issuer, again)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "warden.conf"), []byte(printed), 0o600); err != nil {
		t.Fatal(err)
	}
	node := "server_name: n1\nlisten: 127.0.0.1:-1\n" +
		"jetstream { store_dir: " + strconv.Quote(filepath.Join(dir, "js")) + " }\n" +
		"mqtt { listen: 127.0.0.1:-1 }\n" +
		"include \"warden.conf\"\n"
	path := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(path, []byte(node), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server refuses the configuration: %v\n%s", err, printed)
	}
	if opts.AuthCallout == nil || opts.AuthCallout.Issuer != issuer {
		t.Fatalf("auth callout %+v, want the issuer %s from warden's store", opts.AuthCallout, issuer)
	}
	opts.NoSigs, opts.NoLog = true, true
	opts.DisableShortFirstPing = true // bcrypt under -race outlasts the short first PING
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready within 10s")
	}
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("warden", password), nats.MaxReconnects(0),
		nats.Timeout(20*time.Second)) // a bcrypt check takes seconds under -race
	if err != nil {
		t.Fatalf("warden's NATS user with WARDEN_NATS_PASSWORD: %v", err)
	}
	nc.Close()

	// The binary on the same store answers that server's auth callouts: a
	// warden user connects to NATS with its warden password and may
	// publish what its mqtt permissions allow, nothing else.
	st = storetest.OpenBolt(t, storetest.Path(filepath.Join(dataDir, storeFile)))
	role, err := st.CreateRole(t.Context(), store.Role{Name: "plant", Permissions: []acl.Permission{
		{Resource: "plant/#", Operation: acl.OpReadWrite, Context: acl.ContextMQTT}}})
	if err != nil {
		t.Fatal(err)
	}
	devicePassword := validPassword(t)
	hash, err := credential.Hash(devicePassword, credential.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateUser(t.Context(), store.User{Username: "device-1", PasswordHash: hash, Roles: []string{role.ID},
		GrantTypes: []store.GrantType{{Method: store.GrantPassword}}}); err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
	p := startWarden(t, buildWarden(t), "WARDEN_DATA_DIR="+dataDir, "WARDEN_NATS_URL="+s.ClientURL(),
		"WARDEN_NATS_PASSWORD="+password, "WARDEN_ADMIN_PASSWORD="+validPassword(t))
	p.waitFor("answering nats auth callouts")
	if _, err := nats.Connect(s.ClientURL(), nats.UserInfo("device-1", "wrong-"+devicePassword), nats.MaxReconnects(0),
		nats.Timeout(20*time.Second)); err == nil {
		t.Fatal("device-1 connected to NATS with a wrong password")
	}
	violations := make(chan error, 4)
	dev, err := nats.Connect(s.ClientURL(), nats.UserInfo("device-1", devicePassword), nats.MaxReconnects(0),
		nats.Timeout(20*time.Second), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
	if err != nil {
		t.Fatalf("device-1 through warden's callout: %v\n%s", err, p.out.String())
	}
	defer dev.Close()
	sub, err := dev.SubscribeSync("plant.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Publish("plant.1.temp", []byte("21")); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.NextMsg(10 * time.Second); err != nil || m.Subject != "plant.1.temp" {
		t.Fatalf("permitted publish on plant/1/temp: %v %v", m, err)
	}
	if err := dev.Publish("office.temp", []byte("22")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-violations:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Fatalf("publish on office/temp: %v, want a permissions violation", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a publish outside device-1's permissions was not refused")
	}
}

// TestNATSConfigNeedsTheStoreFree: like backup, nats-config on the
// embedded store of a running warden fails with the same advice, and a
// bad --nats-user is a usage error.
func TestNATSConfigNeedsTheStoreFree(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	vars := map[string]string{"WARDEN_DATA_DIR": dataDir}
	if code, out, errOut := natsConfig(t, vars, "--nats-user", "war den"); code != 2 || out != "" || !strings.Contains(errOut, "--nats-user") {
		t.Errorf("a bad --nats-user: exit %d, stdout %q, stderr %q; want 2", code, out, errOut)
	}
	storetest.OpenBolt(t, storetest.Path(filepath.Join(dataDir, storeFile))) // holds the lock
	code, out, errOut := natsConfig(t, vars)
	if code != 1 || out != "" || !strings.Contains(errOut, "in use") || !strings.Contains(errOut, "Stop warden first") {
		t.Errorf("on a locked store: exit %d, stdout %q, stderr %q; want 1 and the backup command's advice", code, out, errOut)
	}
}

// TestValidateNATS: --nats-url needs --nats-password and well-formed URLs
// of the schemes nats.go dials; every problem names the flag and never
// echoes the password or a URL's credentials.
func TestValidateNATS(t *testing.T) {
	t.Parallel()
	const secret = "s3cret-NATS-pw"
	for _, c := range []struct {
		name string
		set  func(c *Config)
		want string // "" : valid
	}{
		{"off by default", func(c *Config) {}, ""},
		{"three seeds and a password", func(c *Config) {
			c.NATSURL, c.NATSPassword = "nats://n1:4222, nats://n2:4222,tls://n3:4222", secret
		}, ""},
		{"a URL without a password", func(c *Config) { c.NATSURL = "nats://n1:4222" }, "--nats-password (WARDEN_NATS_PASSWORD): required"},
		{"an http URL", func(c *Config) { c.NATSURL, c.NATSPassword = "http://n1:4222", secret }, `URL 1: scheme must be`},
		{"a URL without host", func(c *Config) { c.NATSURL, c.NATSPassword = "nats://n1:4222,nats://", secret }, "URL 2 has no host"},
		{"credentials in a URL", func(c *Config) { c.NATSURL, c.NATSPassword = "nats://warden:"+secret+"@n1:4222", secret }, "URL 1 holds credentials"},
		{"only commas", func(c *Config) { c.NATSURL, c.NATSPassword = " , ", secret }, "holds no URL"},
		{"a JWT expiry under a minute", func(c *Config) { c.NATSURL, c.NATSPassword, c.NATSJWTExpiry = "nats://n1:4222", secret, time.Second }, "--nats-jwt-expiry (WARDEN_NATS_JWT_EXPIRY): must be at least 1m"},
		{"a bad user", func(c *Config) { c.NATSURL, c.NATSPassword, c.NATSUser = "nats://n1:4222", secret, "war den" }, "--nats-user (WARDEN_NATS_USER)"},
	} {
		t.Run(c.name, func(t *testing.T) { t.Parallel(); checkValidate(t, c.set, c.want, secret) })
	}
}
