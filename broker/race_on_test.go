//go:build race

package broker

// raceEnabled: under the race detector sync.Pool drops items at random,
// so allocation counts of pooled code paths are not meaningful.
const raceEnabled = true
