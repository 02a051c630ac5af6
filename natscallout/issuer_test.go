package natscallout_test

import (
	"bytes"
	"errors"
	"sync"
	"testing"

	"github.com/nats-io/nkeys"

	"github.com/warden-mqtt/warden/natscallout"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

func publicKey(t *testing.T, kp nkeys.KeyPair) string {
	t.Helper()
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// TestLoadIssuerNodesAgreeOnOneKey: nodes on one Redis that load the
// issuer at the same moment all get the one key stored first, an account
// key that signs and verifies, and a later load returns it again.
func TestLoadIssuerNodesAgreeOnOneKey(t *testing.T) {
	t.Parallel()
	redis := storetest.StartRedis(t)
	const nodes = 4
	stores := make([]store.Store, nodes)
	for i := range stores {
		stores[i] = storetest.OpenRedis(t, storetest.URL(redis.URL))
	}
	pubs := make([]string, nodes)
	var wg sync.WaitGroup
	for i, st := range stores {
		wg.Go(func() {
			kp, err := natscallout.LoadIssuer(t.Context(), st)
			if err != nil {
				t.Errorf("node %d: LoadIssuer: %v", i, err)
				return
			}
			pubs[i] = publicKey(t, kp)
		})
	}
	wg.Wait()
	for i, p := range pubs {
		if p != pubs[0] {
			t.Errorf("node %d has issuer %s, node 0 has %s", i, p, pubs[0])
		}
	}
	if !nkeys.IsValidPublicAccountKey(pubs[0]) {
		t.Errorf("issuer %q is not an account public key", pubs[0])
	}
	again, err := natscallout.LoadIssuer(t.Context(), stores[0])
	if err != nil {
		t.Fatal(err)
	}
	if got := publicKey(t, again); got != pubs[0] {
		t.Errorf("a second load gave %s, want the stored %s", got, pubs[0])
	}
	sig, err := again.Sign([]byte("callout"))
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := nkeys.FromPublicKey(pubs[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := verifier.Verify([]byte("callout"), sig); err != nil {
		t.Errorf("a signature of the loaded key does not verify with its public key: %v", err)
	}
}

// TestLoadIssuerRefusesACorruptSetting: a damaged setting is an error,
// never silently replaced (the NATS servers trust the stored key), and the
// error does not quote the setting.
func TestLoadIssuerRefusesACorruptSetting(t *testing.T) {
	t.Parallel()
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	userSeed, err := user.Seed()
	if err != nil {
		t.Fatal(err)
	}
	for name, value := range map[string][]byte{
		"not a seed":     []byte("SAsecret-but-garbage"),
		"a user nkey":    userSeed,
		"an empty value": {},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := storetest.OpenBolt(t)
			if err := st.PutSetting(t.Context(), natscallout.SettingIssuer, value); err != nil {
				t.Fatal(err)
			}
			_, err := natscallout.LoadIssuer(t.Context(), st)
			if !errors.Is(err, natscallout.ErrIssuerInvalid) {
				t.Fatalf("LoadIssuer = %v, want ErrIssuerInvalid", err)
			}
			if len(value) > 0 && bytes.Contains([]byte(err.Error()), value) {
				t.Errorf("the error quotes the stored seed: %v", err)
			}
			if got, _ := st.Setting(t.Context(), natscallout.SettingIssuer); !bytes.Equal(got, value) {
				t.Errorf("the setting was replaced")
			}
		})
	}
}

// TestIssuerTravelsOnlyInBackupsWithKeys: the issuer is key material. A
// backup without keys lacks it (restoring it keeps the target's issuer, so
// the NATS servers' trust holds); a backup with keys carries it, on the
// embedded store and on Redis.
func TestIssuerTravelsOnlyInBackupsWithKeys(t *testing.T) {
	t.Parallel()
	open := map[string]func(t *testing.T) store.Store{
		"bolt":  func(t *testing.T) store.Store { return storetest.OpenBolt(t) },
		"redis": func(t *testing.T) store.Store { return storetest.OpenRedis(t) },
	}
	for name, open := range open {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			src := open(t)
			srcKP, err := natscallout.LoadIssuer(ctx, src)
			if err != nil {
				t.Fatal(err)
			}
			srcSeed, _ := srcKP.Seed()
			snap, err := src.Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			archive := func(keys bool) store.Snapshot {
				var buf bytes.Buffer
				if _, err := store.WriteArchive(&buf, snap, store.ArchiveOptions{IncludeKeys: keys}); err != nil {
					t.Fatal(err)
				}
				s, err := store.ReadArchive(&buf)
				if err != nil {
					t.Fatal(err)
				}
				return s
			}

			without := archive(false)
			if v, ok := without.Settings[natscallout.SettingIssuer]; ok {
				t.Errorf("a backup without keys holds %s (%d bytes)", natscallout.SettingIssuer, len(v))
			}
			with := archive(true)
			if !bytes.Equal(with.Settings[natscallout.SettingIssuer], srcSeed) {
				t.Errorf("a backup with keys lacks the issuer")
			}

			for _, tc := range []struct {
				what string
				snap store.Snapshot
				want func(target string) string
			}{
				{"without keys keeps the target's issuer", without, func(target string) string { return target }},
				{"with keys takes the archive's issuer", with, func(string) string { return publicKey(t, srcKP) }},
			} {
				dst := open(t)
				dstKP, err := natscallout.LoadIssuer(ctx, dst)
				if err != nil {
					t.Fatal(err)
				}
				if err := store.RestoreBackup(ctx, dst, tc.snap); err != nil {
					t.Fatalf("%s: RestoreBackup: %v", tc.what, err)
				}
				after, err := natscallout.LoadIssuer(ctx, dst)
				if err != nil {
					t.Fatalf("%s: LoadIssuer: %v", tc.what, err)
				}
				if got, want := publicKey(t, after), tc.want(publicKey(t, dstKP)); got != want {
					t.Errorf("restoring a backup %s: issuer %s, want %s", tc.what, got, want)
				}
			}
		})
	}
}
