package main

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/warden-mqtt/warden/store/storetest"
)

// Items 8 and 9 of issue 14, end to end on the real binary with real MQTT
// clients (Eclipse Paho, MQTT 5) on both stores: a password change
// disconnects the clients that connected with a login token or the old
// password and keeps those of application tokens; revoking an application
// token disconnects the clients of the tokens exchanged for it.

// tkClient is a connected MQTT client and what the server said when it
// closed the connection.
type tkClient struct {
	*paho.Client
	name   string
	reason chan byte // the DISCONNECT's reason code, if the server sent one
}

// tkConnect connects an MQTT 5 client as user with password (a password or
// a token) and returns it with its CONNACK reason code; the client is
// nil unless the code is 0.
func tkConnect(t *testing.T, addr, name, user, password string) (*tkClient, byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c := &tkClient{name: name, reason: make(chan byte, 1)}
	c.Client = paho.NewClient(paho.ClientConfig{Conn: conn, OnServerDisconnect: func(d *paho.Disconnect) {
		select {
		case c.reason <- d.ReasonCode:
		default:
		}
	}})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ack, err := c.Connect(ctx, &paho.Connect{ClientID: name, KeepAlive: 30, CleanStart: true,
		Username: user, UsernameFlag: true, Password: []byte(password), PasswordFlag: true})
	if ack == nil {
		t.Fatalf("%s: no CONNACK: %v", name, err)
	}
	if ack.ReasonCode != 0 {
		return nil, ack.ReasonCode
	}
	return c, 0
}

// mustConnect is tkConnect that fails the test unless the CONNECT is
// accepted.
func mustConnect(t *testing.T, addr, name, user, password string) *tkClient {
	t.Helper()
	c, code := tkConnect(t, addr, name, user, password)
	if c == nil {
		t.Fatalf("%s: CONNACK 0x%02x, want 0", name, code)
	}
	return c
}

// wantDisconnected waits for the server to close c's connection with a
// DISCONNECT of reason 0x87 (not authorized).
func wantDisconnected(t *testing.T, c *tkClient, why string) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatalf("%s still connected 5 s after %s", c.name, why)
	}
	select {
	case r := <-c.reason:
		if r != 0x87 {
			t.Fatalf("%s: DISCONNECT reason 0x%02x after %s, want 0x87", c.name, r, why)
		}
	case <-time.After(time.Second):
		t.Fatalf("%s: connection closed after %s without a DISCONNECT", c.name, why)
	}
}

// wantConnected checks that c is still connected and served: a QoS 1
// publish on a permitted topic is acknowledged.
func wantConnected(t *testing.T, c *tkClient, topic, why string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	pr, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("1")})
	if err != nil || pr == nil || pr.ReasonCode != 0 {
		t.Fatalf("%s after %s: publish: %v (%+v), want it connected and acknowledged", c.name, why, err, pr)
	}
	select {
	case <-c.Done():
		t.Fatalf("%s disconnected after %s", c.name, why)
	default:
	}
}

// tkEnv is a running warden with an operator and its sessions: one that
// will change the password, one an attacker stole, an application token
// and the token it was exchanged for.
type tkEnv struct {
	httpAddr, mqttAddr string
	oldPW              string
	mine, stolen       string
	appID, app         string
	exchanged          string
}

// tkBackends runs fn against the binary on the embedded store and on
// Redis.
func tkBackends(t *testing.T, fn func(t *testing.T, e *tkEnv)) {
	bin := buildWarden(t)
	for _, backend := range []string{"bolt", "redis"} {
		t.Run(backend, func(t *testing.T) {
			pw := validPassword(t)
			env := []string{"WARDEN_DATA_DIR=" + filepath.Join(t.TempDir(), "data"), "WARDEN_ADMIN_PASSWORD=" + pw}
			if backend == "redis" {
				env = append(env, "WARDEN_REDIS_URL="+storetest.StartRedis(t).URL)
			}
			p := startWarden(t, bin, env...)
			p.waitFor("warden ready")
			out := p.out.String()
			e := &tkEnv{
				httpAddr: strings.Replace(listenAddr(t, out, "http"), "[::]", "127.0.0.1", 1),
				mqttAddr: strings.Replace(listenAddr(t, out, "mqtt"), "[::]", "127.0.0.1", 1),
				oldPW:    validPassword(t),
			}
			var admin, mine, stolen struct{ Token string }
			apiCall(t, e.httpAddr, "POST", "/api/login", "", map[string]string{"username": "admin", "password": pw}, &admin, http.StatusOK)
			apiCall(t, e.httpAddr, "POST", "/api/users", admin.Token, map[string]any{"username": "e2e-op", "password": e.oldPW,
				"initialPermissions": []map[string]string{{"resource": "op/#", "operation": "readWrite", "context": "mqtt"}}}, nil, http.StatusCreated)
			apiCall(t, e.httpAddr, "POST", "/api/login", "", map[string]string{"username": "e2e-op", "password": e.oldPW}, &mine, http.StatusOK)
			apiCall(t, e.httpAddr, "POST", "/api/login", "", map[string]string{"username": "e2e-op", "password": e.oldPW}, &stolen, http.StatusOK)
			var app struct {
				ID    string `json:"id"`
				Token string `json:"application_token"`
			}
			apiCall(t, e.httpAddr, "POST", "/api/v1/application_token", mine.Token, map[string]any{"description": "exporter"}, &app, http.StatusCreated)
			var exchanged struct {
				Token string `json:"auth_token"`
			}
			apiCall(t, e.httpAddr, "POST", "/api/v1/authenticate", "", map[string]any{"application_token": app.Token}, &exchanged, http.StatusOK)
			e.mine, e.stolen, e.appID, e.app, e.exchanged = mine.Token, stolen.Token, app.ID, app.Token, exchanged.Token
			fn(t, e)
		})
	}
}

