package authhook_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/pki"
)

// mosquittoBin returns the path of a mosquitto client tool. A missing tool
// fails the test: interoperability must never go untested by accident.
func mosquittoBin(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if _, serr := os.Stat("/usr/bin/" + name); serr == nil {
			return "/usr/bin/" + name
		}
		t.Fatalf("%s not found: install mosquitto-clients (make test installs it): %v", name, err)
	}
	return p
}

// runMosquitto runs a mosquitto client to completion (bounded by 15 s)
// and returns its stdout, stderr and exit error.
func runMosquitto(t testing.TB, name string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, mosquittoBin(t, name), args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %q did not finish within 15 s; stdout %q stderr %q", name, args, out.String(), errOut.String())
	}
	return out.String(), errOut.String(), err
}

// mosqSub is a running mosquitto_sub.
type mosqSub struct {
	mu    sync.Mutex
	lines []string
	done  chan error // the exit status, once stdout is drained
}

// startSub starts mosquitto_sub -d -i clientID with the given arguments
// and waits until the broker holds its subscription (seen from the broker:
// mosquitto_sub's own output is block-buffered on a pipe, so it cannot
// tell when the SUBACK arrived). probe is a topic the subscription matches.
func startSub(t testing.TB, n *node, clientID, probe string, args ...string) *mosqSub {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	cmd := exec.CommandContext(ctx, mosquittoBin(t, "mosquitto_sub"), append([]string{"-d", "-i", clientID}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &mosqSub{done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.mu.Lock()
			s.lines = append(s.lines, sc.Text())
			s.mu.Unlock()
		}
		err := cmd.Wait()
		if stderr.Len() > 0 {
			s.mu.Lock()
			s.lines = append(s.lines, "stderr: "+stderr.String())
			s.mu.Unlock()
		}
		s.done <- err
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := n.broker.Server().Topics.Subscribers(probe).Subscriptions[clientID]; ok {
			return s
		}
		select {
		case err := <-s.done:
			s.done <- err
			t.Fatalf("mosquitto_sub exited before subscribing (%v): %s", err, s.output())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto_sub not subscribed after 10 s: %s", s.output())
		}
	}
}

func (s *mosqSub) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines, "\n")
}

// wait returns mosquitto_sub's exit status (it exits after -C messages or
// -W seconds) and everything it printed.
func (s *mosqSub) wait(t testing.TB) (string, error) {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- err
		return s.output(), err
	case <-time.After(15 * time.Second):
		t.Fatalf("mosquitto_sub still running after 15 s: %s", s.output())
	}
	return "", nil
}

