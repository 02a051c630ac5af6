package poll

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestUntilReturnsOnceTheConditionHolds(t *testing.T) {
	t.Parallel()
	calls := 0
	Until(t, 10*time.Second, "the third call", func() bool { calls++; return calls == 3 })
	if calls != 3 {
		t.Errorf("cond called %d times, want 3", calls)
	}
}

// fatalRecorder is a testing.TB whose Fatalf records the message and
// ends the goroutine, as testing.T's does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestUntilFailsNamingWhatItAwaited: a condition that never holds fails
// the test after the deadline, with what was awaited in the message, and
// is looked at again after the deadline.
func TestUntilFailsNamingWhatItAwaited(t *testing.T) {
	t.Parallel()
	rec := &fatalRecorder{TB: t}
	var last time.Time
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		Until(rec, 50*time.Millisecond, "alice disconnected", func() bool { last = time.Now(); return false })
	}()
	<-done
	if !strings.Contains(rec.msg, "alice disconnected") || !strings.Contains(rec.msg, "50ms") {
		t.Errorf("Fatalf message = %q, want what was awaited and for how long", rec.msg)
	}
	if last.Sub(start) < 50*time.Millisecond {
		t.Errorf("the condition was last looked at %v after the start, want after the deadline", last.Sub(start))
	}
}
