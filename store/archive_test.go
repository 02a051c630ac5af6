package store_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/natscallout"
	"github.com/warden-mqtt/warden/pki"
	"github.com/warden-mqtt/warden/registry"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// archiveModel fills s like a running warden would: users, roles, tokens,
// a registry request and settings (fillModel), the real key settings the
// pki and credential packages create, and a user with a sealed TOTP key.
func archiveModel(t *testing.T, ctx context.Context, s store.Store) {
	t.Helper()
	fillModel(t, ctx, s)
	withKeys(t, ctx, s)
	mfa, err := credential.NewMFA(ctx, s)
	if err != nil {
		t.Fatalf("NewMFA: %v", err)
	}
	alice, err := s.UserByUsername(ctx, "alice")
	if err != nil {
		t.Fatalf("UserByUsername: %v", err)
	}
	key, _, err := mfa.NewKey(alice.ID, alice.Username, time.Now())
	if err != nil {
		t.Fatalf("NewKey: %v", err)
	}
	if _, err := s.UpdateUser(ctx, alice.ID, func(u *store.User) error {
		u.MFA = &store.MFAState{Keys: []store.MFAKey{key}, BackupCodes: []string{"code-hash"}}
		return nil
	}); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
}

// withKeys creates the key settings of a warden node on s: the internal
// CA, the token key set, the MFA encryption key and the NATS callout
// issuer.
func withKeys(t *testing.T, ctx context.Context, s store.Store) {
	t.Helper()
	if _, err := pki.LoadOrCreateCA(ctx, s, pki.DefaultCAName); err != nil {
		t.Fatalf("LoadOrCreateCA: %v", err)
	}
	if _, err := credential.NewTokens(ctx, s, "archive-test"); err != nil {
		t.Fatalf("NewTokens: %v", err)
	}
	if _, err := credential.NewMFA(ctx, s); err != nil {
		t.Fatalf("NewMFA: %v", err)
	}
	if _, err := natscallout.LoadIssuer(ctx, s); err != nil {
		t.Fatalf("LoadIssuer: %v", err)
	}
}

func mustSnapshot(t *testing.T, ctx context.Context, s store.Store) store.Snapshot {
	t.Helper()
	snap, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	return snap
}

func writeArchive(t *testing.T, snap store.Snapshot, opts store.ArchiveOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := store.WriteArchive(&buf, snap, opts); err != nil {
		t.Fatalf("WriteArchive: %v", err)
	}
	return buf.Bytes()
}

// keysOf returns the key settings of a snapshot.
func keysOf(s store.Snapshot) map[string][]byte {
	out := map[string][]byte{}
	for k, v := range s.Settings {
		if store.IsKeySetting(k) {
			out[k] = v
		}
	}
	return out
}

