// SPDX-License-Identifier: MIT

//go:build !unix

package mqtt

import "io"

// rawReads: sockets are read as any connection (connReader keeps its
// buffer).
const rawReads = false

// rawRead is never called: newConnReader uses no RawConn here.
func (cr *connReader) rawRead([]byte) (int, error) { return 0, io.ErrNoProgress }

// readRaw is never called.
func (cr *connReader) readRaw(uintptr) bool { return true }
