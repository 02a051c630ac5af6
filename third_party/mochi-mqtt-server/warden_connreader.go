// SPDX-License-Identifier: MIT

package mqtt

import (
	"io"
	"net"
	"sync"
	"syscall"
)

// PlainSocket is implemented by a connection wrapper whose reads are the
// reads of the connection it returns, unchanged (warden patch): a wrapper
// that only tracks or limits connections. A client's packets are read
// straight from a TCP or Unix socket (see connReader) when cl.Net.Conn is
// one, or unwraps to one through PlainSocket. A wrapper that transforms
// or buffers what it reads (TLS, WebSocket, a PROXY protocol reader) must
// not implement it.
type PlainSocket interface {
	PlainSocket() net.Conn
}

// readBufPools holds the read buffers of idle clients' connReaders, one
// pool per buffer size (Options.ClientNetReadBufferSize).
var readBufPools sync.Map // int -> *sync.Pool of *[]byte

func readBufPool(size int) *sync.Pool {
	if p, ok := readBufPools.Load(size); ok {
		return p.(*sync.Pool)
	}
	p, _ := readBufPools.LoadOrStore(size, &sync.Pool{New: func() any {
		b := make([]byte, size)
		return &b
	}})
	return p.(*sync.Pool)
}

// connReader is a client's buffered reader (warden patch; upstream used a
// bufio.Reader of ClientNetReadBufferSize bytes, 2 KiB by default, held
// for the connection's life). On a plain socket it reads with the
// socket's RawConn and holds its buffer only while bytes arrive: when a
// read finds nothing to read, the buffer goes back to a pool before the
// goroutine waits, and one is taken again when the socket is readable.
// That costs no system call more than a bufio.Reader (the read that finds
// nothing is the one the runtime makes before it waits), and an idle
// client holds no read buffer. Other connections (TLS, WebSocket) keep a
// buffer, as upstream.
type connReader struct {
	conn net.Conn
	raw  syscall.RawConn // nil: read conn, keep buf
	pool *sync.Pool      // raw only
	size int
	buf  []byte
	bufp *[]byte // the pool's pointer to buf
	r, w int     // buf[r:w] is read and not yet consumed

	// One raw read's argument and results, and the function RawConn.Read
	// calls, made once: a closure made per read escapes to the heap with
	// what it captures (three allocations for every read).
	rp     []byte
	rn     int
	rerr   error
	readFD func(fd uintptr) bool
}

func newConnReader(c net.Conn, size int) *connReader {
	cr := &connReader{conn: c, size: max(size, 16)}
	if raw := rawSocket(c); raw != nil && rawReads {
		cr.raw, cr.pool = raw, readBufPool(cr.size)
		cr.readFD = cr.readRaw
	}
	return cr
}

// rawSocket is c's RawConn when c is, or unwraps through PlainSocket to, a
// TCP or Unix socket.
func rawSocket(c net.Conn) syscall.RawConn {
	for i := 0; i < 8; i++ {
		switch s := c.(type) {
		case *net.TCPConn:
			raw, err := s.SyscallConn()
			if err != nil {
				return nil
			}
			return raw
		case *net.UnixConn:
			raw, err := s.SyscallConn()
			if err != nil {
				return nil
			}
			return raw
		case PlainSocket:
			c = s.PlainSocket()
		default:
			return nil
		}
	}
	return nil
}

// fill reads into the empty buffer. It returns an error only when it read
// nothing.
func (cr *connReader) fill() error {
	cr.r, cr.w = 0, 0
	if cr.raw == nil {
		if cr.buf == nil {
			cr.buf = make([]byte, cr.size)
		}
		for i := 0; i < 100; i++ { // as bufio.Reader: give up on a reader that returns nothing
			n, err := cr.conn.Read(cr.buf)
			if n < 0 {
				n = 0
			}
			cr.w = n
			if n > 0 {
				return nil
			}
			if err != nil {
				return err
			}
		}
		return io.ErrNoProgress
	}
	n, err := cr.rawRead(nil)
	if n > 0 {
		cr.w = n
		return nil
	}
	return err
}

// take gets a buffer from the pool.
func (cr *connReader) take() {
	cr.bufp = cr.pool.Get().(*[]byte)
	cr.buf = *cr.bufp
}

// release returns the buffer to the pool; the reader holds none.
func (cr *connReader) release() {
	if cr.bufp != nil {
		cr.pool.Put(cr.bufp)
	}
	cr.buf, cr.bufp, cr.r, cr.w = nil, nil, 0, 0
}

// ReadByte reads one byte.
func (cr *connReader) ReadByte() (byte, error) {
	if cr.r == cr.w {
		if err := cr.fill(); err != nil {
			return 0, err
		}
	}
	b := cr.buf[cr.r]
	cr.r++
	return b, nil
}

// Read reads up to len(p) bytes: what is buffered, or else one read of the
// connection (straight into p when p is at least the buffer's size).
func (cr *connReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if cr.r == cr.w {
		if len(p) >= cr.size { // large: straight into p, as bufio.Reader
			if cr.raw != nil {
				return cr.rawRead(p)
			}
			return cr.conn.Read(p)
		}
		if err := cr.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, cr.buf[cr.r:cr.w])
	cr.r += n
	return n, nil
}
