package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/admin"
	"github.com/warden-mqtt/warden/internal/poll"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// rsArchive writes s as an archive.
func rsArchive(t *testing.T, s store.Snapshot) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := store.WriteArchive(&buf, s, store.ArchiveOptions{}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestRestoreRefusesArchiveWithoutActiveAdmin: an archive after whose
// restore no active user would hold connectware-admin is refused with
// 409 and the reason, and the model stays as it was; an archive in which
// another active user holds it restores.
func TestRestoreRefusesArchiveWithoutActiveAdmin(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		ctx := context.Background()
		base := bSnapshot(t, a.st)
		adminRole, err := a.st.RoleByName(ctx, admin.RoleAdmin)
		if err != nil {
			t.Fatal(err)
		}
		edit := func(fn func(s *store.Snapshot)) []byte {
			var s store.Snapshot
			raw, _ := json.Marshal(base)
			_ = json.Unmarshal(raw, &s) // a deep copy
			fn(&s)
			return rsArchive(t, s)
		}
		// Changed after the snapshot: a restore would remove it.
		marker := bUser(a, "marker-user", "marker-pass-12", nil, nil)

		for _, tc := range []struct {
			name    string
			archive []byte
		}{
			{"no user at all", edit(func(s *store.Snapshot) { s.Users, s.Tokens = nil, nil })},
			{"the only admin suspended", edit(func(s *store.Snapshot) {
				for i := range s.Users {
					s.Users[i].Suspended = true
				}
			})},
			{"the admin without the role", edit(func(s *store.Snapshot) {
				for i := range s.Users {
					s.Users[i].Roles = nil
				}
			})},
			{"the role renamed", edit(func(s *store.Snapshot) {
				for i := range s.Roles {
					if s.Roles[i].ID == adminRole.ID {
						s.Roles[i].Name = "former-admins"
					}
				}
			})},
		} {
			code, body := bUpload(a, tc.archive, false)
			if code != http.StatusConflict || errorCode(t, body) != http.StatusConflict || !strings.Contains(errorText(t, string(body)), "no active (not suspended) user holding connectware-admin") {
				t.Errorf("%s: %d %s, want 409 naming the missing active connectware-admin", tc.name, code, body)
			}
			if code, body := bUpload(a, tc.archive, true); code != http.StatusConflict {
				t.Errorf("%s, as a form upload: %d %s, want 409", tc.name, code, body)
			}
		}
		if st := bGetStatus(a); st.Running || st.Restore != nil {
			t.Errorf("a refused archive started a restore: %+v", st)
		}
		if _, err := a.st.User(ctx, marker); err != nil {
			t.Fatalf("a refused restore changed the model: %v", err)
		}

		// Another active user holding the role is enough (the caller's
		// own account is suspended by it, so the store tells when the
		// restore is done).
		if code, body := bUpload(a, edit(func(s *store.Snapshot) {
			for i := range s.Users {
				s.Users[i].Suspended = true
			}
			s.Users = append(s.Users, store.User{ID: "second-admin-id", Username: "second-admin", Roles: []string{adminRole.ID}})
		}), false); code != http.StatusAccepted {
			t.Fatalf("an archive with another active admin: %d %s, want 202", code, body)
		}
		poll.Until(t, 20*time.Second, "the restore of an archive with another active admin happens", func() bool {
			_, err := a.st.User(ctx, marker)
			return errors.Is(err, store.ErrNotFound)
		})
	})
}

// TestRestoreRefusesDecompressionBomb: about 1 MiB of gzip that inflates
// to 1 GiB, posted to the restore endpoint as raw or chunked upload, is
// refused with 413 at once, and the server allocates a few MiB for it,
// not the gigabyte. With the limit raised to the format's ceiling, the
// header passes and the inflation ratio stops it.
func TestRestoreRefusesDecompressionBomb(t *testing.T) {
	for _, limit := range []int64{0, store.MaxArchiveContentBytes} {
		a := newAPI(t, storetest.OpenBolt(t), func(o *admin.Options) { o.RestoreMaxBytes = limit })
		for _, claimed := range []int64{200 << 20, 1 << 30} {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			resp, body := rawRequest(t, "POST", a.url+"/api/maintenance/db/restore", a.admin, "application/gzip", bomb(t, claimed))
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("limit %d MiB, bomb claiming %d MiB: %d %s; allocated %.1f MiB", limit>>20, claimed>>20, resp.StatusCode, bytes.TrimSpace(body), float64(alloc)/(1<<20))
			if resp.StatusCode != http.StatusRequestEntityTooLarge || errorCode(t, body) != http.StatusRequestEntityTooLarge {
				t.Errorf("bomb claiming %d MiB: status %d, want 413", claimed>>20, resp.StatusCode)
			}
			if alloc > 64<<20 {
				t.Errorf("bomb claiming %d MiB: the request allocated %d MiB, want under 64 MiB", claimed>>20, alloc>>20)
			}
		}
		if st := bGetStatus(a); st.Restore != nil {
			t.Errorf("a bomb started a restore: %+v", st.Restore)
		}
	}
}

// bomb is a decompression bomb claiming claimed bytes of zeros.
func bomb(t *testing.T, claimed int64) io.Reader {
	r, _ := storetest.ArchiveBomb(t, claimed, "", 0)
	return r
}
