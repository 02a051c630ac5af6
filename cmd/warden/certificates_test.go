package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// trustIssue signs a certificate from tmpl with parent's key (self-signed
// when parent is nil) for a fresh P-256 key.
func trustIssue(t *testing.T, tmpl *x509.Certificate, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	tmpl.BasicConstraintsValid = true
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// trustWrite writes a PEM block to dir/name and returns the path.
func trustWrite(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestTrustedCAWithoutRestart is the issue's promise with real parts: a
// device whose certificate comes from a CA warden does not know is
// refused by the TLS listener; once an admin adds that CA with POST
// /api/certificates, the same mosquitto_pub connects (as the user named by
// the certificate's common name) and publishes, with warden still running;
// once the admin deletes the CA, the device is refused again.
func TestTrustedCAWithoutRestart(t *testing.T) {
	t.Parallel()
	pub := mosquitto(t, "mosquitto_pub")
	bin := buildWarden(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	pw := validPassword(t)
	p := startWarden(t, bin, "WARDEN_DATA_DIR="+dataDir, "WARDEN_ADMIN_PASSWORD="+pw, "WARDEN_MQTTS_ADDR=127.0.0.1:0")
	p.waitFor("warden ready")
	out := p.out.String()
	httpAddr := strings.Replace(listenAddr(t, out, "http"), "[::]", "127.0.0.1", 1)
	mqtts := listenAddr(t, out, "mqtts")
	tlsPort := mqtts[strings.LastIndex(mqtts, ":")+1:]

	var login struct{ Token string }
	apiCall(t, httpAddr, "POST", "/api/login", "", map[string]string{"username": "admin", "password": pw}, &login, http.StatusOK)
	apiCall(t, httpAddr, "POST", "/api/users", login.Token, map[string]any{
		"username":           "sensor-7",
		"grantTypes":         []map[string]any{{"method": "certificate", "isRequired": false}},
		"initialPermissions": []map[string]string{{"resource": "plant/sensor-7/#", "operation": "write", "context": "mqtt"}},
	}, nil, http.StatusCreated)

	// A plant's own CA, and the device certificate it issued.
	dir := t.TempDir()
	ca, caKey := trustIssue(t, &x509.Certificate{
		Subject:  pkix.Name{CommonName: "Plant 7 device CA", Organization: []string{"Plant 7"}},
		IsCA:     true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil, nil)
	device, deviceKey := trustIssue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "sensor-7"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca, caKey)
	keyDER, err := x509.MarshalPKCS8PrivateKey(deviceKey)
	if err != nil {
		t.Fatal(err)
	}
	crt := trustWrite(t, dir, "sensor-7.crt", "CERTIFICATE", device.Raw)
	key := trustWrite(t, dir, "sensor-7.key", "PRIVATE KEY", keyDER)
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}))
	sum := sha256.Sum256(ca.Raw)
	caID := hex.EncodeToString(sum[:])

	// publish runs the device's mosquitto_pub (QoS 1, MQTT 5: success means
	// the CONNECT and the publish were both accepted).
	publish := func() (string, error) {
		b, err := exec.Command(pub, "-h", "localhost", "-p", tlsPort, "--cafile", filepath.Join(dataDir, caCertFile),
			"--cert", crt, "--key", key, "-t", "plant/sensor-7/temp", "-m", "21.5", "-q", "1", "-V", "mqttv5").CombinedOutput()
		return string(b), err
	}
	// refused checks that the device is turned away by the TLS listener's
	// certificate check (warden logs it), not later at CONNECT.
	const unknownCA = "certificate signed by unknown authority"
	refused := func(when string) {
		t.Helper()
		before := strings.Count(p.out.String(), unknownCA)
		b, err := publish()
		if err == nil {
			t.Fatalf("%s: mosquitto_pub with a certificate from an untrusted CA succeeded: %s", when, b)
		}
		if strings.Contains(b, "ot authori") {
			t.Fatalf("%s: refused at CONNECT, not by the TLS listener: %s", when, b)
		}
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(p.out.String(), unknownCA) == before {
			if time.Now().After(deadline) {
				t.Fatalf("%s: mosquitto_pub failed (%v: %s) but warden logged no %q:\n%s", when, err, b, unknownCA, p.out)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	refused("before the CA is added")

	var added []struct {
		ID        string
		Removable bool
	}
	apiCall(t, httpAddr, "POST", "/api/certificates", login.Token, caPEM, &added, http.StatusCreated)
	if len(added) != 1 || added[0].ID != caID || !added[0].Removable {
		t.Fatalf("POST /api/certificates answered %+v, want the CA %s, removable", added, caID)
	}
	// This node trusts the CA once the POST has returned: no wait, no
	// restart.
	if b, err := publish(); err != nil {
		t.Fatalf("mosquitto_pub after the CA was added: %v: %s\nwarden log:\n%s", err, b, p.out)
	}

	apiCall(t, httpAddr, "DELETE", "/api/certificates?id="+caID, login.Token, nil, nil, http.StatusOK)
	refused("after the CA is deleted")

	p.signal(syscall.SIGTERM)
	if code := p.exitCode(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out)
	}
	// One process served all of it.
	if n := strings.Count(p.out.String(), "warden ready"); n != 1 {
		t.Fatalf("warden started %d times", n)
	}
}
