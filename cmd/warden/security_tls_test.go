package main

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cbcOnly offers TLS 1.2 with nothing but the CBC suites Go still enables
// by default (ECDHE with AES-CBC and SHA-1).
func cbcOnly(roots *x509.CertPool) *tls.Config {
	return &tls.Config{RootCAs: roots, ServerName: "localhost", MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
			tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
		}}
}

// handshake dials addr with cfg and completes a TLS handshake.
func handshake(addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState(), nil
}

func caPool(t *testing.T, pemFile string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(pemFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("no certificate in %s", pemFile)
	}
	return pool
}

// TestTLSListenersRefuseCBCAndOldVersions runs the binary with MQTT over
// TLS, WSS and the admin API over HTTPS (--http-tls, certificate from the
// internal CA): a client trusting the CA gets TLS 1.3, or TLS 1.2 with an
// AEAD suite, on all three; a TLS 1.2 client offering only CBC suites and a
// TLS 1.1 client fail the handshake; the admin API answers /healthz over
// HTTPS (and `warden healthcheck` probes it), not over plain HTTP.
func TestTLSListenersRefuseCBCAndOldVersions(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the binary")
	}
	bin := buildWarden(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	p := startWarden(t, bin, "WARDEN_DATA_DIR="+dataDir, "WARDEN_MQTTS_ADDR=127.0.0.1:0",
		"WARDEN_WS_ADDR=127.0.0.1:0", "WARDEN_WS_TLS=true", "WARDEN_HTTP_TLS=true")
	p.waitFor("warden ready")
	out := p.out.String()
	roots := caPool(t, filepath.Join(dataDir, caCertFile))
	httpAddr := loopback(listenAddr(t, out, "http"))

	for _, l := range []string{"mqtts", "ws", "http"} {
		addr := loopback(listenAddr(t, out, l))
		t.Run(l, func(t *testing.T) {
			st, err := handshake(addr, &tls.Config{RootCAs: roots, ServerName: "localhost"})
			if err != nil {
				t.Fatalf("a client trusting the internal CA: %v", err)
			}
			if st.Version != tls.VersionTLS13 {
				t.Errorf("negotiated %s, want TLS 1.3", tls.VersionName(st.Version))
			}
			st, err = handshake(addr, &tls.Config{RootCAs: roots, ServerName: "localhost", MaxVersion: tls.VersionTLS12})
			if err != nil {
				t.Fatalf("a TLS 1.2 client with Go's default suites: %v", err)
			}
			if name := tls.CipherSuiteName(st.CipherSuite); !strings.Contains(name, "GCM") && !strings.Contains(name, "CHACHA20") {
				t.Errorf("TLS 1.2 suite %s, want an AEAD", name)
			}
			if st, err := handshake(addr, cbcOnly(roots)); err == nil {
				t.Errorf("a CBC-only TLS 1.2 client got %s", tls.CipherSuiteName(st.CipherSuite))
			}
			old := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS11, MaxVersion: tls.VersionTLS11}
			if st, err := handshake(addr, old); err == nil {
				t.Errorf("a TLS 1.1 client connected (%s)", tls.VersionName(st.Version))
			}
		})
	}

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"}}}
	resp, err := client.Get("https://" + httpAddr + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz over HTTPS: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz over HTTPS: %s", resp.Status)
	}
	if resp, err := http.Get("http://" + httpAddr + "/healthz"); err == nil {
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("the admin API answered /healthz over plain HTTP")
		}
	}
	_, port, _ := net.SplitHostPort(httpAddr)
	var hcOut strings.Builder
	if code := healthcheck(nil, env(map[string]string{"WARDEN_HTTP_ADDR": ":" + port, "WARDEN_HTTP_TLS": "true"}), &hcOut); code != exitOK {
		t.Errorf("warden healthcheck over HTTPS: exit %d: %s", code, hcOut.String())
	}
}

