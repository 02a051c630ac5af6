package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/admin"
	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/broker"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// bStatus is GET /api/maintenance/db.
type bStatus struct {
	Running bool `json:"running"`
	Backup  *bOp `json:"backup"`
	Restore *bOp `json:"restore"`
}

type bOp struct {
	ID            string     `json:"id"`
	Succeeded     bool       `json:"succeeded"`
	StatusMessage string     `json:"statusMessage"`
	StartDate     time.Time  `json:"startDate"`
	EndDate       *time.Time `json:"endDate"`
}

func bGetStatus(a *api) bStatus {
	a.t.Helper()
	var st bStatus
	a.must("GET", "/api/maintenance/db", nil, http.StatusOK, &st)
	return st
}

// bWaitIdle polls the status until no operation runs: operations run in
// the background, and this is how a client learns that one finished.
func bWaitIdle(a *api) bStatus {
	a.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := bGetStatus(a)
		if !st.Running {
			return st
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("maintenance still running after 20 s: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// bBackup runs a backup to the end and downloads its archive.
func bBackup(a *api, query string) (bOp, []byte) {
	a.t.Helper()
	var msg string
	a.must("POST", "/api/maintenance/db/backup"+query, nil, http.StatusAccepted, &msg)
	st := bWaitIdle(a)
	if st.Backup == nil || !st.Backup.Succeeded || st.Backup.EndDate == nil || !strings.Contains(msg, st.Backup.ID) {
		a.t.Fatalf("backup did not succeed: %+v (202 said %q)", st.Backup, msg)
	}
	code, archive := a.do("GET", "/api/maintenance/db/backup", a.admin, nil)
	if code != http.StatusOK {
		a.t.Fatalf("download: %d %s", code, archive)
	}
	return *st.Backup, archive
}

// bUpload posts an archive to the restore endpoint as it is, or as a
// multipart file upload when multi is set.
func bUpload(a *api, archive []byte, multi bool) (int, []byte) {
	a.t.Helper()
	body, ctype := io.Reader(bytes.NewReader(archive)), "application/gzip"
	if multi {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		_ = mw.WriteField("comment", "not the file")
		fw, err := mw.CreateFormFile("file", "backup.gz")
		if err != nil {
			a.t.Fatal(err)
		}
		_, _ = fw.Write(archive)
		_ = mw.Close()
		body, ctype = &buf, mw.FormDataContentType()
	}
	req, err := http.NewRequest("POST", a.url+"/api/maintenance/db/restore", body)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Authorization", "Bearer "+a.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// bRestore uploads an archive and waits for the restore to succeed.
func bRestore(a *api, archive []byte, multi bool) bOp {
	a.t.Helper()
	if code, body := bUpload(a, archive, multi); code != http.StatusAccepted {
		a.t.Fatalf("restore upload: %d %s", code, body)
	}
	st := bWaitIdle(a)
	if st.Restore == nil || !st.Restore.Succeeded || st.Restore.EndDate == nil {
		a.t.Fatalf("restore did not succeed: %+v", st.Restore)
	}
	return *st.Restore
}

func bSnapshot(t *testing.T, st store.Store) store.Snapshot {
	t.Helper()
	s, err := st.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// bUser creates a user over HTTP with its own permissions and shared
// roles and returns its ID.
func bUser(a *api, name, password string, roles []string, perms []acl.Permission) string {
	a.t.Helper()
	var u struct{ ID string }
	a.must("POST", "/api/users", map[string]any{"username": name, "password": password, "roles": roles, "initialPermissions": perms}, http.StatusCreated, &u)
	return u.ID
}

// bLoginCode answers a login attempt's status (a refused login is 403).
func bLoginCode(a *api, name, password string) int {
	a.t.Helper()
	code, _ := a.do("POST", "/api/login", "", map[string]any{"username": name, "password": password})
	return code
}

const (
	bDevPW = "device-secret-1"
	bOpsPW = "operator-secret-1"
)

// TestMaintenanceBackupDeleteRestore: backup, delete the users and roles,
// restore: the same users log in with the same passwords and have the
// same permissions; records created after the backup are gone.
func TestMaintenanceBackupDeleteRestore(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		var line struct{ ID string }
		a.must("POST", "/api/roles", map[string]any{"name": "line1", "isShared": true, "permissions": []acl.Permission{
			{Resource: "plant1/line1/#", Operation: acl.OpReadWrite, Context: acl.ContextMQTT},
		}}, http.StatusCreated, &line)
		devID := bUser(a, "dev-1", bDevPW, []string{line.ID}, nil)
		opsID := bUser(a, "ops-1", bOpsPW, nil, []acl.Permission{
			{Resource: "/api/users/#", Operation: acl.OpRead, Context: acl.ContextHTTP},
		})
		var devPerms, opsPerms json.RawMessage
		a.mustAs(a.login("dev-1", bDevPW), "GET", "/api/permissions", nil, http.StatusOK, &devPerms)
		a.mustAs(a.login("ops-1", bOpsPW), "GET", "/api/permissions", nil, http.StatusOK, &opsPerms)

		if st := bGetStatus(a); st.Running || st.Backup != nil || st.Restore != nil {
			t.Fatalf("status before any operation = %+v, want idle and empty", st)
		}
		if code, body := a.do("GET", "/api/maintenance/db/backup", a.admin, nil); code != http.StatusNotFound {
			t.Fatalf("download before any backup: %d %s, want 404", code, body)
		}
		backup, archive := bBackup(a, "")
		h, inArchive, err := store.ReadArchiveWithHeader(bytes.NewReader(archive))
		if err != nil {
			t.Fatalf("the downloaded archive: %v", err)
		}
		if h.ID != backup.ID || !h.CreatedAt.Equal(backup.StartDate) {
			t.Errorf("archive header %+v does not match backup %+v", h, backup)
		}
		if h.IncludesKeys || len(inArchive.Users) != 3 {
			t.Errorf("archive includesKeys %v with %d users; want no keys and admin, dev-1, ops-1", h.IncludesKeys, len(inArchive.Users))
		}

		// Delete everything but the admin doing the restore; add a user.
		a.must("DELETE", "/api/users/"+devID, nil, http.StatusOK, nil)
		a.must("DELETE", "/api/users/"+opsID, nil, http.StatusOK, nil)
		a.must("DELETE", "/api/roles/"+line.ID, nil, http.StatusOK, nil)
		bUser(a, "late", "late-secret-12", nil, nil)
		if code := bLoginCode(a, "dev-1", bDevPW); code != http.StatusForbidden {
			t.Fatalf("login of a deleted user: %d", code)
		}
		keysBefore := map[string][]byte{}
		for k, v := range bSnapshot(t, a.st).Settings {
			if store.IsKeySetting(k) {
				keysBefore[k] = v
			}
		}

		restore := bRestore(a, archive, false)
		if restore.ID != backup.ID {
			t.Errorf("restore id %q, want the backup's %q", restore.ID, backup.ID)
		}
		if !strings.Contains(restore.StatusMessage, "3 users") || strings.Contains(restore.StatusMessage, "restart") {
			t.Errorf("restore status message %q", restore.StatusMessage)
		}

		// The model is the archive's, with this cluster's own keys.
		want := inArchive
		for k, v := range keysBefore {
			want.Settings[k] = v
		}
		if diff := storetest.SameModel(bSnapshot(t, a.st), want); diff != "" {
			t.Errorf("model after restore differs from the archive:\n%s", diff)
		}
		dev, ops := a.login("dev-1", bDevPW), a.login("ops-1", bOpsPW)
		var devAfter, opsAfter json.RawMessage
		a.mustAs(dev, "GET", "/api/permissions", nil, http.StatusOK, &devAfter)
		a.mustAs(ops, "GET", "/api/permissions", nil, http.StatusOK, &opsAfter)
		if !bytes.Equal(devAfter, devPerms) || !bytes.Equal(opsAfter, opsPerms) {
			t.Errorf("permissions after restore:\n dev %s\n  was %s\n ops %s\n  was %s", devAfter, devPerms, opsAfter, opsPerms)
		}
		a.mustAs(ops, "GET", "/api/users/usernames", nil, http.StatusOK, nil)
		a.mustAs(dev, "GET", "/api/users/usernames", nil, http.StatusForbidden, nil)
		if code := bLoginCode(a, "late", "late-secret-12"); code != http.StatusForbidden {
			t.Errorf("login of a user created after the backup: %d, want 403", code)
		}
		if code := bLoginCode(a, "dev-1", "wrong-password-1"); code != http.StatusForbidden {
			t.Errorf("login with a wrong password after restore: %d, want 403", code)
		}

		// A browser-style multipart upload restores as well.
		bRestore(a, archive, true)
		a.login("dev-1", bDevPW)
	})
}

// TestMaintenanceKeysOnlyWhenAsked: includeKeys=true puts the key settings
// into the archive; without it none are; a bad value is a 400.
func TestMaintenanceKeysOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	a := newAPI(t, storetest.OpenBolt(t))
	_, plain := bBackup(a, "")
	snap, err := store.ReadArchive(bytes.NewReader(plain))
	if err != nil {
		t.Fatal(err)
	}
	for k := range snap.Settings {
		if store.IsKeySetting(k) {
			t.Errorf("a backup without includeKeys holds %q", k)
		}
	}
	_, withKeys := bBackup(a, "?includeKeys=true")
	h, snap, err := store.ReadArchiveWithHeader(bytes.NewReader(withKeys))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"pki/ca", "mfa/encryption-key", credential.SettingKeySet + "/1"} {
		if _, ok := snap.Settings[k]; !ok || !h.IncludesKeys {
			t.Errorf("a backup with includeKeys=true lacks %q (header includesKeys %v)", k, h.IncludesKeys)
		}
	}
	// Restoring the same cluster's keys needs no restart.
	if r := bRestore(a, withKeys, false); strings.Contains(r.StatusMessage, "restart") {
		t.Errorf("restore of this cluster's own keys asks for a restart: %q", r.StatusMessage)
	}
	code, body := a.do("POST", "/api/maintenance/db/backup?includeKeys=maybe", a.admin, nil)
	if code != http.StatusBadRequest || errorCode(t, body) != http.StatusBadRequest {
		t.Errorf("includeKeys=maybe: %d %s, want 400", code, body)
	}
}

// TestMaintenanceRefusesBadArchives: a truncated, corrupt or foreign
// upload is answered 400 with the reason, and nothing changes: not the
// model, not its version, not the maintenance status.
func TestMaintenanceRefusesBadArchives(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		bUser(a, "dev-1", bDevPW, nil, nil)
		_, good := bBackup(a, "")
		a.must("DELETE", "/api/users/"+mustUserID(t, a.st, "dev-1"), nil, http.StatusOK, nil)
		before := bSnapshot(t, a.st)
		statusBefore := bGetStatus(a)

		flipped := bytes.Clone(good)
		flipped[len(flipped)/2] ^= 0xff
		for _, c := range []struct {
			name, want string
			body       []byte
		}{
			{"truncated to half", "truncated", good[:len(good)/2]},
			{"without its last byte", "truncated", good[:len(good)-1]},
			{"a flipped byte", "invalid backup archive", flipped},
			{"not an archive", "not a warden backup", []byte(`{"users":[]}`)},
			{"empty", "empty", nil},
		} {
			for _, multi := range []bool{false, true} {
				code, body := bUpload(a, c.body, multi)
				if code != http.StatusBadRequest || errorCode(t, body) != http.StatusBadRequest || !strings.Contains(string(body), c.want) {
					t.Errorf("%s (multipart %v): %d %s, want 400 saying %q", c.name, multi, code, body, c.want)
				}
			}
		}
		after := bSnapshot(t, a.st)
		if diff := storetest.SameModel(after, before); diff != "" || after.Version != before.Version {
			t.Errorf("refused uploads changed the model (version %d -> %d):\n%s", before.Version, after.Version, diff)
		}
		if st := bGetStatus(a); st.Running || st.Restore != nil || st.Backup.ID != statusBefore.Backup.ID {
			t.Errorf("refused uploads changed the status: %+v", st)
		}
		if code := bLoginCode(a, "dev-1", bDevPW); code != http.StatusForbidden {
			t.Errorf("the deleted user logs in after refused restores: %d", code)
		}
	})
}

