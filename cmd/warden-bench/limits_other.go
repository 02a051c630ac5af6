//go:build !unix

package main

// openFileLimit is unknown here; the idle scenario finds the limit when
// a connect fails.
func openFileLimit() (uint64, bool) { return 0, false }