// writeServerCert issues a server certificate for localhost from a fresh
// CA, writes it and its key as PEM files in dir and returns the file names
// and the CA pool.
func writeServerCert(t *testing.T, dir, cn string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	ca := issueCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "operator test CA"}, KeyUsage: x509.KeyUsageCertSign, IsCA: true}, nil)
	server := issueCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: cn},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}, &ca)
	caCert, key, der := ca.cert, server.key, server.cert.Raw
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, cn+".pem"), filepath.Join(dir, cn+"-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(caCert)
	return certFile, keyFile, roots
}

// TestAdminHTTPSWithTheOperatorsCertificate: --http-tls-cert/--http-tls-key
// alone turn HTTPS on with that certificate, also limited to TLS 1.2+ AEAD.
func TestAdminHTTPSWithTheOperatorsCertificate(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the binary")
	}
	bin := buildWarden(t)
	dir := t.TempDir()
	certFile, keyFile, roots := writeServerCert(t, dir, "admin-api")
	p := startWarden(t, bin, "WARDEN_DATA_DIR="+filepath.Join(dir, "data"),
		"WARDEN_HTTP_TLS_CERT="+certFile, "WARDEN_HTTP_TLS_KEY="+keyFile)
	p.waitFor("warden ready")
	httpAddr := loopback(listenAddr(t, p.out.String(), "http"))

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"}}}
	resp, err := client.Get("https://" + httpAddr + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz trusting the operator's CA: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz: %s", resp.Status)
	}
	if cn := resp.TLS.PeerCertificates[0].Subject.CommonName; cn != "admin-api" {
		t.Errorf("served certificate %q, want the operator's admin-api", cn)
	}
	if _, err := handshake(httpAddr, cbcOnly(roots)); err == nil {
		t.Error("a CBC-only TLS 1.2 client connected to the admin API")
	}
}

// TestConfigRefusesBadLimitsAndTLSFlags: the new limits and TLS flags are
// validated with the others, naming flag and variable.
func TestConfigRefusesBadLimitsAndTLSFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"a packet size under 1 KiB", []string{"--mqtt-max-packet-size=100"}, "--mqtt-max-packet-size (WARDEN_MQTT_MAX_PACKET_SIZE): must be from 1024 to 268435460"},
		{"a packet size MQTT cannot express", []string{"--mqtt-max-packet-size=300000000"}, "--mqtt-max-packet-size"},
		{"negative connections", []string{"--mqtt-max-connections=-1"}, "--mqtt-max-connections (WARDEN_MQTT_MAX_CONNECTIONS)"},
		{"a keepalive over 65535 s", []string{"--mqtt-max-keepalive=19h"}, "--mqtt-max-keepalive (WARDEN_MQTT_MAX_KEEPALIVE)"},
		{"a keepalive in fractions of a second", []string{"--mqtt-max-keepalive=1500ms"}, "whole seconds"},
		{"an origin with a path", []string{"--ws-allowed-origins=https://ui.example.com/app"}, "--ws-allowed-origins (WARDEN_WS_ALLOWED_ORIGINS)"},
		{"an origin without a scheme", []string{"--ws-allowed-origins=https://a.example,ui.example.com"}, `"ui.example.com"`},
		{"an admin certificate without its key", []string{"--http-tls-cert=c.pem"}, "--http-tls-key (WARDEN_HTTP_TLS_KEY): missing"},
		{"an admin key without its certificate", []string{"--http-tls-key=k.pem"}, "--http-tls-cert (WARDEN_HTTP_TLS_CERT): missing"},
		{"HTTPS without an admin listener", []string{"--http-tls", "--http-addr="}, "--http-tls (WARDEN_HTTP_TLS): set, but --http-addr is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig(tc.args, env(nil))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
	for _, ok := range [][]string{
		{"--mqtt-max-keepalive=0"},
		{"--mqtt-max-connections=0"},
		{"--ws-allowed-origins=https://ui.example.com, http://localhost:3000"},
		{"--http-tls"},
	} {
		if _, err := loadConfig(ok, env(nil)); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
}
