package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/internal/logbuf"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// logBuffer is a concurrency-safe io.Writer that slog writes JSON lines
// into, and that tests read back as records.
type logBuffer struct{ logbuf.Buffer }

// records decodes every logged line.
func (b *logBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// generatedPasswords returns the passwords of the generated-password
// records, and fails if such a record is not at WARN.
func (b *logBuffer) generatedPasswords(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, r := range b.records(t) {
		msg, _ := r["msg"].(string)
		if pw, ok := strings.CutPrefix(msg, generatedPasswordMsg); ok {
			if r["level"] != "WARN" {
				t.Errorf("generated password logged at %v, want WARN", r["level"])
			}
			out = append(out, pw)
		}
	}
	return out
}

func newLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

func mustAdmin(t *testing.T, s store.Store) store.User {
	t.Helper()
	u, err := s.UserByUsername(t.Context(), adminUsername)
	if err != nil {
		t.Fatalf("admin user: %v", err)
	}
	return u
}

func verify(t *testing.T, password, hash string) bool {
	t.Helper()
	ok, err := credential.Verify(password, hash)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return ok
}

func TestBootstrapCreatesBuiltinRolesAndAdmin(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := storetest.OpenBolt(t)
	log, logs := newLogger()
	pw := validPassword(t)

	if err := bootstrap(ctx, s, pw, log); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}

	admRole, err := s.RoleByName(ctx, roleAdmin)
	if err != nil {
		t.Fatalf("role %s: %v", roleAdmin, err)
	}
	wantAdm := []acl.Permission{
		{Resource: "/#", Operation: acl.OpReadWrite, Context: acl.ContextHTTP},
		{Resource: "#", Operation: acl.OpReadWrite, Context: acl.ContextMQTT},
	}
	if !admRole.IsShared || !samePermissions(admRole.Permissions, wantAdm) {
		t.Errorf("%s = shared %v, %+v; want shared, %+v", roleAdmin, admRole.IsShared, admRole.Permissions, wantAdm)
	}
	minRole, err := s.RoleByName(ctx, roleMinimum)
	if err != nil {
		t.Fatalf("role %s: %v", roleMinimum, err)
	}
	wantMin := []acl.Permission{{Resource: "/api/session", Operation: acl.OpRead, Context: acl.ContextHTTP}}
	if !minRole.IsShared || !samePermissions(minRole.Permissions, wantMin) {
		t.Errorf("%s = shared %v, %+v; want shared, %+v", roleMinimum, minRole.IsShared, minRole.Permissions, wantMin)
	}

	admin := mustAdmin(t, s)
	if !reflect.DeepEqual(admin.Roles, []string{admRole.ID}) {
		t.Errorf("admin roles = %v, want [%s]", admin.Roles, admRole.ID)
	}
	if !reflect.DeepEqual(admin.GrantTypes, []store.GrantType{{Method: store.GrantPassword}}) {
		t.Errorf("admin grant types = %+v, want password", admin.GrantTypes)
	}
	if admin.IdentityProvider != "local" {
		t.Errorf("admin identity provider = %q, want local", admin.IdentityProvider)
	}
	if !verify(t, pw, admin.PasswordHash) {
		t.Error("the configured password does not verify against the admin's hash")
	}
	if verify(t, pw+"x", admin.PasswordHash) {
		t.Error("a wrong password verifies")
	}

	if _, err := s.Setting(ctx, bootstrapSetting); err != nil {
		t.Errorf("bootstrap not recorded: %v", err)
	}
	if strings.Contains(logs.String(), pw) {
		t.Errorf("the configured password was logged:\n%s", logs)
	}
	if got := logs.generatedPasswords(t); len(got) != 0 {
		t.Errorf("a generated password was logged although one was configured")
	}
}

// samePermissions compares permissions ignoring the IDs the store assigns.
func samePermissions(got, want []acl.Permission) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g := got[i]
		g.ID = ""
		if g != want[i] {
			return false
		}
	}
	return true
}

func TestBootstrapGeneratesAndLogsThePasswordOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := storetest.OpenBolt(t)
	log, logs := newLogger()

	if err := bootstrap(ctx, s, "", log); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	pws := logs.generatedPasswords(t)
	if len(pws) != 1 {
		t.Fatalf("generated password logged %d times, want once; logs:\n%s", len(pws), logs)
	}
	pw := pws[0]
	if len(pw) != generatedPasswordLength {
		t.Errorf("generated password has %d characters, want %d", len(pw), generatedPasswordLength)
	}
	if err := credential.DefaultPolicy().Check(pw); err != nil {
		t.Errorf("generated password fails the default policy: %v", err)
	}
	if !verify(t, pw, mustAdmin(t, s).PasswordHash) {
		t.Error("the logged password does not verify against the admin's hash")
	}
	if strings.Trim(pw, passwordAlphabet) != "" {
		t.Errorf("generated password %q has characters outside the shell-safe alphabet", pw)
	}
	if n := strings.Count(logs.String(), pw); n != 1 {
		t.Errorf("the password appears %d times in the log, want once", n)
	}

	// Restarts never log it again.
	for range 2 {
		if err := bootstrap(ctx, s, "", log); err != nil {
			t.Fatalf("second bootstrap: %v", err)
		}
	}
	if got := logs.generatedPasswords(t); len(got) != 1 {
		t.Errorf("after restarts the generated password was logged %d times, want once", len(got))
	}
}

