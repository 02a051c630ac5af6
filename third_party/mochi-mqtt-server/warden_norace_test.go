// SPDX-License-Identifier: MIT

//go:build !race

package mqtt

// raceEnabled: see warden_race_test.go.
const raceEnabled = false
