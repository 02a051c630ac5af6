package storetest

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"encoding/json"
	"hash"
	"hash/crc32"
	"io"
	"strings"
	"testing"

	"github.com/warden-mqtt/warden/store"
)

// ArchiveBomb returns a reader of a gzip archive whose header announces
// claimed content bytes and whose content is fill repeated: prefix, then
// `fill` until claimed bytes are written. A goroutine writes it as the
// reader reads, so neither the test nor the machine ever holds the
// inflated content; the goroutine stops when the reader is closed.
// compressed reports the bytes handed out so far.
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
		head := append(append(header, '\n'), prefix...)
		pw.CloseWithError(writeBomb(pw, head, fill, claimed-int64(len(prefix))))
	}()
	cr := &countReader{r: pr}
	t.Cleanup(func() { _ = pr.Close() })
	return struct {
		io.Reader
		io.Closer
	}{cr, pr}, func() int64 { return cr.n }
}

// bombChunk is how much fill one replayed deflate segment inflates to.
const bombChunk = 1 << 20

// bombWindow is deflate's window: how far back a block may refer.
const bombWindow = 32 << 10

// writeBomb writes a gzip stream of head and then n fill bytes, as
// gzip.BestCompression would, but deflates only its first and last
// megabyte: the megabytes between are one segment, deflated once and
// written again and again. That is sound because a segment ends with a
// flush to a byte boundary and refers back only to fill bytes (it was
// deflated with a window of fill as its dictionary), and the 32 KiB
// before each copy are fill; so every copy inflates to the same megabyte
// of fill. Deflating every megabyte again cost most of a minute per
// gigabyte under the race detector and tested nothing.
func writeBomb(w io.Writer, head []byte, fill byte, n int64) error {
	chunk := bytes.Repeat([]byte{fill}, bombChunk)
	sum := crc32.NewIEEE()
	size := int64(len(head)) + n
	// The gzip header: no name, no time, "best compression", unknown OS.
	if _, err := w.Write([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 0xff}); err != nil {
		return err
	}
	first := min(n, bombChunk)
	n -= first
	fw, _ := flate.NewWriter(w, flate.BestCompression)
	if err := deflatePiece(fw, sum, head, chunk[:first], n == 0); err != nil {
		return err
	}
	if n == 0 {
		return writeTrailer(w, sum.Sum32(), size)
	}
	var seg bytes.Buffer
	sw, _ := flate.NewWriterDict(&seg, flate.BestCompression, chunk[:bombWindow])
	if err := deflatePiece(sw, crc32.NewIEEE(), nil, chunk, false); err != nil {
		return err
	}
	for ; n > bombChunk; n -= bombChunk {
		if _, err := w.Write(seg.Bytes()); err != nil {
			return err
		}
		_, _ = sum.Write(chunk)
	}
	lw, _ := flate.NewWriterDict(w, flate.BestCompression, chunk[:bombWindow])
	if err := deflatePiece(lw, sum, nil, chunk[:n], true); err != nil {
		return err
	}
	return writeTrailer(w, sum.Sum32(), size)
}

// deflatePiece deflates head and then body through fw, adds both to sum,
// and ends with the final block when last, else with a flush.
func deflatePiece(fw *flate.Writer, sum hash.Hash32, head, body []byte, last bool) error {
	for _, b := range [][]byte{head, body} {
		if _, err := fw.Write(b); err != nil {
			return err
		}
		_, _ = sum.Write(b)
	}
	if last {
		return fw.Close()
	}
	return fw.Flush()
}

// writeTrailer writes gzip's trailer: the content's CRC-32 and its size
// modulo 2^32, little-endian.
func writeTrailer(w io.Writer, sum uint32, size int64) error {
	_, err := w.Write(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, sum), uint32(size)))
	return err
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
