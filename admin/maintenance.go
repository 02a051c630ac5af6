package admin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/warden-mqtt/warden/account"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/pki"
	"github.com/warden-mqtt/warden/store"
)

// maxArchiveUpload bounds an archive uploaded to POST
// /api/maintenance/db/restore (larger uploads get 413), derived from the
// content limit: an archive holds at most that much content, and gzip
// adds at most 5 bytes per 16 KiB block and the header to data it cannot
// compress. Once inflating, the content is bounded again by the limit
// and by store.MaxInflateRatio (store.ReadArchiveWith).
func maxArchiveUpload(contentLimit int64) int64 {
	return contentLimit + contentLimit/1024 + store.MaxArchiveHeaderBytes + 1024
}

// CheckRestorable refuses a snapshot that would leave warden without an
// administrator: one user at least, not suspended, must hold the role
// named RoleAdmin, as it does in a running model (the last holder cannot
// lose it). Without one, only `warden user add` on the store could make
// the API usable again. The error wraps store.ErrConflict (409).
func CheckRestorable(s store.Snapshot) error {
	for _, r := range s.Roles {
		if r.Name == RoleAdmin && slices.ContainsFunc(s.Users, func(u store.User) bool { return account.ActiveAdmin(u, r.ID) }) {
			return nil
		}
	}
	return errNoAdminInArchive
}

// errNoAdminInArchive is CheckRestorable's refusal. It matches
// store.ErrConflict without its "store: " prefix in the text, which the
// API and `warden restore` answer with.
var errNoAdminInArchive error = conflictError("conflict: the archive has no active (not suspended) user holding " + RoleAdmin +
	"; restoring it would leave nobody able to administer warden, so nothing was changed")

// conflictError is a refusal that answers 409 with its own text.
type conflictError string

func (e conflictError) Error() string { return string(e) }

// Is makes errors.Is(err, store.ErrConflict) hold.
func (conflictError) Is(target error) bool { return target == store.ErrConflict }

// maintenanceTimeout bounds one backup or restore in the background: a
// store that hangs must not keep the maintenance lock (and every later
// 423) forever.
const maintenanceTimeout = 10 * time.Minute

// Operation kinds, as the hold hook and status messages name them.
const (
	opBackup  = "backup"
	opRestore = "restore"
)

// maintenance is the state behind /api/maintenance/db: at most one
// operation runs at a time on this node, and the last backup's archive
// is kept in memory for download. The lock is per node: two nodes of a
// cluster can run operations at once, which is safe because a backup is
// a consistent snapshot and a restore is atomic.
type maintenance struct {
	mu      sync.Mutex
	running string     // "", opBackup or opRestore
	backup  *operation // the last backup, nil before the first
	restore *operation // the last restore, nil before the first
	// archive is the last successful backup (nil while one runs or after
	// one failed, so a download always matches the backup status). With
	// includeKeys it holds key material, in memory only.
	archive     []byte
	archiveKeys bool
	// hold, when set (tests), is called by every operation in the
	// background before it touches the store, so a test can keep one
	// running for as long as it needs without sleeping.
	hold func(op string)
	// upload is held while a restore upload is read and inflated: one at
	// a time per node, so parallel uploads cannot multiply the memory a
	// restore may take.
	upload sync.Mutex
}

// operation is one backup or restore as GET /api/maintenance/db shows it
// (the seed's fields). EndDate is null while it runs.
type operation struct {
	ID            string     `json:"id"`
	Succeeded     bool       `json:"succeeded"`
	StatusMessage string     `json:"statusMessage"`
	StartDate     time.Time  `json:"startDate"`
	EndDate       *time.Time `json:"endDate"`
}

// maintenanceStatus is the answer of GET /api/maintenance/db.
type maintenanceStatus struct {
	Running bool       `json:"running"`
	Backup  *operation `json:"backup"`
	Restore *operation `json:"restore"`
}

// errMaintenanceRunning is the seed's 423.
var errMaintenanceRunning = errorf(http.StatusLocked, "a database maintenance operation is running; try again later")

