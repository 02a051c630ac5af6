package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/internal/mqtttest"
)

// mqttConnect connects a raw MQTT client (version 4 = 3.1.1, 5) with a
// username and password and fails unless the CONNACK accepts.
func mqttConnect(t *testing.T, addr string, version byte, clientID, user, password string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	connect := mqtttest.Connect{Version: version, ClientID: clientID, Username: user, Password: password, Keepalive: 60}
	if _, err := c.Write(connect.Bytes()); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	typ, ack, err := mqtttest.ReadPacket(r)
	if err != nil || typ != 0x20 || len(ack) < 2 || ack[1] != 0 {
		t.Fatalf("v%d CONNACK: type %#x body %x err %v", version, typ, ack, err)
	}
	return c, r
}

// startSlowLogin starts a login request and returns once its handler
// runs: the request asks "Expect: 100-continue" and sends no body, so the
// server's "100 Continue" says the handler is reading the body, and the
// request stays in flight until finish sends it.
func startSlowLogin(t *testing.T, addr, user, password string) (finish func() (*http.Response, error)) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": user, "password": password})
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	head := fmt.Sprintf("POST /api/login HTTP/1.1\r\nHost: warden\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n", len(body))
	if _, err := c.Write([]byte(head)); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	status, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "HTTP/1.1 100 ") {
		t.Fatalf("no 100 Continue: %q %v", status, err)
	}
	if blank, err := r.ReadString('\n'); err != nil || blank != "\r\n" {
		t.Fatalf("after 100 Continue: %q %v", blank, err)
	}
	return func() (*http.Response, error) {
		if _, err := c.Write(body); err != nil {
			return nil, err
		}
		return http.ReadResponse(r, nil)
	}
}

// TestGracefulShutdown runs the binary with an MQTT 5 client, an MQTT
// 3.1.1 client and an HTTP request in flight, and sends SIGTERM.
func TestGracefulShutdown(t *testing.T) {
	bin := buildWarden(t)

	t.Run("clients are told, the request in flight is answered, and warden exits 0 within the timeout", func(t *testing.T) {
		const timeout = 5 * time.Second
		pw := validPassword(t)
		trail := filepath.Join(t.TempDir(), "audit.jsonl")
		p := startWarden(t, bin, "WARDEN_DATA_DIR="+filepath.Join(t.TempDir(), "data"), "WARDEN_ADMIN_PASSWORD="+pw,
			"WARDEN_SHUTDOWN_TIMEOUT="+timeout.String(), "WARDEN_AUDIT_LOG="+trail)
		p.waitFor("warden ready")
		out := p.out.String()
		mqttAddr := listenAddr(t, out, "mqtt")
		httpAddr := listenAddr(t, out, "http")
		// The image's HEALTHCHECK: healthy while serving, not after.
		probe := func() int {
			cmd := exec.Command(bin, "healthcheck")
			cmd.Env = append(os.Environ(), "WARDEN_HTTP_ADDR="+httpAddr)
			if err := cmd.Run(); err != nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					return ee.ExitCode()
				}
				t.Fatal(err)
			}
			return 0
		}
		if code := probe(); code != 0 {
			t.Fatalf("warden healthcheck of a running warden: exit %d", code)
		}

		_, r5 := mqttConnect(t, mqttAddr, 5, "shutdown-v5", adminUsername, pw)
		_, r3 := mqttConnect(t, mqttAddr, 4, "shutdown-v3", adminUsername, pw)
		finish := startSlowLogin(t, httpAddr, adminUsername, "Wrong-password-1")

		start := time.Now()
		p.signal(syscall.SIGTERM)
		p.waitFor("shutting down")

		// MQTT drains while the HTTP request is still open.
		typ, body, err := mqtttest.ReadPacket(r5)
		if err != nil || typ != 0xe0 || len(body) < 1 || body[0] != 0x8b {
			t.Fatalf("v5 client: packet %#x body %x err %v; want DISCONNECT 0x8B (server shutting down)", typ, body, err)
		}
		for {
			// 3.1.1 has no server DISCONNECT: the connection just ends
			// (Mochi may send a bare e0 00 first).
			typ, _, err := mqtttest.ReadPacket(r3)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatal("v3 connection still open")
				}
				break
			}
			if typ != 0xe0 {
				t.Fatalf("v3 client got packet %#x", typ)
			}
		}
		select {
		case <-p.done:
			t.Fatalf("warden exited with an HTTP request in flight:\n%s", p.out)
		default:
		}
		if _, err := net.DialTimeout("tcp", mqttAddr, time.Second); err == nil {
			t.Error("the MQTT listener still accepts during shutdown")
		}

		resp, err := finish()
		if err != nil {
			t.Fatalf("the request in flight got no answer: %v\n%s", err, p.out)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "authentication failed") {
			t.Errorf("in-flight login answered %d %s, want 403 authentication failed", resp.StatusCode, b)
		}

		if code := p.exitCode(); code != 0 {
			t.Fatalf("exit code %d, want 0:\n%s", code, p.out)
		}
		if took := time.Since(start); took > timeout {
			t.Errorf("shutdown took %v, over the %v timeout", took, timeout)
		}
		if !strings.Contains(p.out.String(), "msg=stopped") {
			t.Errorf("no stopped line:\n%s", p.out)
		}
		if code := probe(); code != exitFail {
			t.Errorf("warden healthcheck after shutdown: exit %d, want %d", code, exitFail)
		}

		// The refused login of the drained request is in the audit file,
		// its password is not.
		a, err := os.ReadFile(trail)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(a), `"channel":"http-login","user":"admin"`) || strings.Contains(string(a), "Wrong-password-1") {
			t.Errorf("audit file:\n%s", a)
		}
	})

	t.Run("a request that never finishes is cut at the timeout and warden exits 1", func(t *testing.T) {
		const timeout = 1500 * time.Millisecond
		pw := validPassword(t)
		p := startWarden(t, bin, "WARDEN_DATA_DIR="+filepath.Join(t.TempDir(), "data"), "WARDEN_ADMIN_PASSWORD="+pw,
			"WARDEN_SHUTDOWN_TIMEOUT="+timeout.String(), "WARDEN_AUDIT_LOG=off")
		p.waitFor("warden ready")
		httpAddr := listenAddr(t, p.out.String(), "http")
		startSlowLogin(t, httpAddr, adminUsername, pw) // never finished

		start := time.Now()
		p.signal(syscall.SIGTERM)
		if code := p.exitCode(); code != exitFail {
			t.Fatalf("exit code %d, want %d:\n%s", code, exitFail, p.out)
		}
		// The timeout plus process start-up slack, not a second timeout
		// for each stage.
		if took := time.Since(start); took > timeout+time.Second {
			t.Errorf("shutdown took %v with a %v timeout", took, timeout)
		}
		if !strings.Contains(p.out.String(), "admin HTTP shutdown") {
			t.Errorf("no line about the cut HTTP drain:\n%s", p.out)
		}
	})
}
