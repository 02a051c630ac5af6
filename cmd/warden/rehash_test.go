package main

import (
	"context"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/internal/poll"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// weakParams stand for the argon2id parameters of an older release (or of
// a restored backup's hashes): weaker than credential.DefaultParams.
var weakParams = credential.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// TestLoginsUpgradeWeakPasswordHashes: users whose stored hashes were made
// with weaker parameters log in, one over HTTP, one over MQTT. Each stored
// hash then has today's parameters under the same password version; the
// password still works, the login token issued before the upgrade still
// works, and the MQTT client connected before it stays connected.
func TestLoginsUpgradeWeakPasswordHashes(t *testing.T) {
	bin := buildWarden(t)
	r := storetest.StartRedis(t)
	p := startWarden(t, bin, "WARDEN_REDIS_URL="+r.URL, "WARDEN_ADMIN_PASSWORD="+validPassword(t),
		"WARDEN_DATA_DIR="+t.TempDir(), "WARDEN_AUDIT_LOG=off")
	p.waitFor("warden ready")
	out := p.out.String()
	httpAddr, mqttAddr := listenAddr(t, out, "http"), listenAddr(t, out, "mqtt")

	s, err := store.OpenRedis(t.Context(), r.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	role, err := s.CreateRole(t.Context(), store.Role{Name: "upgraded", IsShared: true,
		Permissions: []acl.Permission{{Resource: "upgraded/#", Operation: acl.OpReadWrite, Context: acl.ContextMQTT}}})
	if err != nil {
		t.Fatal(err)
	}
	pw := validPassword(t)
	weakUser := func(name string) store.User {
		h, err := credential.Hash(pw, weakParams)
		if err != nil {
			t.Fatal(err)
		}
		u, err := s.CreateUser(t.Context(), store.User{Username: name, PasswordHash: h, Roles: []string{role.ID}})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	upgraded := func(u store.User) {
		t.Helper()
		var got store.User
		poll.Until(t, 10*time.Second, u.Username+"'s hash upgraded", func() bool {
			got, err = s.User(t.Context(), u.ID)
			return err == nil && !credential.NeedsRehash(got.PasswordHash, credential.DefaultParams)
		})
		if got.PasswordVersion != u.PasswordVersion {
			t.Errorf("%s's password version %d -> %d: the upgrade counts as a password change", u.Username, u.PasswordVersion, got.PasswordVersion)
		}
	}

	t.Run("HTTP login", func(t *testing.T) {
		u := weakUser("http-device")
		var login struct{ Token string }
		apiCall(t, httpAddr, "POST", "/api/login", "", map[string]string{"username": u.Username, "password": pw}, &login, 200)
		upgraded(u)
		apiCall(t, httpAddr, "GET", "/api/session", login.Token, nil, nil, 200)
		apiCall(t, httpAddr, "POST", "/api/login", "", map[string]string{"username": u.Username, "password": pw}, nil, 200)
	})

	t.Run("MQTT CONNECT", func(t *testing.T) {
		u := weakUser("mqtt-device")
		first := pahoConnectAs(t, dialPlain(t, mqttAddr), "rehash-first", u.Username, pw)
		upgraded(u)
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		if pr, err := first.Publish(ctx, &paho.Publish{Topic: "upgraded/still-here", QoS: 1, Payload: []byte("1")}); err != nil || pr.ReasonCode != 0 {
			t.Errorf("the client connected before the upgrade cannot publish: %v %+v", err, pr)
		}
		select {
		case <-first.Done():
			t.Error("the client connected before the upgrade was disconnected")
		default:
		}
		_ = pahoConnectAs(t, dialPlain(t, mqttAddr), "rehash-second", u.Username, pw)
	})
}
