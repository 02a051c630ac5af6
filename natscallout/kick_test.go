package natscallout_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/internal/poll"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// kickWithin is how soon a change must disconnect the clients it
// affects (the issue's "within 1 s").
const kickWithin = time.Second

// watched is a plain NATS client whose end is observed.
type watched struct {
	nc     *nats.Conn
	closed chan struct{}
}

// dialWatched connects a plain NATS client that does not reconnect.
func (e *env) dialWatched(t *testing.T, user, password string) *watched {
	t.Helper()
	w := &watched{closed: make(chan struct{})}
	nc, err := nats.Connect(e.srv.ClientURL(), nats.UserInfo(user, password), nats.MaxReconnects(0),
		nats.ClosedHandler(func(*nats.Conn) { close(w.closed) }))
	if err != nil {
		t.Fatalf("%s: connect: %v", user, err)
	}
	t.Cleanup(nc.Close)
	w.nc = nc
	return w
}

// kicked fails the test unless the client is disconnected within
// kickWithin of since.
func (w *watched) kicked(t *testing.T, what string, since time.Time) {
	t.Helper()
	select {
	case <-w.closed:
		if d := time.Since(since); d > kickWithin {
			t.Errorf("%s: disconnected after %v, want within %v", what, d.Round(time.Millisecond), kickWithin)
		} else {
			t.Logf("%s: disconnected after %v", what, d.Round(time.Millisecond))
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: client still connected 5 s after the change", what)
	}
}

// TestLiveChangesKickNATSClients: every change that ends or alters a
// connected client's access (the embedded broker's revocations) makes the
// NATS server disconnect it within a second; it then reconnects to the
// new rights, or not at all. A client the change does not touch stays.
func TestLiveChangesKickNATSClients(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	e.start(t)
	ctx := context.Background()
	bystander := e.addUser(t, "bystander", "Bystander-pw-1", perm("by/#", acl.OpReadWrite))
	by := e.dialWatched(t, bystander.Username, "Bystander-pw-1")

	cases := []struct {
		name   string
		change func(t *testing.T, u store.User)
		// again: the password to reconnect with ("" when the reconnect
		// must be refused).
		again string
	}{
		{"permission removed", func(t *testing.T, u store.User) {
			if _, err := e.st.UpdateRole(ctx, u.Roles[0], func(r *store.Role) error {
				r.Permissions = []acl.Permission{perm("k/{username}/#", acl.OpRead)}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}, "Kick-password-1"},
		{"user suspended", func(t *testing.T, u store.User) {
			if _, err := e.st.UpdateUser(ctx, u.ID, func(x *store.User) error { x.Suspended = true; return nil }); err != nil {
				t.Fatal(err)
			}
		}, ""},
		{"user deleted", func(t *testing.T, u store.User) {
			if err := e.st.DeleteUser(ctx, u.ID); err != nil {
				t.Fatal(err)
			}
		}, ""},
		{"password changed", func(t *testing.T, u store.User) {
			hash, err := credential.Hash("Kick-password-2", fastParams)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.st.UpdateUser(ctx, u.ID, func(x *store.User) error { x.PasswordHash = hash; return nil }); err != nil {
				t.Fatal(err)
			}
		}, "Kick-password-2"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := "kick" + string(rune('a'+i))
			u := e.addUser(t, name, "Kick-password-1", perm("k/{username}/#", acl.OpReadWrite))
			w := e.dialWatched(t, name, "Kick-password-1")
			if err := w.nc.Publish("k."+name+".x", nil); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			c.change(t, u)
			w.kicked(t, c.name, start)
			nc, errs, err := e.connect(t, name, c.again)
			if c.again == "" {
				if err == nil {
					t.Fatal("reconnected after the change")
				}
				return
			}
			if err != nil {
				t.Fatalf("reconnect: %v", err)
			}
			if c.name != "permission removed" {
				return
			}
			// The reconnected client holds the new permissions: no more write.
			_ = nc.Publish("k."+name+".x", nil)
			_ = nc.Flush()
			select {
			case err := <-errs:
				if !errors.Is(err, nats.ErrPermissionViolation) {
					t.Fatalf("publish after the change: %v, want a permissions violation", err)
				}
			case <-time.After(3 * time.Second):
				t.Fatal("publish to a removed topic was not refused after the reconnect")
			}
		})
	}

	t.Run("token revoked", func(t *testing.T) {
		u := e.addUser(t, "tokenuser", "Token-password-1", perm("t/#", acl.OpReadWrite))
		tok, rec, err := e.tokens.Issue(ctx, u, credential.KindLogin, "", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		pw := e.dialWatched(t, "tokenuser", "Token-password-1") // the password session is not the token's
		w := e.dialWatched(t, "tokenuser", tok)
		start := time.Now()
		if err := e.st.DeleteToken(ctx, rec.ID); err != nil {
			t.Fatal(err)
		}
		w.kicked(t, "token revoked", start)
		if _, _, err := e.connect(t, "tokenuser", tok); err == nil {
			t.Fatal("revoked token connected again")
		}
		if pw.nc.IsClosed() {
			t.Error("the user's password session was disconnected with the token's")
		}
	})

	if by.nc.IsClosed() {
		t.Error("a client no change touched was disconnected")
	}
	if err := by.nc.Publish("by.x", nil); err != nil || by.nc.Flush() != nil {
		t.Errorf("bystander: %v", err)
	}
}

// TestRoleReorderKeepsClients: a change that grants the same (a role's
// permissions reordered) disconnects nobody, while one that changes
// them does, in the same sweep.
func TestRoleReorderKeepsClients(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	e.start(t)
	ctx := context.Background()
	same := e.addUser(t, "same", "Same-password-1", perm("s/a", acl.OpReadWrite), perm("s/b", acl.OpRead))
	ws := e.dialWatched(t, "same", "Same-password-1")
	moved := e.addUser(t, "moved", "Moved-password-1", perm("m/a", acl.OpReadWrite))
	wm := e.dialWatched(t, "moved", "Moved-password-1")
	if _, err := e.st.UpdateRole(ctx, same.Roles[0], func(r *store.Role) error {
		r.Permissions = []acl.Permission{perm("s/b", acl.OpRead), perm("s/a", acl.OpReadWrite)}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := e.st.UpdateRole(ctx, moved.Roles[0], func(r *store.Role) error {
		r.Permissions = []acl.Permission{perm("m/b", acl.OpReadWrite)}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	wm.kicked(t, "permissions changed", start)
	if ws.nc.IsClosed() {
		t.Error("a client whose permissions stayed the same was disconnected")
	}
}

// TestClientIDBelongsToItsFirstUser: NATS would hand an MQTT session to
// any user connecting with its client ID; warden keeps a client ID for
// the first user admitted with it, on every node (the shared store),
// until that user is deleted.
func TestClientIDBelongsToItsFirstUser(t *testing.T) {
	t.Parallel()
	e := newMQTTEnv(t)
	e.start(t)
	alice := e.addUser(t, "alice", "Alice-password-1", perm("a/#", acl.OpReadWrite))
	e.addUser(t, "mallory", "Mallory-password-1", perm("a/#", acl.OpReadWrite))
	if code := e.connack(t, "alice", "Alice-password-1", "sensor-7"); code != 0 {
		t.Fatalf("alice: CONNACK %d", code)
	}
	if code := e.connack(t, "mallory", "Mallory-password-1", "sensor-7"); code == 0 {
		t.Fatal("another user took over alice's client ID")
	}
	if !strings.Contains(e.trail.String(), "client ID in use by another user") {
		t.Error("the refusal is not in the audit trail with its reason")
	}
	if code := e.connack(t, "alice", "Alice-password-1", "sensor-7"); code != 0 {
		t.Fatalf("alice again: CONNACK %d", code)
	}
	if err := e.st.DeleteUser(context.Background(), alice.ID); err != nil {
		t.Fatal(err)
	}
	if code := e.connack(t, "mallory", "Mallory-password-1", "sensor-7"); code != 0 {
		t.Fatalf("client ID of a deleted user: CONNACK %d, want accepted", code)
	}
}

// TestRedisDownSeenUsersConnect: with the shared Redis down, a user this
// warden node admitted before connects again with its client ID; a user
// it never saw is refused.
func TestRedisDownSeenUsersConnect(t *testing.T) {
	t.Parallel()
	r := storetest.StartRedis(t)
	e := newMQTTEnv(t)
	e.attach(t, storetest.OpenRedis(t, storetest.URL(r.URL)))
	e.start(t)
	e.addUser(t, "seen", "Seen-password-1", perm("s/#", acl.OpReadWrite))
	e.addUser(t, "unseen", "Unseen-password-1", perm("s/#", acl.OpReadWrite))
	if code := e.connack(t, "seen", "Seen-password-1", "seen-1"); code != 0 {
		t.Fatalf("seen: CONNACK %d", code)
	}
	r.Stop()
	poll.Until(t, 5*time.Second, "the store to notice Redis is gone", func() bool {
		return e.st.Ping(context.Background()) != nil
	})
	if code := e.connack(t, "seen", "Seen-password-1", "seen-1"); code != 0 {
		t.Fatalf("seen user with Redis down: CONNACK %d, want accepted\n%s", code, e.trail.String())
	}
	if code := e.connack(t, "unseen", "Unseen-password-1", "unseen-1"); code == 0 {
		t.Fatal("a user never seen was admitted with Redis down")
	}
}
