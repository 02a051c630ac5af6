package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/warden-mqtt/warden/internal/ldaptest"
)

// TestBinaryDirectoryLogin: warden started with --ldap-* flags against a
// real slapd lets Alice connect over MQTT (mosquitto_pub) and log in over
// HTTP with her directory password; a wrong password is refused; the log
// names the directory and never the bind password.
func TestBinaryDirectoryLogin(t *testing.T) {
	t.Parallel()
	pub := mosquitto(t, "mosquitto_pub")
	d := ldaptest.Start(t)
	bin := buildWarden(t)
	p := startWardenArgs(t, bin, []string{
		"--ldap-url", d.URL, "--ldap-start-tls", "--ldap-ca-file", d.CAFile, "--ldap-base-dn", d.BaseDN,
		"--ldap-filter", ldaptest.UserFilter, "--ldap-bind-dn", d.BindDN, "--ldap-group-base-dn", ldaptest.GroupsDN,
		"--ldap-group-filter", ldaptest.GroupFilter,
	}, "WARDEN_DATA_DIR="+filepath.Join(t.TempDir(), "data"), "WARDEN_ADMIN_PASSWORD="+validPassword(t),
		"WARDEN_LDAP_BIND_PASSWORD="+d.BindPassword)
	p.waitFor("warden ready")
	out := p.out.String()
	if !strings.Contains(out, "msg=\"ldap directory\"") || strings.Contains(out, d.BindPassword) {
		t.Fatalf("start log: want the directory named, never its bind password:\n%s", out)
	}
	mqtt := strings.Split(listenAddr(t, out, "mqtt"), ":")
	conn := []string{"-h", "127.0.0.1", "-p", mqtt[len(mqtt)-1], "-t", "x", "-m", "1", "-V", "mqttv311"}
	if b, err := exec.Command(pub, append(conn, "-u", "alice", "-P", ldaptest.Alice.Password)...).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub as alice with her directory password: %v: %s\n%s", err, b, p.out)
	}
	if b, err := exec.Command(pub, append(conn, "-u", "alice", "-P", "wrong-password-1")...).CombinedOutput(); err == nil {
		t.Fatalf("mosquitto_pub as alice with a wrong password succeeded: %s", b)
	}

	httpAddr := strings.Replace(listenAddr(t, out, "http"), "[::]", "127.0.0.1", 1)
	body, _ := json.Marshal(map[string]string{"username": "alice", "password": ldaptest.Alice.Password})
	resp, err := http.Post("http://"+httpAddr+"/api/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var login struct {
		Token string `json:"token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil || login.Token == "" {
		t.Fatalf("HTTP login of alice: %d %v token %q", resp.StatusCode, err, login.Token)
	}
	// The directory's work on /metrics: one bind (MQTT), the HTTP login
	// from the bind cache, the wrong password refused, both directory calls
	// timed.
	_, mfs := scrapeMetrics(t, httpAddr)
	for name, want := range map[string]float64{"warden_ldap_binds_total": 1, "warden_ldap_cache_hits_total": 1,
		"warden_ldap_bind_failures_total": 1, "warden_ldap_unavailable_total": 0, "warden_ldap_request_seconds": 2} {
		if got := metricValue(mfs, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	p.signal(syscall.SIGTERM)
	if code := p.exitCode(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out)
	}
}
