package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// listenAddr returns the address warden logged for a listener.
func listenAddr(t *testing.T, out, listener string) string {
	t.Helper()
	m := regexp.MustCompile(`msg=listening listener=` + listener + ` addr=(\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %s listener in the log:\n%s", listener, out)
	}
	return m[1]
}

func mosquitto(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install mosquitto-clients (make test installs it)", name)
	}
	return p
}

// TestBinaryServesMQTT: what README shows works: the admin publishes and
// subscribes with mosquitto clients over TCP and over TLS with the
// internal CA's certificate, and a wrong password is refused.
func TestBinaryServesMQTT(t *testing.T) {
	t.Parallel()
	pub, sub := mosquitto(t, "mosquitto_pub"), mosquitto(t, "mosquitto_sub")
	bin := buildWarden(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	pw := validPassword(t)
	p := startWarden(t, bin, "WARDEN_DATA_DIR="+dataDir, "WARDEN_ADMIN_PASSWORD="+pw, "WARDEN_MQTTS_ADDR=127.0.0.1:0")
	p.waitFor("warden ready")
	out := p.out.String()
	tcp := strings.Split(listenAddr(t, out, "mqtt"), ":")
	tls := strings.Split(listenAddr(t, out, "mqtts"), ":")

	// The internal CA's certificate, as warden leaves it for devices.
	caPEM := filepath.Join(dataDir, caCertFile)
	if _, err := os.Stat(caPEM); err != nil {
		t.Fatalf("internal CA certificate not written: %v", err)
	}

	for _, c := range []struct {
		name string
		args []string
	}{
		{"tcp", []string{"-h", "127.0.0.1", "-p", tcp[len(tcp)-1]}},
		{"tls", []string{"-h", "localhost", "-p", tls[len(tls)-1], "--cafile", caPEM}},
	} {
		t.Run(c.name, func(t *testing.T) {
			auth := append(c.args, "-u", "admin", "-P", pw)
			s := exec.Command(sub, append(auth, "-t", "plant/#", "-C", "1", "-W", "10", "-V", "mqttv311")...)
			var got strings.Builder
			s.Stdout = &got
			s.Stderr = &got
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
			// Publish until the subscriber, which may still be connecting, has it.
			deadline := time.Now().Add(10 * time.Second)
			done := make(chan error, 1)
			go func() { done <- s.Wait() }()
			for {
				if b, err := exec.Command(pub, append(auth, "-t", "plant/1/temp", "-m", "21.5", "-q", "1")...).CombinedOutput(); err != nil {
					t.Fatalf("mosquitto_pub: %v: %s", err, b)
				}
				select {
				case err := <-done:
					if err != nil || strings.TrimSpace(got.String()) != "21.5" {
						t.Fatalf("mosquitto_sub: %v, output %q", err, got.String())
					}
					b, err := exec.Command(pub, append(c.args, "-u", "admin", "-P", "wrong-password", "-t", "x", "-m", "1")...).CombinedOutput()
					if err == nil {
						t.Fatalf("mosquitto_pub with a wrong password succeeded: %s", b)
					}
					return
				case <-time.After(200 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					t.Fatalf("mosquitto_sub got nothing: %s", got.String())
				}
			}
		})
	}
	p.signal(syscall.SIGTERM)
	if code := p.exitCode(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out)
	}
}
