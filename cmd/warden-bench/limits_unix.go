//go:build unix

package main

import "syscall"

// openFileLimit returns this process's soft limit on open files. Go
// raises it to the hard limit when the program starts (os package, since
// Go 1.19), so it is the most the idle scenario can hold.
func openFileLimit() (uint64, bool) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, false
	}
	return uint64(rl.Cur), true
}