func mustUserID(t *testing.T, st store.Store, name string) string {
	t.Helper()
	u, err := st.UserByUsername(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// TestMaintenanceLockedWhileRunning: while a backup or a restore runs
// (held by the test hook), every maintenance request but the status gets
// 423, and the status says what runs.
func TestMaintenanceLockedWhileRunning(t *testing.T) {
	t.Parallel()
	a := newAPI(t, storetest.OpenBolt(t))
	_, archive := bBackup(a, "")

	entered := make(chan string)
	release := make(chan struct{})
	admin.HoldMaintenance(a.srv, func(op string) {
		entered <- op
		<-release
	})
	for _, op := range []string{"backup", "restore"} {
		t.Run(op, func(t *testing.T) {
			if op == "backup" {
				a.must("POST", "/api/maintenance/db/backup", nil, http.StatusAccepted, nil)
			} else if code, body := bUpload(a, archive, false); code != http.StatusAccepted {
				t.Fatalf("restore upload: %d %s", code, body)
			}
			if got := <-entered; got != op {
				t.Fatalf("hold entered by %q, want %q", got, op)
			}
			st := bGetStatus(a)
			cur := st.Backup
			if op == "restore" {
				cur = st.Restore
			}
			if !st.Running || cur == nil || cur.EndDate != nil || cur.Succeeded || !strings.Contains(cur.StatusMessage, "running") {
				t.Errorf("status while a %s runs: %+v", op, st)
			}
			for _, try := range []func() (int, []byte){
				func() (int, []byte) { return a.do("POST", "/api/maintenance/db/backup", a.admin, nil) },
				func() (int, []byte) { return a.do("GET", "/api/maintenance/db/backup", a.admin, nil) },
				func() (int, []byte) { return bUpload(a, archive, false) },
			} {
				if code, body := try(); code != http.StatusLocked || errorCode(t, body) != http.StatusLocked {
					t.Errorf("while a %s runs: %d %s, want 423", op, code, body)
				}
			}
			release <- struct{}{}
			st = bWaitIdle(a)
			if cur := map[string]*bOp{"backup": st.Backup, "restore": st.Restore}[op]; cur == nil || !cur.Succeeded {
				t.Errorf("%s after release: %+v", op, cur)
			}
		})
	}
	admin.HoldMaintenance(a.srv, nil)
	// Once idle, everything is allowed again.
	bBackup(a, "")
}

// TestMaintenanceMissingPermission: the endpoints need http permissions
// like any other (Connectware's backup page: read on
// /api/maintenance/db, readWrite on /api/maintenance/db/+).
func TestMaintenanceMissingPermission(t *testing.T) {
	t.Parallel()
	a := newAPI(t, storetest.OpenBolt(t))
	bUser(a, "viewer", "viewer-secret-1", nil, []acl.Permission{
		{Resource: "/api/maintenance/db", Operation: acl.OpRead, Context: acl.ContextHTTP},
	})
	tok := a.login("viewer", "viewer-secret-1")
	a.mustAs(tok, "GET", "/api/maintenance/db", nil, http.StatusOK, nil)
	a.mustAs(tok, "POST", "/api/maintenance/db/backup", nil, http.StatusForbidden, nil)
	a.mustAs(tok, "GET", "/api/maintenance/db/backup", nil, http.StatusForbidden, nil)
	a.mustAs(tok, "POST", "/api/maintenance/db/restore", []byte("x"), http.StatusForbidden, nil)
	a.mustAs("", "GET", "/api/maintenance/db", nil, http.StatusUnauthorized, nil)
}

// bNode is a broker with warden's auth hook on st, like one warden node.
func bNode(t *testing.T, st store.Store) string {
	t.Helper()
	ctx := context.Background()
	tokens, err := credential.NewTokens(ctx, st, "warden-test")
	if err != nil {
		t.Fatal(err)
	}
	h, err := authhook.New(ctx, authhook.Options{Store: st, Tokens: tokens, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.New(broker.Config{TCPAddr: "127.0.0.1:0", ConnectTimeout: 5 * time.Second, Logger: slog.New(slog.DiscardHandler)}, h)
	if err != nil {
		t.Fatal(err)
	}
	h.Attach(b.Server())
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b.Addr(broker.ListenerTCP)
}

// bConnect connects an MQTT 5 client (Eclipse Paho) as username.
func bConnect(t *testing.T, addr, username, password string) *paho.Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: username + "-" + addr, KeepAlive: 30, CleanStart: true,
		Username: username, UsernameFlag: true, Password: []byte(password), PasswordFlag: true})
	if err != nil || ca.ReasonCode != 0 {
		t.Fatalf("connect %s: %v %+v", username, err, ca)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c
}

func bGone(t *testing.T, c *paho.Client, who string) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("%s still connected 10 s after the change", who)
	}
}

