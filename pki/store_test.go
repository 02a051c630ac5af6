package pki

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

func TestLoadOrCreateCAKeepsOneCAAcrossCallsAndRestarts(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "w.db")
	s := storetest.OpenBolt(t, storetest.Path(path))

	first, err := LoadOrCreateCA(t.Context(), s, "warden CA")
	if err != nil {
		t.Fatalf("first LoadOrCreateCA: %v", err)
	}
	if first.Certificate().Subject.CommonName != "warden CA" {
		t.Errorf("CN = %q", first.Certificate().Subject.CommonName)
	}
	second, err := LoadOrCreateCA(t.Context(), s, "another name")
	if err != nil {
		t.Fatalf("second LoadOrCreateCA: %v", err)
	}
	if second.Fingerprint() != first.Fingerprint() {
		t.Errorf("second call returned a new CA: %s, want %s", second.Fingerprint(), first.Fingerprint())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = storetest.OpenBolt(t, storetest.Path(path))
	reopened, err := LoadOrCreateCA(t.Context(), s, "warden CA")
	if err != nil {
		t.Fatalf("LoadOrCreateCA after reopening: %v", err)
	}
	if reopened.Fingerprint() != first.Fingerprint() {
		t.Errorf("reopened store returned a new CA: %s, want %s", reopened.Fingerprint(), first.Fingerprint())
	}
	// The reloaded CA still holds the key: it can sign.
	if _, err := reopened.IssueServer(nil, time.Hour); err != nil {
		t.Errorf("reloaded CA cannot issue: %v", err)
	}
}

func TestLoadOrCreateCAConcurrentCallersAgreeOnOneCA(t *testing.T) {
	t.Parallel()
	s := storetest.OpenBolt(t)

	const n = 8
	var wg sync.WaitGroup
	fps := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			ca, err := LoadOrCreateCA(t.Context(), s, "warden CA")
			errs[i] = err
			if err == nil {
				fps[i] = ca.Fingerprint()
			}
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if fps[i] != fps[0] {
			t.Errorf("caller %d got CA %s, caller 0 got %s", i, fps[i], fps[0])
		}
	}
	stored, err := LoadOrCreateCA(t.Context(), s, "warden CA")
	if err != nil || stored.Fingerprint() != fps[0] {
		t.Errorf("stored CA %v (err %v) is not the one every caller got", stored, err)
	}
}

func TestLoadOrCreateCANeverReplacesAnUnreadableCA(t *testing.T) {
	t.Parallel()
	s := storetest.OpenBolt(t)
	corrupt := []byte(`{"cert":"garbage","key":"garbage"}`)
	if err := s.PutSetting(t.Context(), SettingCA, corrupt); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateCA(t.Context(), s, "warden CA"); err == nil {
		t.Fatal("LoadOrCreateCA succeeded over a corrupt CA setting")
	}
	raw, err := s.Setting(t.Context(), SettingCA)
	if err != nil || string(raw) != string(corrupt) {
		t.Errorf("the corrupt setting was changed to %q (err %v)", raw, err)
	}
}

func TestLoadOrCreateCAReturnsStoreErrorsInsteadOfCreating(t *testing.T) {
	t.Parallel()
	s := storetest.OpenBolt(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := LoadOrCreateCA(t.Context(), s, "warden CA")
	if !errors.Is(err, store.ErrClosed) {
		t.Errorf("error = %v, want one wrapping store.ErrClosed", err)
	}
}