// TestBinaryPasswordChangeDisconnectsTokenClients (item 8): after the
// victim changes its password, the MQTT client connected with the login
// token the attacker stole, and the one connected with the old password,
// are disconnected (0x87) and cannot connect again; clients of the
// application token and of its exchanged token stay.
func TestBinaryPasswordChangeDisconnectsTokenClients(t *testing.T) {
	t.Parallel()
	tkBackends(t, func(t *testing.T, e *tkEnv) {
		byToken := mustConnect(t, e.mqttAddr, "with-stolen-login-token", "e2e-op", e.stolen)
		byPassword := mustConnect(t, e.mqttAddr, "with-old-password", "e2e-op", e.oldPW)
		byApp := mustConnect(t, e.mqttAddr, "with-application-token", "e2e-op", e.app)
		bySession := mustConnect(t, e.mqttAddr, "with-application-session", "e2e-op", e.exchanged)
		for _, c := range []*tkClient{byToken, byPassword, byApp, bySession} {
			wantConnected(t, c, "op/"+c.name, "connecting")
		}

		newPW := validPassword(t)
		apiCall(t, e.httpAddr, "PUT", "/api/users/change-password", e.mine, map[string]any{"password": e.oldPW, "newPassword": newPW}, nil, http.StatusNoContent)
		wantDisconnected(t, byToken, "the password change")
		wantDisconnected(t, byPassword, "the password change")
		wantConnected(t, byApp, "op/app", "the password change")
		wantConnected(t, bySession, "op/session", "the password change")
		for name, secret := range map[string]string{"the stolen login token": e.stolen, "the old password": e.oldPW} {
			if c, code := tkConnect(t, e.mqttAddr, "again", "e2e-op", secret); c != nil {
				t.Fatalf("CONNECT with %s after the change accepted", name)
			} else {
				t.Logf("CONNECT with %s after the change: CONNACK 0x%02x", name, code)
			}
		}
		mustConnect(t, e.mqttAddr, "with-new-password", "e2e-op", newPW)
		apiCall(t, e.httpAddr, "GET", "/api/session", e.stolen, nil, nil, http.StatusUnauthorized)
		apiCall(t, e.httpAddr, "GET", "/api/session", e.mine, nil, nil, http.StatusOK)
	})
}

// TestBinaryApplicationTokenRevocationDisconnectsItsSessions (item 9):
// revoking an application token disconnects the MQTT clients of the
// tokens exchanged for it (revoked in the same store transaction), not
// only those of the application token itself.
func TestBinaryApplicationTokenRevocationDisconnectsItsSessions(t *testing.T) {
	t.Parallel()
	tkBackends(t, func(t *testing.T, e *tkEnv) {
		byApp := mustConnect(t, e.mqttAddr, "with-application-token", "e2e-op", e.app)
		bySession := mustConnect(t, e.mqttAddr, "with-application-session", "e2e-op", e.exchanged)
		byLogin := mustConnect(t, e.mqttAddr, "with-login-token", "e2e-op", e.mine)
		for _, c := range []*tkClient{byApp, bySession, byLogin} {
			wantConnected(t, c, "op/"+c.name, "connecting")
		}
		apiCall(t, e.httpAddr, "DELETE", "/api/v1/application_token/"+e.appID, e.mine, nil, nil, http.StatusNoContent)
		wantDisconnected(t, byApp, "the application token's revocation")
		wantDisconnected(t, bySession, "the application token's revocation")
		wantConnected(t, byLogin, "op/login", "the application token's revocation")
		if c, _ := tkConnect(t, e.mqttAddr, "again", "e2e-op", e.exchanged); c != nil {
			t.Fatal("CONNECT with the exchanged token after its application token was revoked accepted")
		}
	})
}