// hasLine reports whether out holds line as a whole line.
func hasLine(out, line string) bool {
	for l := range strings.SplitSeq(out, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

func portOf(t testing.TB, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

var mosquittoVersions = []string{"mqttv311", "mqttv5"}

// TestMosquittoPassword: stock mosquitto clients log in with username and
// password, exchange a message on a permitted topic, get nothing on a
// forbidden one, and a wrong password fails with a clear message.
func TestMosquittoPassword(t *testing.T) {
	t.Parallel()
	n := startNode(t, nodeOpts{})
	addUser(t, n.st, "sensor", "sensor-secret1", []acl.Permission{perm("plant/{username}/#", acl.OpReadWrite)}, nil)
	addUser(t, n.st, "viewer", "viewer-secret1", []acl.Permission{perm("plant/#", acl.OpRead)}, nil)
	port := portOf(t, n.broker.Addr("tcp"))
	for _, v := range mosquittoVersions {
		t.Run(v, func(t *testing.T) {
			common := []string{"-h", "127.0.0.1", "-p", port, "-V", v}
			sub := startSub(t, n, "viewer-"+v, "plant/sensor/temp", append(common, "-u", "viewer", "-P", "viewer-secret1",
				"-t", "plant/sensor/temp", "-q", "1", "-C", "1", "-W", "5")...)
			// A forbidden publish first: must not be what the subscriber gets.
			if _, stderr, err := runMosquitto(t, "mosquitto_pub", append(common, "-u", "sensor", "-P", "sensor-secret1", "-i", "sensor-x-"+v,
				"-t", "plant/other/temp", "-m", "forbidden", "-q", "1")...); err != nil && v == "mqttv311" {
				t.Fatalf("v3.1.1 publish to a forbidden topic should be acked and dropped, got %v: %s", err, stderr)
			}
			if _, stderr, err := runMosquitto(t, "mosquitto_pub", append(common, "-u", "sensor", "-P", "sensor-secret1", "-i", "sensor-"+v,
				"-t", "plant/sensor/temp", "-m", "21.5-"+v, "-q", "1")...); err != nil {
				t.Fatalf("mosquitto_pub: %v: %s", err, stderr)
			}
			out, err := sub.wait(t)
			if err != nil {
				t.Fatalf("mosquitto_sub: %v:\n%s", err, out)
			}
			if !hasLine(out, "21.5-"+v) {
				t.Fatalf("mosquitto_sub did not print the message:\n%s", out)
			}
			if strings.Contains(out, "forbidden") {
				t.Fatalf("mosquitto_sub received a forbidden publish:\n%s", out)
			}

			// Wrong password: non-zero exit and a refusal message.
			_, stderr, err := runMosquitto(t, "mosquitto_pub", append(common, "-u", "sensor", "-P", "wrong-password", "-i", "bad-"+v,
				"-t", "plant/sensor/temp", "-m", "x")...)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() == 0 {
				t.Fatalf("mosquitto_pub with a wrong password: err %v, want a non-zero exit; stderr %q", err, stderr)
			}
			low := strings.ToLower(stderr)
			if !strings.Contains(low, "bad user name or password") && !strings.Contains(low, "not authori") {
				t.Fatalf("wrong password: stderr %q does not say why", stderr)
			}
			t.Logf("wrong password: exit %d, %s", ee.ExitCode(), strings.TrimSpace(stderr))
		})
	}
}

// writePEM writes the device's files: CA certificate, client certificate
// and its key.
func writePEM(t testing.TB, ca *pki.CA, cn string) (caFile, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	cert := issueClient(t, ca, cn)
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile, certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	for f, data := range map[string][]byte{
		caFile:   ca.CertPEM(),
		certFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Leaf.Raw}),
		keyFile:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	} {
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return caFile, certFile, keyFile
}

// TestMosquittoClientCertificate: stock mosquitto clients authenticate
// with a client certificate alone (no -u) over TLS and exchange a message
// on their own topic tree.
func TestMosquittoClientCertificate(t *testing.T) {
	t.Parallel()
	n, ca := startTLSNode(t)
	certUser(t, n.st, "gw1", []acl.Permission{perm("gw/{username}/#", acl.OpReadWrite)}, nil)
	caFile, certFile, keyFile := writePEM(t, ca, "gw1")
	port := portOf(t, n.broker.Addr("tls"))
	for _, v := range mosquittoVersions {
		t.Run(v, func(t *testing.T) {
			common := []string{"-h", "localhost", "-p", port, "-V", v, "--cafile", caFile, "--cert", certFile, "--key", keyFile}
			sub := startSub(t, n, "gw1-sub-"+v, "gw/gw1/state", append(common, "-t", "gw/gw1/#", "-q", "1", "-C", "1", "-W", "5")...)
			if _, stderr, err := runMosquitto(t, "mosquitto_pub", append(common, "-i", "gw1-pub-"+v,
				"-t", "gw/gw1/state", "-m", "online-"+v, "-q", "1")...); err != nil {
				t.Fatalf("mosquitto_pub over TLS with a client certificate: %v: %s", err, stderr)
			}
			out, err := sub.wait(t)
			if err != nil {
				t.Fatalf("mosquitto_sub: %v:\n%s", err, out)
			}
			if !hasLine(out, "online-"+v) {
				t.Fatalf("mosquitto_sub did not print the message:\n%s", out)
			}
		})
	}
	// Without the certificate the same device is refused.
	_, stderr, err := runMosquitto(t, "mosquitto_pub", "-h", "localhost", "-p", port, "-V", "mqttv311", "--cafile", caFile,
		"-i", "gw1-nocert", "-t", "gw/gw1/state", "-m", "x")
	if err == nil {
		t.Fatalf("mosquitto_pub without a client certificate succeeded; stderr %q", stderr)
	}
}