func bConnected(t *testing.T, c *paho.Client, who, topic string) {
	t.Helper()
	select {
	case <-c.Done():
		t.Fatalf("%s was disconnected", who)
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pr, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("1")})
	if err != nil || pr.ReasonCode != 0 {
		t.Fatalf("%s publish to %s after restore: %v %+v", who, topic, err, pr)
	}
}

// TestMaintenanceRestoreDisconnectsOnlyRemovedUsers: MQTT clients stay
// connected through a restore, except those of users the archive does not
// have; on Redis, on the node that restored and on another node alike.
func TestMaintenanceRestoreDisconnectsOnlyRemovedUsers(t *testing.T) {
	t.Parallel()
	run := func(t *testing.T, a *api, nodes []string) {
		perms := func(user string) []acl.Permission {
			return []acl.Permission{{Resource: user + "/#", Operation: acl.OpReadWrite, Context: acl.ContextMQTT}}
		}
		bUser(a, "keep", "keep-secret-12", nil, perms("keep"))
		bUser(a, "probe", "probe-secret-1", nil, perms("probe"))
		_, archive := bBackup(a, "")
		bUser(a, "gone", "gone-secret-12", nil, perms("gone"))

		type clients struct{ keep, probe, gone *paho.Client }
		var cs []clients
		for _, addr := range nodes {
			cs = append(cs, clients{
				keep:  bConnect(t, addr, "keep", "keep-secret-12"),
				probe: bConnect(t, addr, "probe", "probe-secret-1"),
				gone:  bConnect(t, addr, "gone", "gone-secret-12"),
			})
		}
		bRestore(a, archive, false)
		// Deleting probe after the restore is a barrier: each node applies
		// events in order, so once probe's clients are gone, the restore
		// has been carried out everywhere.
		a.must("DELETE", "/api/users/"+mustUserID(t, a.st, "probe"), nil, http.StatusOK, nil)
		for i, c := range cs {
			bGone(t, c.probe, "probe (barrier)")
			bGone(t, c.gone, "gone, a user the archive does not have")
			bConnected(t, c.keep, "keep", "keep/data")
			t.Logf("node %d: gone disconnected, keep still connected", i)
		}
		// A user that is back may connect again; one that is not, may not.
		bConnected(t, bConnect(t, nodes[0], "keep", "keep-secret-12"), "keep (new connection)", "keep/x")
	}
	t.Run("bolt", func(t *testing.T) {
		a := newAPI(t, storetest.OpenBolt(t))
		run(t, a, []string{bNode(t, a.st)})
	})
	t.Run("redis, two nodes", func(t *testing.T) {
		srv := storetest.StartRedis(t)
		open := func() store.Store { return storetest.OpenRedis(t, storetest.URL(srv.URL)) }
		a := newAPI(t, open())
		run(t, a, []string{bNode(t, a.st), bNode(t, open())})
	})
}

