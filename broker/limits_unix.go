//go:build unix

package broker

import (
	"math"
	"syscall"
)

// DefaultMaxConnections is Config.MaxConnections' default: 90% of the
// process's open-file limit (RLIMIT_NOFILE, which Go raises to the hard
// limit at start), so that a flood of MQTT sockets, authenticated or not,
// cannot take the descriptors the store, Redis and the admin API need.
// Neither Mosquitto (max_connections -1) nor EMQX (max_connections
// infinity) caps connections by default; the open-file limit is the one
// that breaks everything else when it runs out.
func DefaultMaxConnections() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return fallbackMaxConnections
	}
	if rl.Cur >= math.MaxInt32 { // RLIM_INFINITY or close to it
		return math.MaxInt32
	}
	return max(int(rl.Cur)*9/10, 1)
}
