package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// bCommand runs the warden binary as a subcommand with env on top of a
// clean environment and returns its exit code, stdout and stderr.
func bCommand(t *testing.T, bin string, env []string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WARDEN_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return code, stdout.String(), stderr.String()
}

// bMustCommand is bCommand that fails the test unless the command exits 0.
func bMustCommand(t *testing.T, bin string, env []string, stdin string, args ...string) (string, string) {
	t.Helper()
	code, out, errOut := bCommand(t, bin, env, stdin, args...)
	if code != 0 {
		t.Fatalf("warden %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out, errOut
}

// bServer is a running warden with its HTTP and MQTT addresses.
type bServer struct {
	p          *process
	http, mqtt string // host:port, port
}

func bStart(t *testing.T, bin string, env ...string) *bServer {
	t.Helper()
	p := startWarden(t, bin, env...)
	p.waitFor("warden ready")
	out := p.out.String()
	mqtt := strings.Split(listenAddr(t, out, "mqtt"), ":")
	return &bServer{p: p, http: strings.Replace(listenAddr(t, out, "http"), "[::]", "127.0.0.1", 1), mqtt: mqtt[len(mqtt)-1]}
}

func (s *bServer) stop(t *testing.T) {
	t.Helper()
	s.p.signal(syscall.SIGTERM)
	if code := s.p.exitCode(); code != 0 {
		t.Fatalf("warden exit %d:\n%s", code, s.p.out)
	}
}

func (s *bServer) login(t *testing.T, user, password string) string {
	t.Helper()
	var login struct{ Token string }
	apiCall(t, s.http, "POST", "/api/login", "", map[string]string{"username": user, "password": password}, &login, 200)
	return login.Token
}

// bPub publishes once with mosquitto_pub and returns its error and output.
func bPub(t *testing.T, port, user, password, topic string) (string, error) {
	t.Helper()
	b, err := exec.Command(mosquitto(t, "mosquitto_pub"), "-h", "127.0.0.1", "-p", port, "-u", user, "-P", password,
		"-t", topic, "-m", "1", "-q", "1", "-V", "mqttv5").CombinedOutput()
	return string(b), err
}

// bSeed creates, over the running server's API, a role allowing
// plant1/# and the user device-1 holding it.
func bSeed(t *testing.T, s *bServer, adminPW, devPW string) {
	t.Helper()
	tok := s.login(t, "admin", adminPW)
	var role struct{ ID string }
	apiCall(t, s.http, "POST", "/api/roles", tok, map[string]any{"name": "plant1-devices", "isShared": true,
		"permissions": []map[string]string{{"resource": "plant1/#", "operation": "write", "context": "mqtt"}}}, &role, 201)
	apiCall(t, s.http, "POST", "/api/users", tok, map[string]any{"username": "device-1", "password": devPW, "roles": []string{role.ID}}, nil, 201)
}

// TestBinaryBackupRestore: `warden backup` and `warden restore` on the
// embedded store (offline: refused with a clear error while warden runs)
// and on Redis, across both: a restored user connects with mosquitto_pub
// and its old password, a user created after the backup is gone; `warden
// user add` recovers an admin.
func TestBinaryBackupRestore(t *testing.T) {
	t.Parallel()
	bin := buildWarden(t)
	adminPW, devPW := validPassword(t), validPassword(t)
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	boltEnv := []string{"WARDEN_DATA_DIR=" + dataDir, "WARDEN_ADMIN_PASSWORD=" + adminPW}
	archive := filepath.Join(dir, "backup.gz")
	var opsPW string // set by "user add recovers an admin"

	t.Run("backup of the embedded store, offline", func(t *testing.T) {
		s := bStart(t, bin, boltEnv...)
		bSeed(t, s, adminPW, devPW)
		if out, err := bPub(t, s.mqtt, "device-1", devPW, "plant1/temp"); err != nil {
			t.Fatalf("device-1 before the backup: %v %s", err, out)
		}

		// While warden runs, the file is locked: a clear error, exit 1.
		code, _, errOut := bCommand(t, bin, boltEnv, "", "backup", "--out", archive)
		if code != 1 || !strings.Contains(errOut, "in use") || !strings.Contains(errOut, "Stop warden first") {
			t.Errorf("backup while warden runs: exit %d, stderr %q; want 1 and a hint to stop warden", code, errOut)
		}
		if _, err := os.Stat(archive); !os.IsNotExist(err) {
			t.Errorf("a failed backup left %s: %v", archive, err)
		}
		s.stop(t)

		_, errOut = bMustCommand(t, bin, boltEnv, "", "backup", "--out", archive)
		if !strings.Contains(errOut, "without keys") {
			t.Errorf("backup message %q does not say the keys were left out", errOut)
		}
		fi, err := os.Stat(archive)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("archive %v, mode %v; want 0600", err, fi.Mode())
		}
		raw, _ := os.ReadFile(archive)
		h, snap, err := store.ReadArchiveWithHeader(bytes.NewReader(raw))
		if err != nil || h.IncludesKeys || len(snap.Users) != 2 {
			t.Fatalf("archive: %+v, %d users, %v; want admin and device-1 without keys", h, len(snap.Users), err)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("restore into the embedded store brings deleted users back with their passwords", func(t *testing.T) {
		s := bStart(t, bin, boltEnv...)
		tok := s.login(t, "admin", adminPW)
		var list struct {
			Users []struct{ ID, Username string }
		}
		apiCall(t, s.http, "GET", "/api/listUsers", tok, nil, &list, 200)
		for _, u := range list.Users {
			if u.Username == "device-1" {
				apiCall(t, s.http, "DELETE", "/api/users/"+u.ID, tok, nil, nil, 200)
			}
		}
		apiCall(t, s.http, "POST", "/api/users", tok, map[string]any{"username": "late", "password": devPW}, nil, 201)
		if _, err := bPub(t, s.mqtt, "device-1", devPW, "plant1/temp"); err == nil {
			t.Fatal("a deleted user could publish")
		}
		s.stop(t)

		// A truncated archive is refused and changes nothing.
		bad := filepath.Join(dir, "truncated.gz")
		raw, _ := os.ReadFile(archive)
		if err := os.WriteFile(bad, raw[:len(raw)/2], 0o600); err != nil {
			t.Fatal(err)
		}
		before := bSnapshotFile(t, dataDir)
		code, _, errOut := bCommand(t, bin, boltEnv, "", "restore", bad)
		if code != 1 || !strings.Contains(errOut, "truncated") || !strings.Contains(errOut, "nothing was changed") {
			t.Errorf("restore of a truncated archive: exit %d, stderr %q", code, errOut)
		}
		if diff := storetest.SameModel(bSnapshotFile(t, dataDir), before); diff != "" {
			t.Errorf("a refused restore changed the store:\n%s", diff)
		}

		bMustCommand(t, bin, boltEnv, "", "restore", archive)
		s = bStart(t, bin, boltEnv...)
		if out, err := bPub(t, s.mqtt, "device-1", devPW, "plant1/temp"); err != nil {
			t.Errorf("restored device-1 cannot publish with its old password: %v %s", err, out)
		}
		if _, err := bPub(t, s.mqtt, "late", devPW, "plant1/temp"); err == nil {
			t.Error("a user created after the backup could still publish")
		}
		s.login(t, "device-1", devPW)
		s.stop(t)
	})

	t.Run("user add recovers an admin", func(t *testing.T) {
		env := []string{"WARDEN_DATA_DIR=" + dataDir} // no WARDEN_ADMIN_PASSWORD: generated
		out, errOut := bMustCommand(t, bin, env, "", "user", "add", "ops", "--role", "admin")
		opsPW = strings.TrimSpace(out)
		if strings.Count(out, "\n") != 1 || len(opsPW) < 20 || !strings.Contains(errOut, "created user ops") || strings.Contains(errOut, opsPW) {
			t.Fatalf("user add: stdout %q, stderr %q; want the password alone on stdout", out, errOut)
		}
		// An existing user: the password is reset from stdin, the role kept.
		newAdminPW := validPassword(t)
		_, errOut = bMustCommand(t, bin, env, newAdminPW+"\n", "user", "add", "admin", "--password-stdin", "--role", "connectware-admin")
		if !strings.Contains(errOut, "password reset") {
			t.Errorf("user add of the existing admin: %q", errOut)
		}
		code, _, errOut := bCommand(t, bin, env, "", "user", "add", "xavier", "--role", "no-such-role")
		if code != 1 || !strings.Contains(errOut, `no role named "no-such-role"`) {
			t.Errorf("user add with an unknown role: exit %d, %q", code, errOut)
		}
		code, _, errOut = bCommand(t, bin, append(env, "WARDEN_ADMIN_PASSWORD=short"), "", "user", "add", "yvonne", "--role", "admin")
		if code != 2 || !strings.Contains(errOut, "policy") || strings.Contains(errOut, "short") {
			t.Errorf("user add with a weak password: exit %d, %q", code, errOut)
		}

		s := bStart(t, bin, boltEnv...)
		tok := s.login(t, "ops", opsPW)
		apiCall(t, s.http, "GET", "/api/maintenance/db", tok, nil, nil, 200)
		s.login(t, "admin", newAdminPW)
		apiCall(t, s.http, "POST", "/api/login", "", map[string]string{"username": "admin", "password": adminPW}, nil, 403)
		s.stop(t)
		adminPW = newAdminPW
	})

	t.Run("a backup of the embedded store restores into Redis and back", func(t *testing.T) {
		redisEnv := []string{"WARDEN_REDIS_URL=" + storetest.StartRedis(t).URL}
		bMustCommand(t, bin, boltEnv, "", "backup", "--out", archive)
		_, errOut := bMustCommand(t, bin, redisEnv, "", "restore", archive)
		if !strings.Contains(errOut, "Redis store") {
			t.Errorf("restore message %q does not name the Redis store", errOut)
		}
		s := bStart(t, bin, append(redisEnv, "WARDEN_DATA_DIR=")...)
		if out, err := bPub(t, s.mqtt, "device-1", devPW, "plant1/temp"); err != nil {
			t.Errorf("device-1 on Redis after the restore: %v %s", err, out)
		}
		s.login(t, "ops", opsPW)
		// Redis is not locked: a backup while warden runs is fine.
		fromRedis := filepath.Join(dir, "from-redis.gz")
		bMustCommand(t, bin, redisEnv, "", "backup", "--out", fromRedis, "--include-keys")
		s.stop(t)

		other := filepath.Join(dir, "other")
		otherEnv := []string{"WARDEN_DATA_DIR=" + other}
		bMustCommand(t, bin, otherEnv, "", "restore", fromRedis)
		s = bStart(t, bin, otherEnv...)
		if out, err := bPub(t, s.mqtt, "device-1", devPW, "plant1/temp"); err != nil {
			t.Errorf("device-1 on a new data dir after Redis -> bolt: %v %s", err, out)
		}
		s.login(t, "admin", adminPW)
		s.stop(t)
	})
}

// bSnapshotFile reads the model of a stopped warden's data dir.
func bSnapshotFile(t *testing.T, dataDir string) store.Snapshot {
	t.Helper()
	s := storetest.OpenBolt(t, storetest.Path(filepath.Join(dataDir, storeFile)))
	defer s.Close()
	snap, err := s.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// TestCommandUsage: usage mistakes exit 2 with the synopsis, --help exits
// 0, and a missing archive exits 1; nothing is opened for them.
func TestCommandUsage(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"backup without --out", []string{"backup"}, 2, "--out is required"},
		{"backup with a stray argument", []string{"backup", "--out", "x", "y"}, 2, "want 0 argument(s)"},
		{"restore without a file", []string{"restore"}, 2, "Usage: warden restore FILE"},
		{"restore of a missing file", []string{"restore", filepath.Join(dataDir, "nope.gz")}, 1, "no such file"},
		{"user without add", []string{"user", "del", "xavier"}, 2, "the only subcommand is add"},
		{"user add without a role", []string{"user", "add", "xavier"}, 2, "give at least one --role"},
		{"user add with a bad name", []string{"user", "add", "a/b", "--role", "admin"}, 2, "Usage: warden user add"},
		{"an unknown flag", []string{"backup", "--out", "x", "--bogus"}, 2, "bogus"},
		{"help", []string{"restore", "--help"}, 0, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runCommand(context.Background(), c.args, env(map[string]string{"WARDEN_DATA_DIR": dataDir}), strings.NewReader(""), &stdout, &stderr)
			if code != c.code || !strings.Contains(stderr.String(), c.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), c.code, c.want)
			}
			if c.code == 0 && !strings.Contains(stdout.String(), "Commands") {
				t.Errorf("help printed %q", stdout.String())
			}
		})
	}
	if entries, _ := os.ReadDir(dataDir); len(entries) != 0 {
		t.Errorf("usage errors created %d files in the data dir", len(entries))
	}
}