func (s *Server) registerMaintenance() {
	s.maint = &maintenance{}
	s.handle("GET /api/maintenance/db", permitted, s.maintenanceStatus)
	s.handle("POST /api/maintenance/db/backup", permitted, s.startBackup)
	s.handle("GET /api/maintenance/db/backup", permitted, s.downloadBackup)
	s.handle("POST /api/maintenance/db/restore", permitted, s.startRestore)
}

// begin takes the maintenance lock for op, or reports 423.
func (m *maintenance) begin(op string, started *operation) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.running != "" {
		return errMaintenanceRunning
	}
	m.running = op
	if op == opBackup {
		m.backup = started
		m.archive, m.archiveKeys = nil, false
	} else {
		m.restore = started
	}
	return nil
}

// finish records the outcome of the running operation and releases the
// lock.
func (m *maintenance) finish(op *operation, now time.Time, err error, msg string, archive []byte, keys bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	end := now
	op.EndDate = &end
	op.Succeeded = err == nil
	op.StatusMessage = msg
	if m.running == opBackup && err == nil {
		m.archive, m.archiveKeys = archive, keys
	}
	m.running = ""
}

func (m *maintenance) holdFor(op string) {
	m.mu.Lock()
	hold := m.hold
	m.mu.Unlock()
	if hold != nil {
		hold(op)
	}
}

func (s *Server) maintenanceStatus(w http.ResponseWriter, _ *http.Request, _ *caller) error {
	m := s.maint
	m.mu.Lock()
	st := maintenanceStatus{Running: m.running != "", Backup: copyOp(m.backup), Restore: copyOp(m.restore)}
	m.mu.Unlock()
	writeJSON(w, http.StatusOK, st)
	return nil
}

func copyOp(op *operation) *operation {
	if op == nil {
		return nil
	}
	c := *op
	return &c
}

// startBackup answers 202 at once and takes the snapshot in the
// background; GET /api/maintenance/db says when it is done.
// ?includeKeys=true adds the secret key settings (store.KeySettings),
// for holders of connectware-admin only: the token signing keys sign a
// token for any user, the CA's key a certificate for any name.
func (s *Server) startBackup(w http.ResponseWriter, r *http.Request, c *caller) error {
	includeKeys := false
	if v := r.URL.Query().Get("includeKeys"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errorf(http.StatusBadRequest, "includeKeys must be true or false")
		}
		includeKeys = b
	}
	if includeKeys {
		if err := s.requireAdmin(r.Context(), c, "back up the keys: the token signing keys sign a token for any user"); err != nil {
			return err
		}
	}
	if s.maint.busy() {
		return errMaintenanceRunning
	}
	// The ID is fixed when the backup starts, so a client can tell its
	// backup from an earlier one: "<model version>_<start time>", the
	// shape of Connectware's "<release>_<time>".
	ver, err := s.st.Version(r.Context())
	if err != nil {
		return err
	}
	start := s.now().UTC().Truncate(time.Millisecond)
	op := &operation{
		ID:        store.BackupID(ver, start),
		StartDate: start, StatusMessage: "backup running",
	}
	if err := s.maint.begin(opBackup, op); err != nil {
		return err
	}
	noteTarget(r, "backup", op.ID)
	s.log.Info("database backup started", "backup", op.ID, "include_keys", includeKeys, "by", c.user.Username)
	go s.runBackup(op, includeKeys)
	writeJSON(w, http.StatusAccepted, "database backup "+op.ID+" started")
	return nil
}

