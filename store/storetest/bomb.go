package storetest

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/warden-mqtt/warden/store"
)

// ArchiveBomb returns a reader of a gzip archive whose header announces
// claimed content bytes and whose content is fill repeated: prefix, then
// `fill` until claimed bytes are written. It is compressed on the fly by
// a goroutine as the reader reads, so neither the test nor the machine
// ever holds the inflated content; the goroutine stops when the reader
// is closed. compressed reports the bytes handed out so far.
func ArchiveBomb(t testing.TB, claimed int64, prefix string, fill byte) (r io.ReadCloser, compressed func() int64) {
	t.Helper()
	header, err := json.Marshal(map[string]any{
		"format": store.ArchiveFormat, "formatVersion": store.ArchiveFormatVersion, "id": "bomb",
		"createdAt": "2025-05-17T17:36:56.589Z", "modelVersion": 1, "includesKeys": false,
		"contentLength": claimed, "contentSha256": strings.Repeat("ab", 32),
	})
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	go func() {
		zw, _ := gzip.NewWriterLevel(pw, gzip.BestCompression)
		chunk := make([]byte, 1<<20)
		for i := range chunk {
			chunk[i] = fill
		}
		_, err := zw.Write(append(append(header, '\n'), prefix...))
		for left := claimed - int64(len(prefix)); err == nil && left > 0; left -= int64(len(chunk)) {
			_, err = zw.Write(chunk[:min(left, int64(len(chunk)))])
		}
		if err == nil {
			err = zw.Close()
		}
		pw.CloseWithError(err)
	}()
	cr := &countReader{r: pr}
	t.Cleanup(func() { _ = pr.Close() })
	return struct {
		io.Reader
		io.Closer
	}{cr, pr}, func() int64 { return cr.n }
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
