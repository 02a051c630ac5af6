package poll

import (
	"testing"
	"time"
)

// interval is how long Until sleeps between two looks at the condition.
const interval = 10 * time.Millisecond

// Until calls cond until it returns true, and fails the test (t.Fatalf)
// if it is still false after d. what says what was awaited ("alice
// disconnected"), for the failure message. cond is called once more
// after the deadline, so a condition that comes true while the poller
// sleeps is not reported as missed.
func Until(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for: %s", d, what)
		}
		time.Sleep(interval)
	}
}
