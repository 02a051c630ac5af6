package store

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"time"
)

// Backup archives.
//
// An archive is one gzip member (RFC 1952) holding two parts:
//
//  1. the header, one line of JSON ended by "\n", for example
//     {"format":"warden-backup","formatVersion":1,"id":"42_2025-05-17T17:36:56.589Z",
//     "createdAt":"2025-05-17T17:36:56.589Z","modelVersion":42,"includesKeys":false,"contentLength":5120,"contentSha256":"<64 hex digits>"}
//  2. the content: exactly contentLength bytes of JSON, the Snapshot
//     (users with their password hashes and MFA state sealed as at rest,
//     roles, token records, registry requests, settings with base64
//     values), whose SHA-256 is contentSha256.
//
// So `zcat backup.gz | head -n 1` tells what an archive is, and
// `zcat backup.gz | tail -n +2 | jq .` shows its model. The header comes
// first so that a foreign file or a newer format is recognised before
// any content is decoded; the checksum covers the content exactly as
// written, so it does not depend on how JSON is re-encoded. gzip's own
// CRC-32 and length catch truncation and corruption of the compressed
// stream; the SHA-256 also catches a content edited and recompressed.
const (
	// ArchiveFormat is the header's "format": anything else is not a
	// warden archive.
	ArchiveFormat = "warden-backup"
	// ArchiveFormatVersion is the format this release writes and the
	// newest it reads. It changes only when an older release could not
	// restore the content faithfully; an older release refuses a newer
	// archive instead of dropping what it does not know.
	ArchiveFormatVersion = 1
	// MaxArchiveHeaderBytes bounds the header line.
	MaxArchiveHeaderBytes = 64 << 10
	// MaxArchiveContentBytes is the format's ceiling on the decompressed
	// content: WriteArchive writes nothing larger, and no reader accepts
	// more whatever its limit. About a million users fit.
	MaxArchiveContentBytes = 1 << 30
	// DefaultRestoreMaxBytes is the content a restore accepts unless told
	// otherwise (ReadOptions.MaxContentBytes, --restore-max-size): about
	// 300,000 users with their roles. A restore holds the content and the
	// decoded model in memory at once, a few times this size.
	DefaultRestoreMaxBytes = 256 << 20
	// MaxInflateRatio bounds how many times its compressed size an
	// archive may inflate to, counted from the start of the stream
	// (beyond the first InflateSlackBytes). Real archives inflate 5 to 10
	// times (password hashes and IDs are random); a decompression bomb
	// inflates about 1,000 times, so it is refused after a few MiB of
	// output, whatever length its header claims.
	MaxInflateRatio = 100
	// InflateSlackBytes is inflated output allowed beyond MaxInflateRatio,
	// for the very compressible start of an archive.
	InflateSlackBytes = 4 << 20
)

// Archive errors. Every refusal of ReadArchive wraps ErrArchive and says
// what is wrong in words an operator can act on; none changes a store.
var (
	// ErrArchive: the data is not a usable warden backup archive
	// (foreign, truncated, corrupt, or an inconsistent model).
	ErrArchive = errors.New("invalid backup archive")
	// ErrArchiveVersion: the archive was written in a newer format than
	// this release reads. It wraps ErrArchive.
	ErrArchiveVersion = fmt.Errorf("%w: format version not supported", ErrArchive)
	// ErrArchiveTooLarge: the archive's content is larger than the
	// reader's limit, or inflates far more than any real archive does.
	// It wraps ErrArchive.
	ErrArchiveTooLarge = fmt.Errorf("%w: too large", ErrArchive)
)

