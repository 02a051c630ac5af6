package store_test

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// allocated returns the bytes the process allocated while fn ran.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestArchiveBombRefusedWithoutInflating: archives that inflate to 1 GiB
// from about 1 MiB of gzip, as an attacker would upload them, are refused
// as too large after reading a few KiB of them, and reading them
// allocates a few MiB, not the gigabyte they claim: zeros (not even
// JSON), and valid JSON that a decoder would buffer whole (a setting
// holding a gigabyte of "A"). With the default limit a header that
// claims 1 GiB is refused before any content is read; with the format's
// ceiling as the limit the inflation ratio stops them.
func TestArchiveBombRefusedWithoutInflating(t *testing.T) {
	const GiB = 1 << 30
	for _, tc := range []struct {
		name    string
		claimed int64
		limit   int64 // 0: ReadArchive's default
		prefix  string
		fill    byte
	}{
		{"zeros claiming 200 MiB, under the default limit", 200 << 20, 0, "", 0},
		{"zeros claiming 1 GiB, default limit", GiB, 0, "", 0},
		{"zeros claiming 1 GiB, limit 1 GiB", GiB, store.MaxArchiveContentBytes, "", 0},
		{"a 1 GiB JSON string, limit 1 GiB", GiB, store.MaxArchiveContentBytes, `{"settings":{"x":"`, 'A'},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, compressed := storetest.ArchiveBomb(t, tc.claimed, tc.prefix, tc.fill)
			defer r.Close()
			var err error
			alloc := allocated(func() {
				if tc.limit == 0 {
					_, err = store.ReadArchive(r)
				} else {
					_, _, err = store.ReadArchiveWith(r, store.ReadOptions{MaxContentBytes: tc.limit})
				}
			})
			t.Logf("claimed %d MiB: read %d KiB of gzip, allocated %.1f MiB: %v", tc.claimed>>20, compressed()>>10, float64(alloc)/(1<<20), err)
			if !errors.Is(err, store.ErrArchiveTooLarge) || !errors.Is(err, store.ErrArchive) {
				t.Errorf("err = %v, want ErrArchiveTooLarge (wrapping ErrArchive)", err)
			}
			if alloc > 64<<20 {
				t.Errorf("reading the bomb allocated %d MiB, want under 64 MiB", alloc>>20)
			}
			if compressed() > 1<<20 {
				t.Errorf("read %d KiB of the bomb before refusing it, want under 1 MiB", compressed()>>10)
			}
		})
	}
}

// TestArchiveWithinRatioStillReads: the bound is no obstacle to real
// archives, incompressible content included, up to the limit given.
func TestArchiveWithinRatioStillReads(t *testing.T) {
	t.Parallel()
	s := store.Snapshot{Settings: map[string][]byte{}}
	for i := range 2000 {
		s.Settings[fmt.Sprintf("setting-%04d", i)] = []byte(strings.Repeat(fmt.Sprint(i), 200))
	}
	raw := writeArchive(t, s, store.ArchiveOptions{})
	h, _, err := store.ReadArchiveWith(strings.NewReader(string(raw)), store.ReadOptions{})
	if err != nil {
		t.Fatalf("a real archive: %v", err)
	}
	if _, _, err := store.ReadArchiveWith(strings.NewReader(string(raw)), store.ReadOptions{MaxContentBytes: h.ContentLength - 1}); !errors.Is(err, store.ErrArchiveTooLarge) || !strings.Contains(err.Error(), "--restore-max-size") {
		t.Fatalf("one byte over the limit: %v, want ErrArchiveTooLarge naming --restore-max-size", err)
	}
	if _, _, err := store.ReadArchiveWith(strings.NewReader(string(raw)), store.ReadOptions{MaxContentBytes: h.ContentLength}); err != nil {
		t.Fatalf("exactly at the limit: %v", err)
	}
}

// TestArchiveCheckRefusesAsItSays: a rule passed in refuses the archive
// with its own error, after every other check.
func TestArchiveCheckRefusesAsItSays(t *testing.T) {
	t.Parallel()
	raw := writeArchive(t, store.Snapshot{Settings: map[string][]byte{"a": []byte("b")}}, store.ArchiveOptions{})
	rule := errors.New("no admin in it")
	var seen store.Snapshot
	_, _, err := store.ReadArchiveWith(strings.NewReader(string(raw)), store.ReadOptions{Check: func(s store.Snapshot) error { seen = s; return rule }})
	if !errors.Is(err, rule) || errors.Is(err, store.ErrArchive) {
		t.Fatalf("err = %v, want the rule's error as it is", err)
	}
	if string(seen.Settings["a"]) != "b" {
		t.Fatalf("the rule saw %+v", seen)
	}
}
