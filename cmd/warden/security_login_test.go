package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// Attack tests of the password logins, on the real binary (issue 14,
// items 2 and 16). WARDEN_TEST_BIN=/work/before/warden runs them against
// the build before the fix.

// randomName is prefix and 12 random hex digits.
func randomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func mqttConnectCode(t *testing.T, addr, username, password string) byte {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ack, err := c.Connect(ctx, &paho.Connect{ClientID: randomName("c-"), KeepAlive: 30, CleanStart: true,
		Username: username, UsernameFlag: true, Password: []byte(password), PasswordFlag: true})
	if ack == nil {
		t.Fatalf("CONNECT %s: no CONNACK: %v", username, err)
	}
	if ack.ReasonCode == 0 {
		_ = c.Disconnect(&paho.Disconnect{})
	}
	return ack.ReasonCode
}

// postJSON posts body and returns the status and the decoded answer.
func postJSON(t *testing.T, base, path, token string, body any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", base+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

// TestLoginLockoutSharedByHTTPAndMQTT (item 16): wrong passwords over
// HTTP lock the user's MQTT password CONNECTs from that address, and
// wrong passwords over MQTT lock its HTTP logins: one lockout. The user's
// login token still connects.
func TestLoginLockoutSharedByHTTPAndMQTT(t *testing.T) {
	t.Parallel()
	bin := buildWarden(t)
	pw := validPassword(t)
	p := startWarden(t, bin, "WARDEN_DATA_DIR="+filepath.Join(t.TempDir(), "data"), "WARDEN_ADMIN_PASSWORD="+pw)
	p.waitFor("warden ready")
	out := p.out.String()
	base, mqtt := "http://"+listenAddr(t, out, "http"), listenAddr(t, out, "mqtt")

	code, login := postJSON(t, base, "/api/login", "", map[string]string{"username": "admin", "password": pw})
	if code != 200 {
		t.Fatalf("admin login: %d %v", code, login)
	}
	admin := login["token"].(string)
	devPW := validPassword(t)
	if code, b := postJSON(t, base, "/api/users", admin, map[string]any{"username": "device-9", "password": devPW}); code != 201 {
		t.Fatalf("create device-9: %d %v", code, b)
	}

	// HTTP failures, then MQTT: refused with the right password.
	for range 10 {
		postJSON(t, base, "/api/login", "", map[string]string{"username": "admin", "password": "wrong-Password-1"})
	}
	if code := mqttConnectCode(t, mqtt, "admin", pw); code != 0x86 {
		t.Errorf("MQTT CONNECT with the right password after 10 failed HTTP logins: CONNACK 0x%02x, want 0x86", code)
	}
	if code := mqttConnectCode(t, mqtt, "admin", admin); code != 0 {
		t.Errorf("MQTT CONNECT with a login token while the password is locked: CONNACK 0x%02x, want 0", code)
	}

	// MQTT failures, then HTTP: refused with the right password.
	for i := range 10 {
		mqttConnectCode(t, mqtt, "device-9", fmt.Sprint("wrong-Password-", i))
	}
	if code, _ := postJSON(t, base, "/api/login", "", map[string]string{"username": "device-9", "password": devPW}); code != 403 {
		t.Errorf("HTTP login with the right password after 10 failed MQTT CONNECTs: %d, want 403", code)
	}
}

// enrollMFA enrolls the token's user in TOTP MFA and returns its backup
// codes.
func enrollMFA(t *testing.T, base, token string) []string {
	t.Helper()
	code, en := postJSON(t, base, "/api/mfa/enable", token, map[string]string{})
	if code != 200 {
		t.Fatalf("mfa enable: %d %v", code, en)
	}
	key, err := otp.NewKeyFromURL(en["uri"].(string))
	if err != nil {
		t.Fatal(err)
	}
	now, err := totp.GenerateCode(key.Secret(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	code, v := postJSON(t, base, "/api/mfa/validate", token, map[string]string{"otp": now})
	if code != 200 {
		t.Fatalf("mfa validate: %d %v", code, v)
	}
	var codes []string
	for _, c := range v["backupCodes"].([]any) {
		codes = append(codes, c.(string))
	}
	return codes
}

// TestMFAUserNeedsMoreThanPasswordOverMQTT (item 16): once the admin is
// enrolled in MFA, its password alone no longer connects over MQTT
// (0x86); the login token from the MFA login does. With
// --mfa-mqtt-password (WARDEN_MFA_MQTT_PASSWORD=true) the password
// connects again.
func TestMFAUserNeedsMoreThanPasswordOverMQTT(t *testing.T) {
	t.Parallel()
	bin := buildWarden(t)
	pw := validPassword(t)
	env := []string{"WARDEN_DATA_DIR=" + filepath.Join(t.TempDir(), "data"), "WARDEN_ADMIN_PASSWORD=" + pw}
	p := startWarden(t, bin, env...)
	p.waitFor("warden ready")
	out := p.out.String()
	base, mqtt := "http://"+listenAddr(t, out, "http"), listenAddr(t, out, "mqtt")

	_, login := postJSON(t, base, "/api/login", "", map[string]string{"username": "admin", "password": pw})
	backup := enrollMFA(t, base, login["token"].(string))
	if code := mqttConnectCode(t, mqtt, "admin", pw); code != 0x86 {
		t.Errorf("MFA-enrolled admin with its password alone: CONNACK 0x%02x, want 0x86", code)
	}
	_, first := postJSON(t, base, "/api/login", "", map[string]string{"username": "admin", "password": pw})
	secret, _ := first["secret"].(string)
	code, second := postJSON(t, base, "/api/mfa/login", "", map[string]string{"username": "admin", "secret": secret, "backupCode": backup[0]})
	if code != 200 {
		t.Fatalf("mfa login: %d %v", code, second)
	}
	if code := mqttConnectCode(t, mqtt, "admin", second["token"].(string)); code != 0 {
		t.Errorf("MFA-enrolled admin with the token of its MFA login: CONNACK 0x%02x, want 0", code)
	}
	p.signal(syscall.SIGTERM)
	if code := p.exitCode(); code != 0 {
		t.Fatalf("exit %d", code)
	}

	p = startWarden(t, bin, append(env, "WARDEN_MFA_MQTT_PASSWORD=true")...)
	p.waitFor("warden ready")
	if code := mqttConnectCode(t, listenAddr(t, p.out.String(), "mqtt"), "admin", pw); code != 0 {
		t.Errorf("with --mfa-mqtt-password, the MFA-enrolled admin's password: CONNACK 0x%02x, want 0", code)
	}
}