// TestArchiveRoundTrip: a model written to an archive and restored with
// RestoreBackup is the same model, on each store and across them; without
// keys, the target keeps its own key settings and everything else comes
// from the archive.
func TestArchiveRoundTrip(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	open := map[string]func(t *testing.T) store.Store{
		"bolt":  func(t *testing.T) store.Store { return storetest.OpenBolt(t) },
		"redis": func(t *testing.T) store.Store { return storetest.OpenRedis(t) },
	}
	for _, pair := range [][2]string{{"bolt", "bolt"}, {"redis", "redis"}, {"bolt", "redis"}, {"redis", "bolt"}} {
		for _, keys := range []bool{true, false} {
			name := fmt.Sprintf("%s to %s, keys %v", pair[0], pair[1], keys)
			t.Run(name, func(t *testing.T) {
				src := open[pair[0]](t)
				archiveModel(t, ctx, src)
				want := mustSnapshot(t, ctx, src)
				if len(keysOf(want)) < 3 {
					t.Fatalf("the source model has only the key settings %v", keysOf(want))
				}
				raw := writeArchive(t, want, store.ArchiveOptions{IncludeKeys: keys})

				dst := open[pair[1]](t)
				withKeys(t, ctx, dst) // a running target has keys of its own
				dstKeys := keysOf(mustSnapshot(t, ctx, dst))
				if _, err := dst.CreateUser(ctx, store.User{Username: "only-in-target"}); err != nil {
					t.Fatal(err)
				}

				h, snap, err := store.ReadArchiveWithHeader(bytes.NewReader(raw))
				if err != nil {
					t.Fatalf("ReadArchive: %v", err)
				}
				if h.IncludesKeys != keys || h.ModelVersion != want.Version || h.FormatVersion != store.ArchiveFormatVersion {
					t.Errorf("header %+v: want includesKeys %v, model version %d", h, keys, want.Version)
				}
				if err := store.RestoreBackup(ctx, dst, snap); err != nil {
					t.Fatalf("RestoreBackup: %v", err)
				}
				got := mustSnapshot(t, ctx, dst)
				if !keys {
					// The target's keys, the source's everything else.
					for k := range keysOf(want) {
						delete(want.Settings, k)
					}
					for k, v := range dstKeys {
						want.Settings[k] = v
					}
				}
				if diff := storetest.SameModel(got, want); diff != "" {
					t.Errorf("restored model differs:\n%s", diff)
				}
				if _, err := dst.UserByUsername(ctx, "only-in-target"); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("a user only the target had survived the restore: %v", err)
				}
				alice, err := dst.UserByUsername(ctx, "alice")
				if err != nil || alice.PasswordHash != "hash-alice" || alice.MFA == nil || len(alice.MFA.Keys) != 1 {
					t.Errorf("alice after restore: %+v, %v; want her password hash and MFA key", alice, err)
				}
				shared, err := dst.RoleByName(ctx, "shared")
				if err != nil || !slices.Equal(shared.LdapGroups, []string{"cn=shared,ou=groups,dc=example,dc=org"}) ||
					!slices.Equal(alice.LdapRoles, []string{shared.ID}) {
					t.Errorf("after restore: role shared links %q (%v), alice's directory roles %q; want the group link and the role", shared.LdapGroups, err, alice.LdapRoles)
				}
			})
		}
	}
}

// TestArchiveKeysOnlyWhenAsked: key settings are left out unless
// IncludeKeys is set; every other setting is always in.
func TestArchiveKeysOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := storetest.OpenBolt(t)
	archiveModel(t, ctx, s)
	snap := mustSnapshot(t, ctx, s)

	without, err := store.ReadArchive(bytes.NewReader(writeArchive(t, snap, store.ArchiveOptions{})))
	if err != nil {
		t.Fatalf("ReadArchive: %v", err)
	}
	if k := keysOf(without); len(k) != 0 {
		t.Errorf("an archive made without IncludeKeys holds %d key settings", len(k))
	}
	for _, k := range []string{"ca/key", "registry"} {
		if !bytes.Equal(without.Settings[k], snap.Settings[k]) {
			t.Errorf("setting %q = %q, want %q", k, without.Settings[k], snap.Settings[k])
		}
	}
	// No secret bytes hide anywhere in the archive either.
	plain := gunzip(t, writeArchive(t, snap, store.ArchiveOptions{}))
	for k, v := range keysOf(snap) {
		enc, _ := json.Marshal(v)
		if bytes.Contains(plain, enc) || bytes.Contains(plain, []byte(k)) && k != "jwt/" {
			t.Errorf("the archive without keys contains setting %q", k)
		}
	}

	with, err := store.ReadArchive(bytes.NewReader(writeArchive(t, snap, store.ArchiveOptions{IncludeKeys: true})))
	if err != nil {
		t.Fatalf("ReadArchive: %v", err)
	}
	if diff := storetest.SameModel(with, snap); diff != "" {
		t.Errorf("an archive with keys is not the whole model:\n%s", diff)
	}
}

// TestKeySettingsNameTheRealKeys: the names store treats as key material
// are the ones the pki and credential packages write, and no others.
func TestKeySettingsNameTheRealKeys(t *testing.T) {
	t.Parallel()
	for _, k := range []string{pki.SettingCA, credential.SettingSigningKey, credential.SettingKeySet, credential.SettingKeySet + "/1",
		credential.SettingKeySet + "/12", credential.SettingMFAKey, natscallout.SettingIssuer} {
		if !store.IsKeySetting(k) {
			t.Errorf("IsKeySetting(%q) = false, want true", k)
		}
	}
	for _, k := range []string{pki.SettingTrusted, registry.SettingState, "bootstrap", "pki/cab", "mfa/encryption-key2", "jwt", "nats"} {
		if store.IsKeySetting(k) {
			t.Errorf("IsKeySetting(%q) = true, want false", k)
		}
	}
	// Every setting a node creates at start is either one of those keys
	// or public.
	ctx := t.Context()
	s := storetest.OpenBolt(t)
	withKeys(t, ctx, s)
	for k := range mustSnapshot(t, ctx, s).Settings {
		if !store.IsKeySetting(k) {
			t.Errorf("a node created setting %q, which is not a key setting: decide whether it is secret", k)
		}
	}
}

