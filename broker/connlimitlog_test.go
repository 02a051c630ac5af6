package broker

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/warden-mqtt/warden/internal/logbuf"
)

// TestConnectionLimitFirstWarning: the first "connection limit reached"
// warning has no earlier one to count from, so it says nothing of "since"
// (it said "since" the Unix epoch, half a million hours); the refusals it
// reports are counted.
func TestConnectionLimitFirstWarning(t *testing.T) {
	var logs logbuf.Buffer
	l := newConnLimit(0, slog.New(slog.NewTextHandler(&logs, nil)))
	if l.acquire() {
		t.Fatal("a slot was granted with a limit of 0")
	}
	got := logs.String()
	if !strings.Contains(got, "connection limit reached") || !strings.Contains(got, "refused=1") {
		t.Fatalf("first refusal logged %q, want the limit warning counting 1 refusal", got)
	}
	if strings.Contains(got, "since=") {
		t.Errorf("first warning %q has a since attribute", got)
	}
}