// ArchiveHeader is the first line of an archive: what it is and how to
// check its content.
type ArchiveHeader struct {
	Format        string `json:"format"`
	FormatVersion int    `json:"formatVersion"`
	// ID names the backup (BackupID unless the writer chose another);
	// a restore reports it.
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"createdAt"`
	// ModelVersion is the store's model version the snapshot was taken at.
	ModelVersion uint64 `json:"modelVersion"`
	// IncludesKeys says whether the operator asked for the secret key
	// settings (KeySettings); without them, the content holds none.
	IncludesKeys  bool   `json:"includesKeys"`
	ContentLength int64  `json:"contentLength"`
	ContentSHA256 string `json:"contentSha256"`
}

// BackupID names a backup as Connectware does ("<version>_<timestamp>"),
// with warden's model version in place of a release number:
// "42_2025-05-17T17:36:56.589Z".
func BackupID(modelVersion uint64, at time.Time) string {
	return fmt.Sprintf("%d_%s", modelVersion, at.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
}

// ArchiveOptions tune WriteArchive.
type ArchiveOptions struct {
	// IncludeKeys puts the secret key settings (KeySettings) into the
	// archive. Off by default: an archive with keys can sign tokens and
	// client certificates and decrypt TOTP secrets, so it must be kept
	// like the keys themselves.
	IncludeKeys bool
	// CreatedAt is recorded in the header; zero means now.
	CreatedAt time.Time
	// ID names the backup in the header; empty means BackupID of the
	// snapshot's version and CreatedAt.
	ID string
}

// KeySettings lists the settings that hold secret key material: the
// internal CA with its private key ("pki/ca"), the token signing keys
// (every setting under "jwt/": the key sets and their generation number,
// and the single key of earlier releases), the key that encrypts TOTP
// secrets at rest ("mfa/encryption-key"), and the NATS auth callout
// issuer (every setting under "nats/": the account nkey seed that signs
// callout answers). A pattern ending in "/" is a prefix. Each pattern is
// one group: a restore takes a group from the archive when the archive
// holds any of it, and keeps the store's own otherwise (RestoreBackup).
//
// The names are those of the pki, credential and natscallout packages,
// which import this one and so cannot be imported here; store's tests
// check that they agree.
func KeySettings() []string {
	return []string{"pki/ca", "jwt/", "mfa/encryption-key", "nats/"}
}

// RuntimeSettings lists the settings that are the running nodes' state,
// not the model: every setting under "clients/" (authhook: each node's
// list of connected clients, and requests to disconnect one). A backup
// leaves them out (WriteArchive) and a restore keeps the store's own
// (RestoreBackup), so restoring never brings back clients that were
// connected when the backup was made, nor replays old disconnect requests.
func RuntimeSettings() []string { return []string{"clients/"} }

// IsKeySetting reports whether the setting holds secret key material.
func IsKeySetting(key string) bool { return keepsSetting(KeySettings(), key) }

// WriteArchive writes snap as an archive to w and returns its header.
// Without opts.IncludeKeys the key settings are left out. w receives the
// whole archive only if WriteArchive succeeds; write it to a temporary
// file and rename, or keep it in memory, so a failed backup never looks
// like a finished one.
func WriteArchive(w io.Writer, snap Snapshot, opts ArchiveOptions) (ArchiveHeader, error) {
	settings := make(map[string][]byte, len(snap.Settings))
	for k, v := range snap.Settings {
		if (opts.IncludeKeys || !IsKeySetting(k)) && !keepsSetting(RuntimeSettings(), k) {
			settings[k] = v
		}
	}
	snap.Settings = settings
	content, err := json.Marshal(snap)
	if err != nil {
		return ArchiveHeader{}, fmt.Errorf("write archive: %w", err)
	}
	if len(content) > MaxArchiveContentBytes {
		return ArchiveHeader{}, fmt.Errorf("write archive: the model is %d bytes of JSON, more than an archive may hold (%d)", len(content), MaxArchiveContentBytes)
	}
	created := opts.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	created = created.UTC().Truncate(time.Millisecond)
	id := opts.ID
	if id == "" {
		id = BackupID(snap.Version, created)
	}
	sum := sha256.Sum256(content)
	h := ArchiveHeader{
		Format: ArchiveFormat, FormatVersion: ArchiveFormatVersion, ID: id, CreatedAt: created,
		ModelVersion: snap.Version, IncludesKeys: opts.IncludeKeys,
		ContentLength: int64(len(content)), ContentSHA256: hex.EncodeToString(sum[:]),
	}
	line, err := json.Marshal(h)
	if err != nil {
		return ArchiveHeader{}, fmt.Errorf("write archive: %w", err)
	}
	zw := gzip.NewWriter(w)
	for _, part := range [][]byte{line, {'\n'}, content} {
		if _, err := zw.Write(part); err != nil {
			return ArchiveHeader{}, fmt.Errorf("write archive: %w", err)
		}
	}
	if err := zw.Close(); err != nil {
		return ArchiveHeader{}, fmt.Errorf("write archive: %w", err)
	}
	return h, nil
}

// ReadOptions tune ReadArchiveWith.
type ReadOptions struct {
	// MaxContentBytes bounds the decompressed content: an archive whose
	// header announces more is refused before its content is read; 0
	// means DefaultRestoreMaxBytes, and MaxArchiveContentBytes is the
	// ceiling.
	MaxContentBytes int64
	// Check, when set, is run on the decoded and consistent snapshot; its
	// error refuses the archive as it is (not wrapped in ErrArchive), so
	// a caller states rules the store does not know, such as "someone
	// can still administer the restored model".
	Check func(Snapshot) error
}

// ReadArchive reads a whole archive from r and checks it: format and
// version, length and checksum, the content's JSON, and the model's
// invariants (unique names, no dangling references), exactly as Restore
// would check them. A snapshot it returns restores without a validation
// error. Every refusal wraps ErrArchive.
func ReadArchive(r io.Reader) (Snapshot, error) {
	_, s, err := ReadArchiveWithHeader(r)
	return s, err
}

// ReadArchiveWithHeader is ReadArchive that also returns the header.
func ReadArchiveWithHeader(r io.Reader) (ArchiveHeader, Snapshot, error) {
	return ReadArchiveWith(r, ReadOptions{})
}

// ReadArchiveWith is ReadArchiveWithHeader with limits and a rule. The
// content is inflated into memory only up to the length the header
// announces, itself at most o.MaxContentBytes, and never beyond
// MaxInflateRatio times the compressed bytes read so far: a small
// upload that inflates to gigabytes is refused (ErrArchiveTooLarge)
// after a few MiB. Refusals other than o.Check's wrap ErrArchive.
func ReadArchiveWith(r io.Reader, o ReadOptions) (ArchiveHeader, Snapshot, error) {
	limit := o.MaxContentBytes
	if limit <= 0 {
		limit = DefaultRestoreMaxBytes
	}
	limit = min(limit, MaxArchiveContentBytes)
	refuse := func(format string, args ...any) (ArchiveHeader, Snapshot, error) {
		return ArchiveHeader{}, Snapshot{}, fmt.Errorf("%w: "+format, append([]any{ErrArchive}, args...)...)
	}
	tooLarge := func(format string, args ...any) (ArchiveHeader, Snapshot, error) {
		return ArchiveHeader{}, Snapshot{}, fmt.Errorf("%w: "+format, append([]any{ErrArchiveTooLarge}, args...)...)
	}
	in := &countingReader{r: r}
	br := bufio.NewReader(in)
	magic, err := br.Peek(2)
	switch {
	case len(magic) == 0 && errors.Is(err, io.EOF):
		return refuse("empty")
	case len(magic) < 2 || magic[0] != 0x1f || magic[1] != 0x8b:
		if err != nil && !errors.Is(err, io.EOF) {
			return refuse("read: %v", err)
		}
		return refuse("not a warden backup (not gzip-compressed)")
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return refuse("%s", streamProblem(err))
	}
	// One member only: anything after it is not part of the archive.
	zr.Multistream(false)
	guard := &inflateGuard{r: zr, in: in}
	hr := bufio.NewReaderSize(guard, MaxArchiveHeaderBytes)
	line, err := hr.ReadSlice('\n')
	switch {
	case errors.Is(err, errInflateRatio):
		return tooLarge("%v", err)
	case errors.Is(err, bufio.ErrBufferFull):
		return refuse("not a warden backup (no header line)")
	case errors.Is(err, io.EOF):
		return refuse("not a warden backup (no header line)")
	case err != nil:
		return refuse("%s", streamProblem(err))
	}
	var h ArchiveHeader
	if err := json.Unmarshal(line, &h); err != nil || h.Format != ArchiveFormat {
		return refuse("not a warden backup (the header does not name the %q format)", ArchiveFormat)
	}
	switch {
	case h.FormatVersion > ArchiveFormatVersion:
		return ArchiveHeader{}, Snapshot{}, fmt.Errorf("%w: the archive has format version %d, this warden reads up to %d; restore it with a warden release at least as new as the one that wrote it",
			ErrArchiveVersion, h.FormatVersion, ArchiveFormatVersion)
	case h.FormatVersion < 1:
		return refuse("format version %d is not valid", h.FormatVersion)
	case h.ContentLength < 0 || h.ContentLength > MaxArchiveContentBytes:
		return refuse("content length %d is out of range (at most %d bytes)", h.ContentLength, MaxArchiveContentBytes)
	case h.ContentLength > limit:
		return tooLarge("the content is %d bytes, more than the %d this restore accepts (--restore-max-size)", h.ContentLength, limit)
	case len(h.ContentSHA256) != 2*sha256.Size:
		return refuse("the header has no valid contentSha256")
	}
	want, err := hex.DecodeString(h.ContentSHA256)
	if err != nil {
		return refuse("the header has no valid contentSha256")
	}

	// Reading to the end of the member makes gzip verify its CRC-32 and
	// length; one byte more than announced tells "too long" apart.
	content, err := io.ReadAll(io.LimitReader(hr, h.ContentLength+1))
	if errors.Is(err, errInflateRatio) {
		return tooLarge("%v", err)
	}
	if err != nil {
		return refuse("%s", streamProblem(err))
	}
	switch {
	case int64(len(content)) < h.ContentLength:
		return refuse("truncated: %d of %d content bytes", len(content), h.ContentLength)
	case int64(len(content)) > h.ContentLength:
		return refuse("corrupt: the content is longer than the header says")
	}
	if _, err := hr.ReadByte(); !errors.Is(err, io.EOF) {
		switch {
		case err == nil:
			return refuse("corrupt: the content is longer than the header says")
		case errors.Is(err, errInflateRatio):
			return tooLarge("%v", err)
		}
		return refuse("%s", streamProblem(err))
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		if err == nil {
			return refuse("corrupt: data after the end of the archive")
		}
		return refuse("read: %v", err)
	}
	if sum := sha256.Sum256(content); !bytes.Equal(sum[:], want) {
		return refuse("corrupt: the content does not match its SHA-256 checksum")
	}

	var s Snapshot
	dec := json.NewDecoder(bytes.NewReader(content))
	// Same format version, same fields: a field this release does not know
	// would be lost silently, so it is refused instead.
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return refuse("corrupt content: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return refuse("corrupt content: data after the model")
	}
	if !h.IncludesKeys {
		for k := range s.Settings {
			if IsKeySetting(k) {
				return refuse("corrupt: the header says the archive holds no keys, but it holds %q", k)
			}
		}
	}
	if _, err := snapshotBuckets(s); err != nil {
		return refuse("the model in it is inconsistent: %v", err)
	}
	if s.Settings == nil {
		s.Settings = map[string][]byte{}
	}
	if o.Check != nil {
		if err := o.Check(s); err != nil {
			return ArchiveHeader{}, Snapshot{}, err
		}
	}
	if h.ID == "" {
		h.ID = BackupID(h.ModelVersion, h.CreatedAt)
	}
	return h, s, nil
}

// countingReader counts the compressed bytes read from the source.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// errInflateRatio: the stream inflates more than MaxInflateRatio times.
var errInflateRatio = fmt.Errorf("the archive inflates to more than %d times its compressed size, far more than a real archive does (a decompression bomb?)", MaxInflateRatio)

// inflateGuard passes inflated bytes on while they stay within
// MaxInflateRatio times the compressed bytes read (plus
// InflateSlackBytes), and fails the read that goes beyond: the output
// never gets far ahead of the input, so a reader allocates in proportion
// to what was uploaded, not to what a header claims.
type inflateGuard struct {
	r   io.Reader
	in  *countingReader
	out int64
}

func (g *inflateGuard) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	g.out += int64(n)
	if g.out > MaxInflateRatio*g.in.n+InflateSlackBytes {
		return n, errInflateRatio
	}
	return n, err
}

// streamProblem words a gzip or read error for an operator.
func streamProblem(err error) string {
	var ce flate.CorruptInputError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated"
	case errors.Is(err, gzip.ErrChecksum), errors.Is(err, gzip.ErrHeader), errors.As(err, &ce):
		return "corrupt (" + err.Error() + ")"
	}
	return "read: " + err.Error()
}

// RestoreBackup restores a snapshot read from an archive into st,
// atomically. Key settings (KeySettings) are taken per group: from the
// snapshot when it holds any setting of the group, else the store's
// current ones are kept, so an archive made without keys leaves the
// cluster's CA, token signing keys, MFA encryption key and NATS callout
// issuer as they are, and tokens, certificates, MFA secrets and the NATS
// servers' trust in the issuer keep working. The runtime settings
// (RuntimeSettings) are always the store's own.
func RestoreBackup(ctx context.Context, st Store, s Snapshot) error {
	keep := RuntimeSettings()
	for _, p := range KeySettings() {
		held := false
		for k := range maps.Keys(s.Settings) {
			if keepsSetting([]string{p}, k) {
				held = true
				break
			}
		}
		if !held {
			keep = append(keep, p)
		}
	}
	return st.RestoreKeeping(ctx, s, keep)
}