func gunzip(t *testing.T, raw []byte) []byte {
	t.Helper()
	b, err := gunzipErr(raw)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// gunzipErr returns the decompressed content of raw, or gzip's error.
func gunzipErr(raw []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

func gz(t *testing.T, parts ...[]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	for _, p := range parts {
		if _, err := zw.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// handMade builds an archive by the documented layout, with header fields
// overridden by edit.
func handMade(t *testing.T, content []byte, edit func(h map[string]any)) []byte {
	t.Helper()
	sum := sha256.Sum256(content)
	h := map[string]any{"format": "warden-backup", "formatVersion": 1, "createdAt": "2025-05-17T17:36:56.589Z",
		"modelVersion": 7, "includesKeys": false, "contentLength": len(content), "contentSha256": hex.EncodeToString(sum[:])}
	if edit != nil {
		edit(h)
	}
	line, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	return gz(t, line, []byte("\n"), content)
}

// TestArchiveLayout: an archive written by hand to the layout archive.go
// documents reads, and WriteArchive writes that layout.
func TestArchiveLayout(t *testing.T) {
	t.Parallel()
	content := []byte(`{"version":7,"users":[{"id":"u1","username":"alice","passwordHash":"h","passwordVersion":1,"autoGenerated":false,"identityProvider":"local","grantTypes":null,"certificates":null,"roles":["r1"],"enforceMFAEnrollment":false,"createdAt":"2025-01-01T00:00:00Z","updatedAt":"2025-01-01T00:00:00Z"}],` +
		`"roles":[{"id":"r1","name":"devices","isShared":true,"autoGenerated":false,"permissions":[{"id":"p1","resource":"plant/#","operation":"read","context":"mqtt"}],"createdAt":"2025-01-01T00:00:00Z","updatedAt":"2025-01-01T00:00:00Z"}],` +
		`"tokens":[],"registryRequests":[],"settings":{"registry/state":"e30="}}`)
	h, s, err := store.ReadArchiveWithHeader(bytes.NewReader(handMade(t, content, nil)))
	if err != nil {
		t.Fatalf("ReadArchive of a hand-made archive: %v", err)
	}
	if h.ID != "7_2025-05-17T17:36:56.589Z" || len(s.Users) != 1 || s.Users[0].PasswordHash != "h" || string(s.Settings["registry/state"]) != "{}" {
		t.Errorf("read %+v / %+v", h, s)
	}

	raw := writeArchive(t, s, store.ArchiveOptions{CreatedAt: time.Date(2025, 5, 17, 17, 36, 56, 589_000_000, time.UTC)})
	header, rest, ok := bytes.Cut(gunzip(t, raw), []byte("\n"))
	if !ok {
		t.Fatal("no header line")
	}
	var got map[string]any
	if err := json.Unmarshal(header, &got); err != nil {
		t.Fatalf("header: %v", err)
	}
	sum := sha256.Sum256(rest)
	if got["format"] != "warden-backup" || got["formatVersion"] != 1.0 || got["contentSha256"] != hex.EncodeToString(sum[:]) ||
		got["contentLength"] != float64(len(rest)) || got["includesKeys"] != false || got["createdAt"] != "2025-05-17T17:36:56.589Z" ||
		got["id"] != "7_2025-05-17T17:36:56.589Z" {
		t.Errorf("header %s does not follow the documented layout", header)
	}
}

func wantRefused(t *testing.T, what string, raw []byte, wantText string) {
	t.Helper()
	_, err := store.ReadArchive(bytes.NewReader(raw))
	if err == nil {
		t.Errorf("%s: ReadArchive succeeded", what)
		return
	}
	if !errors.Is(err, store.ErrArchive) {
		t.Errorf("%s: err = %v, want ErrArchive", what, err)
	}
	if !strings.Contains(err.Error(), wantText) {
		t.Errorf("%s: err = %q, want it to say %q", what, err, wantText)
	}
}

// TestArchiveRefusesDamage: truncated, corrupt, foreign and newer
// archives are refused, each with an error that says which.
func TestArchiveRefusesDamage(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := storetest.OpenBolt(t)
	archiveModel(t, ctx, s)
	good := writeArchive(t, mustSnapshot(t, ctx, s), store.ArchiveOptions{IncludeKeys: true})
	if _, err := store.ReadArchive(bytes.NewReader(good)); err != nil {
		t.Fatalf("the intact archive: %v", err)
	}

	t.Run("truncated", func(t *testing.T) {
		wantRefused(t, "empty", nil, "empty")
		for _, n := range []int{1, 2, 9, 10, 11, 40, len(good) / 4, len(good) / 2, len(good) - 9, len(good) - 8, len(good) - 4, len(good) - 1} {
			want := "truncated"
			if n < 2 {
				want = "not gzip" // one byte is no gzip magic
			}
			wantRefused(t, fmt.Sprintf("cut to %d of %d bytes", n, len(good)), good[:n], want)
		}
	})
	t.Run("a flipped byte anywhere past the gzip header", func(t *testing.T) {
		// Bytes 4-9 of a gzip header (mtime, flags, OS) are not checked by
		// design; everything from the compressed data on is. Deflate has a
		// little redundancy (about one archive in 40 has a bit, in a Huffman
		// table, whose flip decodes to the very same content): such a flip
		// damages nothing, so it may be read; any flip that changes what the
		// archive holds must be refused.
		content := gunzip(t, good)
		harmless := 0
		for i := 10; i < len(good); i++ {
			bad := bytes.Clone(good)
			bad[i] ^= 0x01
			_, err := store.ReadArchive(bytes.NewReader(bad))
			if err == nil {
				if got, gzErr := gunzipErr(bad); gzErr == nil && bytes.Equal(got, content) {
					harmless++
					continue
				}
			}
			if !errors.Is(err, store.ErrArchive) {
				t.Fatalf("byte %d flipped: err = %v, want ErrArchive", i, err)
			}
		}
		t.Logf("%d of %d flips decoded to the same content", harmless, len(good)-10)
	})
	t.Run("wrong magic or foreign content", func(t *testing.T) {
		bad := bytes.Clone(good)
		bad[0] = 'P'
		wantRefused(t, "first magic byte changed", bad, "not a warden backup")
		wantRefused(t, "a zip file", []byte("PK\x03\x04rest of a zip"), "not a warden backup")
		wantRefused(t, "plain JSON", []byte(`{"format":"warden-backup"}`), "not a warden backup")
		wantRefused(t, "gzip of text", gz(t, []byte("hello world\n")), "not a warden backup")
		wantRefused(t, "gzip without a newline", gz(t, []byte("hello world")), "not a warden backup")
		wantRefused(t, "another format", handMade(t, []byte(`{}`), func(h map[string]any) { h["format"] = "other-backup" }), "not a warden backup")
		wantRefused(t, "a header line too long", gz(t, bytes.Repeat([]byte("x"), store.MaxArchiveHeaderBytes+10)), "no header line")
	})
	t.Run("future format version", func(t *testing.T) {
		raw := handMade(t, []byte(`{}`), func(h map[string]any) { h["formatVersion"] = 2 })
		_, err := store.ReadArchive(bytes.NewReader(raw))
		if !errors.Is(err, store.ErrArchiveVersion) || !errors.Is(err, store.ErrArchive) {
			t.Fatalf("err = %v, want ErrArchiveVersion wrapping ErrArchive", err)
		}
		if !strings.Contains(err.Error(), "format version 2") || !strings.Contains(err.Error(), "reads up to 1") {
			t.Errorf("err = %q, want it to name both versions", err)
		}
		wantRefused(t, "format version 0", handMade(t, []byte(`{}`), func(h map[string]any) { h["formatVersion"] = 0 }), "not valid")
	})
	t.Run("content that does not match its header", func(t *testing.T) {
		wantRefused(t, "checksum of other content", handMade(t, []byte(`{}`), func(h map[string]any) { h["contentSha256"] = strings.Repeat("ab", 32) }), "checksum")
		wantRefused(t, "no checksum", handMade(t, []byte(`{}`), func(h map[string]any) { delete(h, "contentSha256") }), "contentSha256")
		wantRefused(t, "shorter than announced", handMade(t, []byte(`{}`), func(h map[string]any) { h["contentLength"] = 3 }), "truncated")
		wantRefused(t, "longer than announced", handMade(t, []byte(`{}`), func(h map[string]any) { h["contentLength"] = 1 }), "longer than the header says")
		wantRefused(t, "a huge announced length", handMade(t, []byte(`{}`), func(h map[string]any) { h["contentLength"] = int64(store.MaxArchiveContentBytes) + 1 }), "out of range")
		wantRefused(t, "data after the archive", append(bytes.Clone(good), 0), "data after the end")
		wantRefused(t, "a second gzip member", append(bytes.Clone(good), gz(t, []byte("more"))...), "data after the end")
	})
	t.Run("content that is not a usable model", func(t *testing.T) {
		wantRefused(t, "not JSON", handMade(t, []byte(`{"users":[`), nil), "corrupt content")
		wantRefused(t, "an unknown field", handMade(t, []byte(`{"users":[],"groups":[]}`), nil), "corrupt content")
		wantRefused(t, "two JSON values", handMade(t, []byte(`{} {}`), nil), "data after the model")
		wantRefused(t, "a user holding a missing role", handMade(t, []byte(`{"users":[{"id":"u","username":"alice","roles":["nope"]}]}`), nil), "inconsistent")
		wantRefused(t, "keys the header denies", handMade(t, []byte(`{"settings":{"pki/ca":"eA=="}}`), nil), "holds no keys")
	})
}

// FuzzReadArchive: ReadArchive never panics, and what it accepts restores.
func FuzzReadArchive(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x1f, 0x8b})
	var buf bytes.Buffer
	if _, err := store.WriteArchive(&buf, store.Snapshot{Settings: map[string][]byte{"a": []byte("b")}}, store.ArchiveOptions{}); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, err := store.ReadArchive(bytes.NewReader(raw))
		if err != nil {
			if !errors.Is(err, store.ErrArchive) {
				t.Fatalf("err = %v, want ErrArchive", err)
			}
			return
		}
		st := storetest.OpenBolt(t)
		if err := store.RestoreBackup(t.Context(), st, s); err != nil {
			t.Fatalf("an accepted archive does not restore: %v", err)
		}
	})
}

