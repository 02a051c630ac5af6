// SPDX-License-Identifier: MIT

//go:build race

package mqtt

// raceEnabled: sync.Pool drops items at random under the race detector,
// so allocation counts are not asserted.
const raceEnabled = true
