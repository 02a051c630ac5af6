package main

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// occupy binds a free loopback port, as another program holding it would,
// and returns its address.
func occupy(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln.Addr().String()
}

// noAdminIn fails unless the data directory holds no admin user (no store
// file at all, or one without the admin).
func noAdminIn(t *testing.T, dataDir string) {
	t.Helper()
	path := filepath.Join(dataDir, storeFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return
	}
	s := storetest.OpenBolt(t, storetest.Path(path))
	defer s.Close()
	if u, err := s.UserByUsername(t.Context(), adminUsername); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the failed start left an admin user (%s, err %v)", u.ID, err)
	}
}

// TestFirstStartOnAPortInUse: a first start that cannot bind one of its
// listeners fails before it creates the admin, so it prints no password
// and the next start, on free ports, creates the admin and prints its
// password. Until the admin logs in, every start says how to get a
// password; a login (even one followed by a logout) ends that.
func TestFirstStartOnAPortInUse(t *testing.T) {
	t.Parallel()
	bin := buildWarden(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	env := []string{"WARDEN_DATA_DIR=" + dataDir, "WARDEN_LOG_LEVEL=info", "WARDEN_AUDIT_LOG=off"}

	for _, c := range []struct{ flag, env string }{
		{"--mqtt-addr", "WARDEN_MQTT_ADDR"},
		{"--mqtts-addr", "WARDEN_MQTTS_ADDR"},
		{"--ws-addr", "WARDEN_WS_ADDR"},
		{"--http-addr", "WARDEN_HTTP_ADDR"},
	} {
		t.Run(c.flag+" in use fails the start before the admin exists", func(t *testing.T) {
			taken := occupy(t)
			// The other listeners on free ports.
			p := startWardenArgs(t, bin, []string{"--mqtts-addr", "127.0.0.1:0", "--ws-addr", "127.0.0.1:0", c.flag, taken}, env...)
			if code := p.exitCode(); code != exitFail {
				t.Fatalf("exit code %d, want %d; output:\n%s", code, exitFail, p.out)
			}
			out := p.out.String()
			if !strings.Contains(out, "startup failed") || !strings.Contains(out, c.flag+" ("+c.env+")") ||
				!strings.Contains(out, taken) || !strings.Contains(out, "address already in use") {
				t.Errorf("the error does not name the flag, the address and the cause:\n%s", out)
			}
			if strings.Contains(out, "generated admin password") || strings.Contains(out, "created admin user") {
				t.Errorf("the failed start created the admin:\n%s", out)
			}
			noAdminIn(t, dataDir)
		})
	}
	if t.Failed() {
		return
	}

	var pw string
	t.Run("a start on free ports creates the admin and prints its password", func(t *testing.T) {
		p := startWarden(t, bin, env...)
		p.waitFor("warden ready")
		p.signal(syscall.SIGTERM)
		if code := p.exitCode(); code != exitOK {
			t.Fatalf("exit code %d; output:\n%s", code, p.out)
		}
		pws := generatedPasswordLines(t, p.out.String())
		if len(pws) != 1 {
			t.Fatalf("generated password logged %d times, want once:\n%s", len(pws), p.out)
		}
		pw = pws[0]
		if !verify(t, pw, adminInFile(t, dataDir).PasswordHash) {
			t.Fatal("the printed password is not the admin's")
		}
		if strings.Contains(p.out.String(), adminPasswordHint) {
			t.Errorf("the start that printed the password also reminds:\n%s", p.out)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("restarts before any login remind how to get a password; a login and logout end it", func(t *testing.T) {
		p := startWarden(t, bin, env...)
		p.waitFor("warden ready")
		out := p.out.String()
		if !strings.Contains(out, "level=WARN msg=\""+adminPasswordHint+"\"") {
			t.Fatalf("no reminder at WARN on a start before the first login:\n%s", out)
		}
		if strings.Contains(out, "generated admin password") || strings.Contains(out, pw) {
			t.Errorf("the password was printed again:\n%s", out)
		}

		httpAddr := listenAddr(t, out, "http")
		var login struct {
			Token string `json:"token"`
		}
		apiCall(t, httpAddr, "POST", "/api/login", "", map[string]string{"username": adminUsername, "password": pw}, &login, 200)
		p.waitFor("the admin user has logged in")
		// The logout deletes the login's token record: what ends the
		// reminder must not depend on it.
		apiCall(t, httpAddr, "POST", "/api/logout", login.Token, nil, nil, 200)
		p.signal(syscall.SIGTERM)
		if code := p.exitCode(); code != exitOK {
			t.Fatalf("exit code %d; output:\n%s", code, p.out)
		}

		p = startWarden(t, bin, env...)
		p.waitFor("warden ready")
		p.signal(syscall.SIGTERM)
		if code := p.exitCode(); code != exitOK {
			t.Fatalf("exit code %d; output:\n%s", code, p.out)
		}
		if strings.Contains(p.out.String(), adminPasswordHint) {
			t.Errorf("still reminding after the admin logged in:\n%s", p.out)
		}
	})
}

// TestAdminPasswordReminder covers what ends the reminder in-process: a
// token of the admin, a new password (warden user add admin resets it),
// the admin deleted; and that a configured admin password never gets one.
func TestAdminPasswordReminder(t *testing.T) {
	t.Parallel()
	reminds := func(t *testing.T, s store.Store) bool {
		t.Helper()
		log, logs := newLogger()
		if err := bootstrap(t.Context(), s, "", log); err != nil {
			t.Fatal(err)
		}
		return strings.Contains(logs.String(), adminPasswordHint)
	}
	generated := func(t *testing.T) (store.Store, store.User) {
		t.Helper()
		s := storetest.OpenBolt(t)
		log, logs := newLogger()
		if err := bootstrap(t.Context(), s, "", log); err != nil {
			t.Fatal(err)
		}
		if len(logs.generatedPasswords(t)) != 1 || strings.Contains(logs.String(), adminPasswordHint) {
			t.Fatalf("first bootstrap: want the password and no reminder:\n%s", logs)
		}
		if !reminds(t, s) {
			t.Fatal("no reminder on the second start")
		}
		return s, mustAdmin(t, s)
	}

	for name, use := range map[string]func(t *testing.T, s store.Store, admin store.User){
		"a token issued to the admin": func(t *testing.T, s store.Store, admin store.User) {
			if _, err := s.CreateToken(t.Context(), store.Token{ID: "jti-1", UserID: admin.ID, Kind: "login",
				CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		},
		"a new password": func(t *testing.T, s store.Store, admin store.User) {
			if _, err := s.UpdateUser(t.Context(), admin.ID, func(u *store.User) error {
				u.PasswordHash += "x" // any other hash
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		},
		"the admin deleted": func(t *testing.T, s store.Store, admin store.User) {
			if err := s.DeleteUser(t.Context(), admin.ID); err != nil {
				t.Fatal(err)
			}
		},
	} {
		t.Run(name+" ends the reminder for good", func(t *testing.T) {
			s, admin := generated(t)
			use(t, s, admin)
			if reminds(t, s) {
				t.Fatal("still reminding")
			}
			if name == "a token issued to the admin" {
				if err := s.DeleteToken(t.Context(), "jti-1"); err != nil {
					t.Fatal(err)
				}
				if reminds(t, s) {
					t.Fatal("reminding again once the token is gone")
				}
			}
		})
	}

	t.Run("a configured admin password gets no reminder", func(t *testing.T) {
		s := storetest.OpenBolt(t)
		log, _ := newLogger()
		if err := bootstrap(t.Context(), s, validPassword(t), log); err != nil {
			t.Fatal(err)
		}
		if reminds(t, s) {
			t.Fatal("reminder for a configured password")
		}
	})
}
