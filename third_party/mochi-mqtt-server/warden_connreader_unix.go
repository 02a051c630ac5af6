// SPDX-License-Identifier: MIT

//go:build unix

package mqtt

import (
	"io"
	"os"
	"syscall"
)

// rawReads: sockets are read with their RawConn (connReader).
const rawReads = true

// rawRead reads from the socket into p, or when p is nil into the buffer,
// taking one from the pool if the reader holds none. When the socket has
// nothing to read, the buffer goes back to the pool before the goroutine
// waits for it to become readable (warden patch, see connReader).
func (cr *connReader) rawRead(p []byte) (int, error) {
	cr.rp, cr.rn, cr.rerr = p, 0, nil
	err := cr.raw.Read(cr.readFD)
	n, rerr := cr.rn, cr.rerr
	cr.rp, cr.rerr = nil, nil
	switch {
	case err != nil: // closed, deadline exceeded
		cr.release()
		return 0, err
	case rerr != nil:
		cr.release()
		return 0, os.NewSyscallError("read", rerr)
	case n <= 0:
		cr.release()
		return 0, io.EOF
	}
	return n, nil
}

// readRaw is rawRead's RawConn callback (cr.readFD).
func (cr *connReader) readRaw(fd uintptr) bool {
	for {
		into := cr.rp
		if into == nil {
			if cr.buf == nil {
				cr.take()
			}
			into = cr.buf
		}
		n, err := syscall.Read(int(fd), into)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			cr.release() // nothing to read: wait without a buffer
			return false
		}
		cr.rn, cr.rerr = n, err
		return true
	}
}
