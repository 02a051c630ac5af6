// Package poll is for tests: it waits for a condition that another
// goroutine, node or process brings about, and fails the test with what
// it waited for when the condition does not come in time.
//
// It owns only the waiting; what is awaited is the caller's. It imports
// the standard library only, so tests of every package may use it.
package poll