// TestArchiveLeavesRuntimeSettingsOut: the nodes' client lists and
// disconnect requests (RuntimeSettings) are not in a backup, with or
// without keys, and a restore keeps the target's own, whatever the
// snapshot holds: restoring never shows or kicks clients of the past.
func TestArchiveLeavesRuntimeSettingsOut(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	src := storetest.OpenBolt(t)
	fillModel(t, ctx, src)
	for _, k := range []string{"clients/node/n1", "clients/kick/n1/abc"} {
		if err := src.PutSetting(ctx, k, []byte("old "+k)); err != nil {
			t.Fatal(err)
		}
	}
	snap := mustSnapshot(t, ctx, src)
	for _, keys := range []bool{false, true} {
		got, err := store.ReadArchive(bytes.NewReader(writeArchive(t, snap, store.ArchiveOptions{IncludeKeys: keys})))
		if err != nil {
			t.Fatalf("ReadArchive: %v", err)
		}
		for k := range got.Settings {
			if strings.HasPrefix(k, "clients/") {
				t.Errorf("archive (keys %v) holds runtime setting %q", keys, k)
			}
		}
		if !bytes.Equal(got.Settings["registry"], snap.Settings["registry"]) {
			t.Errorf("archive (keys %v) lost the model setting registry", keys)
		}
	}

	dst := storetest.OpenBolt(t)
	if err := dst.PutSetting(ctx, "clients/node/n2", []byte("live")); err != nil {
		t.Fatal(err)
	}
	if err := store.RestoreBackup(ctx, dst, snap); err != nil { // the snapshot itself, runtime settings included
		t.Fatalf("RestoreBackup: %v", err)
	}
	keys, err := dst.SettingKeys(ctx, "clients/")
	if err != nil || !slices.Equal(keys, []string{"clients/node/n2"}) {
		t.Errorf("runtime settings after restore = %q, %v; want only the target's clients/node/n2", keys, err)
	}
	if _, err := dst.UserByUsername(ctx, "alice"); err != nil {
		t.Errorf("the model was not restored: %v", err)
	}
}