// TestMaintenanceRestoreOfAnotherNATSIssuer: a backup with keys from a
// cluster whose NATS callout issuer differs says that warden must restart
// and that every NATS server needs the configuration printed again; the
// same issuer asks for nothing.
func TestMaintenanceRestoreOfAnotherNATSIssuer(t *testing.T) {
	t.Parallel()
	st := storetest.OpenBolt(t)
	a := newAPI(t, st)
	ctx := t.Context()
	if err := st.PutSetting(ctx, "nats/issuer", []byte("issuer-seed-of-the-backup")); err != nil {
		t.Fatal(err)
	}
	_, withKeys := bBackup(a, "?includeKeys=true")
	if r := bRestore(a, withKeys, false); strings.Contains(r.StatusMessage, "NATS") {
		t.Errorf("restore of the cluster's own issuer: %q", r.StatusMessage)
	}
	if err := st.PutSetting(ctx, "nats/issuer", []byte("issuer-seed-of-this-cluster")); err != nil {
		t.Fatal(err)
	}
	r := bRestore(a, withKeys, false)
	for _, want := range []string{"NATS callout issuer", "restart every warden node", "warden nats-config"} {
		if !strings.Contains(r.StatusMessage, want) {
			t.Errorf("restore of another issuer: %q lacks %q", r.StatusMessage, want)
		}
	}
}