func (s *Server) runBackup(op *operation, includeKeys bool) {
	s.maint.holdFor(opBackup)
	ctx, cancel := context.WithTimeout(context.Background(), maintenanceTimeout)
	defer cancel()
	var buf bytes.Buffer
	snap, err := s.st.Snapshot(ctx)
	if err == nil {
		_, err = store.WriteArchive(&buf, snap, store.ArchiveOptions{IncludeKeys: includeKeys, CreatedAt: op.StartDate, ID: op.ID})
	}
	if err != nil {
		s.log.Error("database backup failed", "backup", op.ID, "err", err)
		s.maint.finish(op, s.now().UTC(), err, "backup failed: "+clientMessage(err), nil, false)
		return
	}
	keys := "without keys"
	if includeKeys {
		keys = "with keys"
	}
	msg := fmt.Sprintf("backup finished: %s, %s, %d bytes", modelSummary(snap), keys, buf.Len())
	s.log.Info("database backup finished", "backup", op.ID, "bytes", buf.Len())
	s.maint.finish(op, s.now().UTC(), nil, msg, buf.Bytes(), includeKeys)
}

func (m *maintenance) busy() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.running != ""
}

// downloadBackup serves the last finished backup as a gzip archive
// (store/archive.go describes the format): 423 while an operation runs,
// 404 before the first backup or after a failed one, 403 for a backup
// with keys unless the caller holds connectware-admin.
func (s *Server) downloadBackup(w http.ResponseWriter, r *http.Request, c *caller) error {
	m := s.maint
	m.mu.Lock()
	running, archive, keys, last := m.running, m.archive, m.archiveKeys, copyOp(m.backup)
	m.mu.Unlock()
	switch {
	case running != "":
		return errMaintenanceRunning
	case last == nil:
		return errorf(http.StatusNotFound, "no backup yet: start one with POST /api/maintenance/db/backup")
	case archive == nil:
		return errorf(http.StatusNotFound, "the last backup failed (%s): start another one", last.StatusMessage)
	}
	if keys {
		if err := s.requireAdmin(r.Context(), c, "download a backup that holds the keys"); err != nil {
			return err
		}
	}
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(archive)))
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{
		"filename": "warden-backup-" + strings.ReplaceAll(last.ID, ":", "-") + ".gz",
	}))
	w.Header().Set("X-Warden-Backup-Id", last.ID)
	w.Header().Set("X-Warden-Backup-Includes-Keys", strconv.FormatBool(keys))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(archive)
	return nil
}

// startRestore reads and checks the whole uploaded archive first (a bad
// one gets 400 and changes nothing), then answers 202 and restores it in
// the background, atomically. The body is the archive itself, or a
// multipart/form-data upload whose first file part is. Clients poll GET
// /api/maintenance/db until running is false and read restore.succeeded.
// Only a holder of connectware-admin may restore: an archive sets every
// user, role and key, so the escalation rule cannot bound it (403 before
// the upload is read).
func (s *Server) startRestore(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := s.requireAdmin(r.Context(), c, "restore a backup: an archive sets every user, role and key"); err != nil {
		return err
	}
	if s.maint.busy() || !s.maint.upload.TryLock() {
		return errMaintenanceRunning // before reading a large upload for nothing
	}
	defer s.maint.upload.Unlock()
	limit := s.opts.RestoreMaxBytes
	r.Body = http.MaxBytesReader(w, r.Body, maxArchiveUpload(limit))
	body, err := archiveBody(r)
	if err != nil {
		return err
	}
	h, snap, err := store.ReadArchiveWith(body, store.ReadOptions{MaxContentBytes: limit, Check: CheckRestorable})
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return fmt.Errorf("archive upload: %w", mbe)
	case errors.Is(err, store.ErrArchiveTooLarge):
		return errorf(http.StatusRequestEntityTooLarge, "%s", err.Error())
	case errors.Is(err, store.ErrArchive):
		// The texts say what is wrong with the archive, for the operator.
		return errorf(http.StatusBadRequest, "%s", err.Error())
	case err != nil:
		return err
	}
	start := s.now().UTC().Truncate(time.Millisecond)
	op := &operation{ID: h.ID, StartDate: start, StatusMessage: "restore running"}
	if err := s.maint.begin(opRestore, op); err != nil {
		return err
	}
	noteTarget(r, "backup", op.ID)
	s.log.Info("database restore started", "backup", op.ID, "includes_keys", h.IncludesKeys, "by", c.user.Username)
	go s.runRestore(op, snap)
	writeJSON(w, http.StatusAccepted, "database restore of backup "+op.ID+" started")
	return nil
}

