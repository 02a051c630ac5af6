package poll

import (
	"testing"
	"time"
)

// interval is how long Until sleeps between two looks at the condition.
const interval = 10 * time.Millisecond

// Until calls cond until it returns true, and fails the test (t.Fatalf,
// naming what) if it is still false after d. cond is called once more
// after the deadline, so a condition that comes true while the poller
// sleeps is not reported as missed.
func Until(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not the case after %v: %s", d, what)
		}
		time.Sleep(interval)
	}
}
