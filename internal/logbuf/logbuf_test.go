package logbuf_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/warden-mqtt/warden/internal/logbuf"
)

// TestConcurrentWritesAllArrive: writes from many goroutines all land, whole.
func TestConcurrentWritesAllArrive(t *testing.T) {
	t.Parallel()
	var b logbuf.Buffer
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() { _, _ = b.Write([]byte("line\n")) })
	}
	wg.Wait()
	if got := strings.Count(b.String(), "line\n"); got != 50 {
		t.Fatalf("%d lines, want 50", got)
	}
}
