package main

import (
	"bytes"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestDeviceOnboardingEndToEnd is README's "device onboarding" with real
// tools: openssl makes a key and CSR, the device registers (423 while
// locked, 202 once open), the admin confirms, the device's next register
// returns its certificate, and mosquitto_pub connects over mutual TLS with
// it: allowed on its topic, refused elsewhere.
func TestDeviceOnboardingEndToEnd(t *testing.T) {
	t.Parallel()
	pub := mosquitto(t, "mosquitto_pub")
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatal("openssl not found: install it (make test installs it)")
	}
	bin := buildWarden(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	pw := validPassword(t)
	p := startWarden(t, bin, "WARDEN_DATA_DIR="+dataDir, "WARDEN_ADMIN_PASSWORD="+pw, "WARDEN_MQTTS_ADDR=127.0.0.1:0")
	p.waitFor("warden ready")
	out := p.out.String()
	httpAddr := strings.Replace(listenAddr(t, out, "http"), "[::]", "127.0.0.1", 1)
	tlsPort := listenAddr(t, out, "mqtts")[strings.LastIndex(listenAddr(t, out, "mqtts"), ":")+1:]

	// The device's key and CSR, as a factory script would make them.
	dir := t.TempDir()
	key, csrFile, crt := filepath.Join(dir, "device.key"), filepath.Join(dir, "device.csr"), filepath.Join(dir, "device.crt")
	if b, err := exec.Command(openssl, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", key, "-subj", "/CN=cam-0001", "-out", csrFile).CombinedOutput(); err != nil {
		t.Fatalf("openssl req: %v: %s", err, b)
	}
	csrPEM, err := os.ReadFile(csrFile)
	if err != nil {
		t.Fatal(err)
	}
	register := map[string]any{"username": "cam-0001", "csr": base64.StdEncoding.EncodeToString(csrPEM), "context": "serial 0001"}

	apiCall(t, httpAddr, "POST", "/api/client-registry/register", "", register, nil, http.StatusLocked)
	var login struct{ Token string }
	apiCall(t, httpAddr, "POST", "/api/login", "", map[string]string{"username": "admin", "password": pw}, &login, 200)
	var role struct{ ID string }
	apiCall(t, httpAddr, "POST", "/api/roles", login.Token, map[string]any{"name": "cameras", "isShared": true,
		"permissions": []map[string]string{{"resource": "cams/{username}/#", "operation": "write", "context": "mqtt"}}}, &role, 201)
	apiCall(t, httpAddr, "POST", "/api/client-registry/open", login.Token, map[string]int{"duration": 60000}, nil, http.StatusNoContent)
	apiCall(t, httpAddr, "POST", "/api/client-registry/register", "", register, nil, http.StatusAccepted)
	var pending []struct {
		Username, CredentialType string
		Granted                  bool
	}
	apiCall(t, httpAddr, "GET", "/api/client-registry", login.Token, nil, &pending, 200)
	if len(pending) != 1 || pending[0].Username != "cam-0001" || pending[0].CredentialType != "certificate" || pending[0].Granted {
		t.Fatalf("pending requests: %+v", pending)
	}
	apiCall(t, httpAddr, "POST", "/api/client-registry/confirm", login.Token, map[string]any{"username": "cam-0001", "roles": []string{role.ID}}, nil, http.StatusNoContent)
	var granted struct{ Certificate string }
	apiCall(t, httpAddr, "POST", "/api/client-registry/register", "", register, &granted, http.StatusCreated)
	certPEM, err := base64.StdEncoding.DecodeString(granted.Certificate)
	if b, _ := pem.Decode(certPEM); err != nil || b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("certificate in the answer: %v, %q", err, granted.Certificate)
	}
	if err := os.WriteFile(crt, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(openssl, "x509", "-in", crt, "-noout", "-subject", "-ext", "extendedKeyUsage").CombinedOutput(); err != nil ||
		!bytes.Contains(b, []byte("cam-0001")) || !bytes.Contains(b, []byte("TLS Web Client Authentication")) {
		t.Fatalf("openssl x509 on the issued certificate: %v: %s\n%s", err, b, certPEM)
	}

	publish := func(topic string) string {
		b, err := exec.Command(pub, "-h", "localhost", "-p", tlsPort, "--cafile", filepath.Join(dataDir, caCertFile),
			"--cert", crt, "--key", key, "-t", topic, "-m", "frame", "-q", "1", "-V", "mqttv5").CombinedOutput()
		if err != nil && !strings.Contains(string(b), "ot authori") {
			t.Fatalf("mosquitto_pub %s: %v: %s", topic, err, b)
		}
		return string(b)
	}
	if got := publish("cams/cam-0001/frames"); got != "" {
		t.Fatalf("allowed publish over mutual TLS: %q", got)
	}
	if got := publish("cams/cam-0002/frames"); !strings.Contains(got, "ot authori") {
		t.Fatalf("publish outside the device's permissions: %q, want not authorized", got)
	}
	p.signal(syscall.SIGTERM)
	if code := p.exitCode(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
