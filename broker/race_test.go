//go:build race

package broker

// raceEnabled: the race detector changes goroutine stacks and the heap,
// so memory tests skip their bounds.
const raceEnabled = true
