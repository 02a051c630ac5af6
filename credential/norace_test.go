//go:build !race

package credential

// raceEnabled: see race_test.go.
const raceEnabled = false