// archiveBody returns the uploaded archive: the first file part of a
// multipart form (what a browser's file upload sends), else the body.
func archiveBody(r *http.Request) (io.Reader, error) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "multipart/form-data" {
		return r.Body, nil
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "malformed multipart upload")
	}
	for {
		p, err := mr.NextPart()
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return nil, err
		case errors.Is(err, io.EOF):
			return nil, errorf(http.StatusBadRequest, "the multipart upload holds no file")
		case err != nil:
			return nil, errorf(http.StatusBadRequest, "malformed multipart upload")
		}
		if p.FileName() != "" {
			return p, nil
		}
	}
}

func (s *Server) runRestore(op *operation, snap store.Snapshot) {
	s.maint.holdFor(opRestore)
	ctx, cancel := context.WithTimeout(context.Background(), maintenanceTimeout)
	defer cancel()
	restart := s.restartNeeded(ctx, snap)
	if err := store.RestoreBackup(ctx, s.st, snap); err != nil {
		// Atomic: a failed restore left the model as it was.
		s.log.Error("database restore failed", "backup", op.ID, "err", err)
		s.maint.finish(op, s.now().UTC(), err, "restore failed, nothing changed: "+clientMessage(err), nil, false)
		return
	}
	msg := "restore finished: " + modelSummary(snap)
	if restart != "" {
		msg += "; " + restart
		s.log.Warn("database restored with other keys: restart every node", "backup", op.ID, "keys", restart)
	}
	s.log.Info("database restore finished", "backup", op.ID)
	s.maint.finish(op, s.now().UTC(), nil, msg, nil, false)
}

// restartNeeded says which keys of the archive differ from the ones
// this cluster runs with and are loaded only at start: the internal CA
// (registry signing, TLS), the MFA encryption key and the NATS callout
// issuer (natscallout.SettingIssuer, named here by its key: admin does not
// import another surface), which every NATS server must also be told.
// Token signing keys are followed live and need nothing.
func (s *Server) restartNeeded(ctx context.Context, snap store.Snapshot) string {
	var differ []string
	nats := false
	for _, k := range []struct{ key, name string }{{pki.SettingCA, "internal CA"}, {credential.SettingMFAKey, "MFA encryption key"}, {settingNATSIssuer, "NATS callout issuer"}} {
		v, ok := snap.Settings[k.key]
		if !ok {
			continue // not in the archive: the cluster's own is kept
		}
		cur, err := s.st.Setting(ctx, k.key)
		if errors.Is(err, store.ErrNotFound) && k.key == settingNATSIssuer {
			continue // no NATS surface ran here: nothing to reconfigure
		}
		if err != nil || !bytes.Equal(cur, v) {
			differ = append(differ, k.name)
			nats = nats || k.key == settingNATSIssuer
		}
	}
	if len(differ) == 0 {
		return ""
	}
	msg := "the archive's " + strings.Join(differ, " and ") + " replaced this cluster's: restart every warden node to load them"
	if nats {
		msg += "; NATS servers trust the old issuer: print their configuration again (warden nats-config) and reload every NATS server with it"
	}
	return msg
}

// settingNATSIssuer is natscallout.SettingIssuer.
const settingNATSIssuer = "nats/issuer"

// modelSummary counts what a snapshot holds, for status messages.
func modelSummary(s store.Snapshot) string {
	return fmt.Sprintf("%d users, %d roles, %d tokens, %d registry requests, %d settings",
		len(s.Users), len(s.Roles), len(s.Tokens), len(s.RegistryRequests), len(s.Settings))
}

// clientMessage is what a status message may say about err: the text
// status() would give a client, never internal error text.
func clientMessage(err error) string {
	_, msg := status(err)
	return msg
}
