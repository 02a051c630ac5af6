//go:build !race

package broker

// raceEnabled: see race_on_test.go.
const raceEnabled = false