// TestUserAddRecovers: on a store without the built-in roles, user add
// creates connectware-admin again; on an existing user it resets the
// password, lifts a suspension, adds roles, adds the password grant and,
// with --reset-mfa, removes the MFA enrollment.
func TestUserAddRecovers(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	add := func(stdin string, args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := runCommand(t.Context(), append([]string{"user", "add"}, args...), env(map[string]string{"WARDEN_DATA_DIR": dataDir}),
			strings.NewReader(stdin), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	pw1, pw2 := validPassword(t), validPassword(t)
	if code, out, errOut := add(pw1+"\n", "rescue", "--role", "admin", "--password-stdin"); code != 0 || out != "" {
		t.Fatalf("user add: exit %d, stdout %q, stderr %q; want 0 and no password printed", code, out, errOut)
	}
	open := func() store.Store {
		return storetest.OpenBolt(t, storetest.Path(filepath.Join(dataDir, storeFile)))
	}
	s := open()
	role, err := s.RoleByName(t.Context(), roleAdmin)
	if err != nil || !samePermissions(role.Permissions, builtinRoles()[0].Permissions) {
		t.Fatalf("connectware-admin after user add: %+v, %v", role, err)
	}
	u, err := s.UserByUsername(t.Context(), "rescue")
	if err != nil || !slices.Contains(u.Roles, role.ID) || !verify(t, pw1, u.PasswordHash) {
		t.Fatalf("rescue after user add: %+v, %v", u, err)
	}
	// Locked out every way a user can be.
	if _, err := s.UpdateUser(t.Context(), u.ID, func(u *store.User) error {
		u.Suspended = true
		u.GrantTypes = []store.GrantType{{Method: store.GrantCertificate}}
		u.MFA = &store.MFAState{Keys: []store.MFAKey{{ID: "k", Type: store.MFATypeTOTP, Status: store.MFAStatusActive}}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()

	code, _, errOut := add(pw2+"\n", "rescue", "--role", "minimum-access", "--password-stdin", "--reset-mfa")
	if code != 0 || !strings.Contains(errOut, "password reset") {
		t.Fatalf("user add of an existing user: exit %d, %q", code, errOut)
	}
	s = open()
	defer s.Close()
	after, err := s.UserByUsername(t.Context(), "rescue")
	if err != nil {
		t.Fatal(err)
	}
	minimum, _ := s.RoleByName(t.Context(), roleMinimum)
	if after.ID != u.ID || after.Suspended || after.MFA != nil || !verify(t, pw2, after.PasswordHash) || after.PasswordVersion == u.PasswordVersion ||
		!slices.Contains(after.Roles, role.ID) || !slices.Contains(after.Roles, minimum.ID) ||
		!slices.ContainsFunc(after.GrantTypes, func(g store.GrantType) bool { return g.Method == store.GrantPassword }) {
		t.Errorf("rescue after the second user add: %+v", after)
	}
}