func TestBootstrapKeepsTheExistingAdmin(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := storetest.OpenBolt(t)
	first := validPassword(t)
	log, _ := newLogger()
	if err := bootstrap(ctx, s, first, log); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	before := mustAdmin(t, s)

	second := validPassword(t)
	log, logs := newLogger()
	if err := bootstrap(ctx, s, second, log); err != nil {
		t.Fatalf("second bootstrap: %v", err)
	}
	after := mustAdmin(t, s)
	if after.ID != before.ID || after.PasswordHash != before.PasswordHash || after.PasswordVersion != before.PasswordVersion {
		t.Errorf("admin changed on restart: id %s→%s, hash changed %v", before.ID, after.ID, after.PasswordHash != before.PasswordHash)
	}
	if !verify(t, first, after.PasswordHash) || verify(t, second, after.PasswordHash) {
		t.Error("the admin's password is not the first one any more")
	}
	if !strings.Contains(logs.String(), "admin password setting ignored") {
		t.Errorf("no notice that the admin password setting was ignored; logs:\n%s", logs)
	}
	if strings.Contains(logs.String(), second) {
		t.Error("the new admin password was logged")
	}
	for _, r := range logs.records(t) {
		if r["msg"] == "admin password setting ignored: the store was initialised before, change the password through the API instead" && r["level"] != "INFO" {
			t.Errorf("ignored-password notice at %v, want INFO", r["level"])
		}
	}
}

func TestBootstrapDoesNotResurrectADeletedAdmin(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := storetest.OpenBolt(t)
	log, _ := newLogger()
	if err := bootstrap(ctx, s, "", log); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	if err := s.DeleteUser(ctx, mustAdmin(t, s).ID); err != nil {
		t.Fatalf("delete admin: %v", err)
	}
	adm, _ := s.RoleByName(ctx, roleAdmin)
	if err := s.DeleteRole(ctx, adm.ID); err != nil {
		t.Fatalf("delete role: %v", err)
	}

	log, logs := newLogger()
	if err := bootstrap(ctx, s, "", log); err != nil {
		t.Fatalf("second bootstrap: %v", err)
	}
	if _, err := s.UserByUsername(ctx, adminUsername); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted admin: got %v, want ErrNotFound", err)
	}
	if _, err := s.RoleByName(ctx, roleAdmin); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted role: got %v, want ErrNotFound", err)
	}
	if got := logs.generatedPasswords(t); len(got) != 0 {
		t.Errorf("a password was generated for a deliberately deleted admin")
	}
}

func TestBootstrapLeavesExistingRecordsAlone(t *testing.T) {
	t.Parallel()
	// A store that already has records (restored from a backup, or a first
	// start that stopped halfway) keeps them; only what is missing is
	// created.
	ctx := t.Context()
	s := storetest.OpenBolt(t)
	custom := []acl.Permission{{Resource: "plant/#", Operation: acl.OpRead, Context: acl.ContextMQTT}}
	pre, err := s.CreateRole(ctx, store.Role{Name: roleAdmin, IsShared: true, Permissions: custom})
	if err != nil {
		t.Fatalf("create role: %v", err)
	}
	log, logs := newLogger()
	if err := bootstrap(ctx, s, "", log); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	got, _ := s.RoleByName(ctx, roleAdmin)
	if got.ID != pre.ID || !samePermissions(got.Permissions, custom) {
		t.Errorf("existing role changed: %+v", got)
	}
	if _, err := s.RoleByName(ctx, roleMinimum); err != nil {
		t.Errorf("missing role not created: %v", err)
	}
	if admin := mustAdmin(t, s); !reflect.DeepEqual(admin.Roles, []string{pre.ID}) {
		t.Errorf("admin roles = %v, want the existing role %s", admin.Roles, pre.ID)
	}
	if len(logs.generatedPasswords(t)) != 1 {
		t.Errorf("want one generated password for the new admin")
	}
}

func TestBootstrapConcurrentlyOnOneStore(t *testing.T) {
	t.Parallel()
	s := storetest.OpenBolt(t)
	bootstrapConcurrently(t, []store.Store{s, s, s, s})
}

func TestBootstrapConcurrentlyOnOneRedis(t *testing.T) {
	t.Parallel()
	// Four nodes, each with its own connection, like four warden
	// processes starting at once against one Redis.
	url := storetest.StartRedis(t).URL
	var nodes []store.Store
	for range 4 {
		nodes = append(nodes, storetest.OpenRedis(t, storetest.URL(url)))
	}
	bootstrapConcurrently(t, nodes)
}

func bootstrapConcurrently(t *testing.T, nodes []store.Store) {
	t.Helper()
	ctx := t.Context()
	log, logs := newLogger()
	start := make(chan struct{})
	errs := make(chan error, len(nodes))
	var wg sync.WaitGroup
	for i, s := range nodes {
		wg.Go(func() {
			<-start
			errs <- bootstrap(ctx, s, "", log.With("node", i))
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("bootstrap: %v", err)
		}
	}

	s := nodes[0]
	users, err := s.Users(ctx)
	if err != nil {
		t.Fatalf("users: %v", err)
	}
	if len(users) != 1 || users[0].Username != adminUsername {
		t.Fatalf("got users %v, want exactly one admin", users)
	}
	roles, err := s.Roles(ctx)
	if err != nil {
		t.Fatalf("roles: %v", err)
	}
	if len(roles) != 2 {
		t.Errorf("got %d roles, want the 2 built-in ones", len(roles))
	}
	// Exactly one node created the admin, and only it logs the password:
	// the one stored.
	pws := logs.generatedPasswords(t)
	if len(pws) != 1 {
		t.Fatalf("generated password logged %d times, want once; logs:\n%s", len(pws), logs)
	}
	if !verify(t, pws[0], users[0].PasswordHash) {
		t.Error("the logged password is not the admin's")
	}
}
