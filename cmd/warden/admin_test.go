package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// apiCall sends a JSON request to a running warden and decodes the answer.
func apiCall(t *testing.T, base, method, path, token string, body, out any, want int) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

// TestAdminFlowEndToEnd: an admin creates a role with an MQTT permission
// and a user with that role and a publish prefix over HTTP; mosquitto_pub
// with that user's credentials succeeds on an allowed topic and is refused
// outside it; after the admin removes the permission, the next publish is
// refused.
func TestAdminFlowEndToEnd(t *testing.T) {
	pub, sub := mosquitto(t, "mosquitto_pub"), mosquitto(t, "mosquitto_sub")
	bin := buildWarden(t)
	pw := validPassword(t)
	p := startWarden(t, bin, "WARDEN_DATA_DIR="+filepath.Join(t.TempDir(), "data"), "WARDEN_ADMIN_PASSWORD="+pw)
	p.waitFor("warden ready")
	out := p.out.String()
	httpAddr := strings.Replace(listenAddr(t, out, "http"), "[::]", "127.0.0.1", 1)
	mqtt := strings.Split(listenAddr(t, out, "mqtt"), ":")
	port := mqtt[len(mqtt)-1]

	var login struct{ Token string }
	apiCall(t, httpAddr, "POST", "/api/login", "", map[string]string{"username": "admin", "password": pw}, &login, 200)
	var role struct {
		ID          string
		Permissions []struct{ ID string }
	}
	apiCall(t, httpAddr, "POST", "/api/roles", login.Token, map[string]any{"name": "line1-devices", "isShared": true,
		"permissions": []map[string]string{{"resource": "plant1/line1/#", "operation": "write", "context": "mqtt"}}}, &role, 201)
	devPW := validPassword(t)
	apiCall(t, httpAddr, "POST", "/api/users", login.Token, map[string]any{"username": "device-1", "password": devPW,
		"roles": []string{role.ID}, "mqttPublishPrefix": "plant1/"}, nil, 201)

	// "Try a topic" says what the broker will decide below, on the
	// prefixed topic.
	checkWrite := func(topic string) (allowed bool, effective, by string) {
		var a struct {
			EffectiveTopic string
			Write          struct {
				Allowed    bool
				Permission *struct{ Resource string }
			}
		}
		apiCall(t, httpAddr, "GET", "/api/access/check?username=device-1&topic="+topic, login.Token, nil, &a, 200)
		if a.Write.Permission != nil {
			by = a.Write.Permission.Resource
		}
		return a.Write.Allowed, a.EffectiveTopic, by
	}
	if ok, eff, by := checkWrite("line1/temp"); !ok || eff != "plant1/line1/temp" || by != "plant1/line1/#" {
		t.Fatalf("access check of line1/temp: allowed %v on %q by %q", ok, eff, by)
	}
	if ok, _, _ := checkWrite("line2/temp"); ok {
		t.Fatal("access check allows line2/temp")
	}
	// The admin watches everything under plant1/.
	watch := exec.Command(sub, "-h", "127.0.0.1", "-p", port, "-u", "admin", "-P", pw, "-t", "plant1/#", "-v", "-V", "mqttv5")
	var seen logBuffer
	watch.Stdout = &seen
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = watch.Process.Kill(); _ = watch.Wait() })
	// publish reports whether the broker refused the publish: at QoS 1 over
	// MQTT 5 the PUBACK carries "not authorized" and mosquitto_pub says so.
	publish := func(topic, msg string) (refused bool) {
		cmd := exec.Command(pub, "-h", "127.0.0.1", "-p", port, "-u", "device-1", "-P", devPW, "-t", topic, "-m", msg, "-q", "1", "-V", "mqttv5")
		b, err := cmd.CombinedOutput()
		if strings.Contains(string(b), "ot authori") {
			return true
		}
		if err != nil {
			t.Fatalf("mosquitto_pub %s: %v: %s", topic, err, b)
		}
		return false
	}
	// Allowed: the subscriber sees the prefixed topic (retry while it connects).
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(seen.String(), "plant1/line1/temp 21") {
		if time.Now().After(deadline) {
			t.Fatalf("allowed publish never arrived; subscriber saw %q\n%s", seen.String(), p.out)
		}
		if publish("line1/temp", "21") {
			t.Fatal("allowed publish refused")
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Outside the permission: refused.
	if !publish("line2/temp", "22") {
		t.Fatal("publish outside the permission was accepted")
	}
	// Permission removed: within a second, a publish on the once-allowed
	// topic is refused.
	apiCall(t, httpAddr, "DELETE", "/api/roles/"+role.ID+"/permissions/"+role.Permissions[0].ID, login.Token, nil, nil, 200)
	deadline = time.Now().Add(time.Second)
	for n := 23; !publish("line1/temp", fmt.Sprint(n)); n++ {
		if time.Now().After(deadline) {
			t.Fatal("publish still accepted a second after the permission was removed")
		}
	}
	if ok, _, _ := checkWrite("line1/temp"); ok {
		t.Fatal("access check still allows line1/temp after the permission was removed")
	}
	// A marker from the admin shows the subscriber has caught up; no refused
	// publish reached it.
	if b, err := exec.Command(pub, "-h", "127.0.0.1", "-p", port, "-u", "admin", "-P", pw, "-t", "plant1/marker", "-m", "end", "-q", "1").CombinedOutput(); err != nil {
		t.Fatalf("admin publish: %v: %s", err, b)
	}
	deadline = time.Now().Add(5 * time.Second)
	for !strings.Contains(seen.String(), "plant1/marker end") {
		if time.Now().After(deadline) {
			t.Fatalf("marker never arrived: %q", seen.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := seen.String(); strings.Contains(got, "line2/temp") || strings.Count(got, "plant1/line1/temp") != strings.Count(got, "plant1/line1/temp 21") {
		t.Fatalf("a refused publish was delivered:\n%s", got)
	}
	// A login token works as an MQTT password until it is logged out.
	var tok struct{ Token string }
	apiCall(t, httpAddr, "POST", "/api/login", "", map[string]string{"username": "admin", "password": pw}, &tok, 200)
	withToken := func() ([]byte, error) {
		return exec.Command(pub, "-h", "127.0.0.1", "-p", port, "-u", "admin", "-P", tok.Token, "-t", "plant1/x", "-m", "1", "-V", "mqttv5").CombinedOutput()
	}
	if b, err := withToken(); err != nil {
		t.Fatalf("publish with a login token: %v: %s", err, b)
	}
	apiCall(t, httpAddr, "POST", "/api/logout", "", map[string]string{"token": tok.Token}, nil, 200)
	if b, err := withToken(); err == nil {
		t.Fatalf("publish with a logged-out token succeeded: %s", b)
	}
	p.signal(syscall.SIGTERM)
	if code := p.exitCode(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
