package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/admin"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// TestRestoreCommandRefusesArchiveWithoutAdmin: `warden restore` refuses,
// exit 1 with the reason, an archive that leaves no active user holding
// connectware-admin, on both stores, and the store keeps its model.
func TestRestoreCommandRefusesArchiveWithoutAdmin(t *testing.T) {
	for _, kind := range []string{"bolt", "redis"} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			args := []string{"--data-dir", filepath.Join(t.TempDir(), "data")}
			if kind == "redis" {
				args = []string{"--redis-url", storetest.StartRedis(t).URL}
			}
			cf := newCommandFlags("restore", commandEnv{getenv: env(nil)})
			if _, exit := cf.parse(append([]string{"x"}, args...), 1, ""); exit >= 0 {
				t.Fatal("flags")
			}
			s, _, err := openStore(ctx, cf.cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			role, err := s.CreateRole(ctx, store.Role{Name: admin.RoleAdmin, IsShared: true,
				Permissions: []acl.Permission{{Resource: "/#", Operation: acl.OpReadWrite, Context: acl.ContextHTTP}}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.CreateUser(ctx, store.User{Username: "admin", Roles: []string{role.ID}}); err != nil {
				t.Fatal(err)
			}
			snap, err := s.Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.CreateUser(ctx, store.User{Username: "marker"}); err != nil {
				t.Fatal(err)
			}
			_ = s.Close()
			for i := range snap.Users {
				snap.Users[i].Suspended = true
			}
			file := filepath.Join(t.TempDir(), "no-admin.gz")
			var buf bytes.Buffer
			if _, err := store.WriteArchive(&buf, snap, store.ArchiveOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}

			var stdout, stderr bytes.Buffer
			code := runCommand(ctx, append([]string{"restore", file}, args...), env(nil), strings.NewReader(""), &stdout, &stderr)
			if code != exitFail || !strings.Contains(stderr.String(), "no active (not suspended) user holding connectware-admin") || !strings.Contains(stderr.String(), "nothing was changed") {
				t.Errorf("exit %d, stderr %q; want 1 naming the missing active connectware-admin", code, stderr.String())
			}
			s, _, err = openStore(ctx, cf.cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := s.UserByUsername(ctx, "marker"); err != nil {
				t.Errorf("the refused restore changed the store: %v", err)
			}
		})
	}
}

// TestRestoreCommandRefusesDecompressionBomb: `warden restore -` reading
// about 1 MiB of gzip that inflates to 1 GiB exits 1, saying it is too
// large, after reading a little of it; and --restore-max-size lowers the
// limit below an archive's size.
func TestRestoreCommandRefusesDecompressionBomb(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	for _, claimed := range []int64{200 << 20, 1 << 30} {
		var stdout, stderr bytes.Buffer
		in, read := storetest.ArchiveBomb(t, claimed, "", 0)
		code := runCommand(t.Context(), []string{"restore", "-", "--data-dir", dataDir}, env(nil), in, &stdout, &stderr)
		t.Logf("claiming %d MiB: exit %d after %d KiB of gzip: %s", claimed>>20, code, read()>>10, strings.TrimSpace(stderr.String()))
		if code != exitFail || !strings.Contains(stderr.String(), "too large") {
			t.Errorf("claiming %d MiB: exit %d, stderr %q; want 1 and too large", claimed>>20, code, stderr.String())
		}
		if read() > 1<<20 {
			t.Errorf("claiming %d MiB: read %d KiB before refusing", claimed>>20, read()>>10)
		}
	}
	var buf bytes.Buffer
	if _, err := store.WriteArchive(&buf, store.Snapshot{Settings: map[string][]byte{"a": bytes.Repeat([]byte("b"), 4096)}}, store.ArchiveOptions{}); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := runCommand(t.Context(), []string{"restore", "-", "--data-dir", dataDir, "--restore-max-size", "1000"}, env(nil), &buf, &stdout, &stderr)
	if code != exitFail || !strings.Contains(stderr.String(), "--restore-max-size") {
		t.Errorf("over --restore-max-size: exit %d, stderr %q", code, stderr.String())
	}
}

// TestRestoreBombMemory posts decompression bombs (about 1 MiB of gzip
// inflating to 1 GiB, and 200 KiB inflating to 200 MiB) to a running
// warden's restore endpoint and measures the process's resident memory:
// it must not grow by what the bombs inflate to.
//
//	WARDEN_TEST_BIN=/work/before/warden go test -run TestRestoreBombMemory -v ./cmd/warden
//
// gives the figure before the fix.
func TestRestoreBombMemory(t *testing.T) {
	bin := buildWarden(t)
	pw := validPassword(t)
	s := bStart(t, bin, "WARDEN_DATA_DIR="+filepath.Join(t.TempDir(), "data"), "WARDEN_ADMIN_PASSWORD="+pw)
	tok := s.login(t, "admin", pw)
	before := rssMiB(t, s.p.pid())
	peak := before
	for _, claimed := range []int64{200 << 20, 1 << 30} {
		req, err := http.NewRequest("POST", "http://"+s.http+"/api/maintenance/db/restore", bombReader(t, claimed))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/gzip")
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil && !errors.Is(err, io.ErrClosedPipe) {
			t.Fatalf("post: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		rss := rssMiB(t, s.p.pid())
		peak = max(peak, rss)
		t.Logf("bomb claiming %d MiB: %d %s; RSS %.1f MiB", claimed>>20, resp.StatusCode, bytes.TrimSpace(body), rss)
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("bomb claiming %d MiB: status %d, want 413", claimed>>20, resp.StatusCode)
		}
	}
	t.Logf("RSS before %.1f MiB, after the bombs %.1f MiB (growth %.1f MiB)", before, peak, peak-before)
	if peak-before > 50 {
		t.Errorf("RSS grew by %.1f MiB, want under 50 MiB", peak-before)
	}
	s.stop(t)
}

// bombReader is a decompression bomb claiming claimed bytes of zeros.
func bombReader(t *testing.T, claimed int64) io.Reader {
	r, _ := storetest.ArchiveBomb(t, claimed, "", 0)
	return r
}
