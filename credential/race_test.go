//go:build race

package credential

// raceEnabled: the race detector makes sync.Pool drop a share of what is
// put back, so pooled work allocates; allocation checks skip then.
const raceEnabled = true
