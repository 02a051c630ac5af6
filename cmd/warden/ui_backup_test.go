package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
)

// maintenanceOp is one operation of GET /api/maintenance/db.
type maintenanceOp struct {
	ID            string `json:"id"`
	Succeeded     bool   `json:"succeeded"`
	StatusMessage string `json:"statusMessage"`
}

// TestUIBackup: a backup started in the UI finishes and is downloaded as
// a gzip archive (saved by the browser, the token never in a URL); a
// role created after it is gone once that archive is restored through the
// UI, which reports the success and that sessions may end.
func TestUIBackup(t *testing.T) {
	t.Parallel()
	e := startUI(t)
	downloads := t.TempDir()
	e.signIn("admin", e.pw, "")
	e.b.Run("allow downloads", 5*time.Second,
		browser.SetDownloadBehavior(browser.SetDownloadBehaviorBehaviorAllow).WithDownloadPath(downloads))
	e.page("backup", "Backup & restore")
	lastBackup := `//main//div[contains(@class,'op')][h3[starts-with(normalize-space(),'Last backup')]]`
	keys := `//main//label[starts-with(normalize-space(),"Include the secret keys")]`
	warning := `//main//p[contains(@class,'note')][contains(.,'sign a login token for any user')]`
	e.b.Run("the keys warning", 10*time.Second,
		chromedp.Click(keys, chromedp.BySearch),
		chromedp.WaitVisible(warning, chromedp.BySearch),
		chromedp.Click(keys, chromedp.BySearch),
		chromedp.WaitNotVisible(warning, chromedp.BySearch))
	e.b.Run("back up", 15*time.Second,
		clickButton("//main", "Start backup"),
		chromedp.WaitVisible(lastBackup+`//span[normalize-space()="Succeeded"]`, chromedp.BySearch))
	if msg := e.b.Text(lastBackup + `//dd[contains(@class,'status-message')]`); !strings.HasPrefix(msg, "backup finished") || !strings.Contains(msg, "without keys") {
		t.Errorf("status message %q", msg)
	}
	var st struct {
		Running         bool
		Backup, Restore *maintenanceOp
	}
	e.api("GET", "/api/maintenance/db", nil, &st, 200)
	if st.Backup == nil || !st.Backup.Succeeded {
		t.Fatalf("the API's last backup: %+v", st.Backup)
	}

	e.b.Run("download", 10*time.Second, clickButton("//main", "Download the last backup"))
	var archive string
	eventually(t, "the download is saved", func() bool {
		files, _ := filepath.Glob(filepath.Join(downloads, "warden-backup-*.gz"))
		if len(files) == 1 {
			archive = files[0]
		}
		return archive != ""
	})
	data, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
		t.Fatalf("the download %s is not a gzip archive: % x", filepath.Base(archive), data[:min(len(data), 8)])
	}

	// A change after the backup, which the restore undoes.
	e.api("POST", "/api/roles", map[string]any{"name": "after-backup", "isShared": true}, nil, 201)
	e.b.Run("restore", 20*time.Second,
		chromedp.SetUploadFiles(`main input[name=archive]`, []string{archive}),
		clickButton("//main", "Restore…"),
		clickButton("//dialog", "Restore"),
		chromedp.WaitVisible(`//main//*[@role='status']//span[normalize-space()="✓ Restored"]`, chromedp.BySearch))
	if got := e.b.Text(`//main//*[@role='status']`); !strings.Contains(got, "restore finished") || !strings.Contains(got, "sign in again") {
		t.Errorf("restore result %q", got)
	}
	e.api("GET", "/api/maintenance/db", nil, &st, 200)
	if st.Restore == nil || !st.Restore.Succeeded || st.Restore.ID != st.Backup.ID {
		t.Errorf("the API's last restore: %+v (backup %s)", st.Restore, st.Backup.ID)
	}
	if e.roleByName("after-backup") != nil {
		t.Error("the role created after the backup survived the restore")
	}
	e.shoot("backup")
	if errs := e.b.Errors(); len(errs) > 0 {
		t.Errorf("page errors: %v", errs)
	}
}
