package storetest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"testing"
)

// TestArchiveBombInflatesToWhatItClaims: the bomb is one valid gzip
// stream (gzip.Reader checks its CRC and size at the end) of the header
// line, the prefix and exactly the claimed bytes of fill, from a few
// bytes to several replayed megabytes with a partial one at the end; and
// it stays about a thousand times smaller than what it inflates to.
func TestArchiveBombInflatesToWhatItClaims(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		claimed int64
		prefix  string
		fill    byte
	}{
		{5, "", 0},
		{bombWindow - 1, `{"x":"`, 'A'},
		{bombChunk, "", 0},
		{bombChunk + 1, "", 0},
		{5*bombChunk + 12345, `{"settings":{"x":"`, 'A'},
	} {
		r, compressed := ArchiveBomb(t, tc.claimed, tc.prefix, tc.fill)
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(zr)
		line, err := br.ReadBytes('\n')
		var header struct {
			ContentLength int64 `json:"contentLength"`
		}
		if err != nil || json.Unmarshal(line, &header) != nil || header.ContentLength != tc.claimed {
			t.Fatalf("claimed %d: header line %q, %v", tc.claimed, line, err)
		}
		content, err := io.ReadAll(br)
		if err != nil {
			t.Fatalf("claimed %d: inflating: %v", tc.claimed, err)
		}
		want := append([]byte(tc.prefix), bytes.Repeat([]byte{tc.fill}, int(tc.claimed)-len(tc.prefix))...)
		if !bytes.Equal(content, want) {
			t.Errorf("claimed %d: inflated to %d bytes, want %d: the prefix, then fill %#x", tc.claimed, len(content), len(want), tc.fill)
		}
		if tc.claimed > bombChunk && compressed()*500 > tc.claimed {
			t.Errorf("claimed %d: %d bytes of gzip, want about a thousandth", tc.claimed, compressed())
		}
		_ = r.Close()
	}
}
