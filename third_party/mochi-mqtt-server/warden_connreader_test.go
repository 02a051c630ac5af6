// SPDX-License-Identifier: MIT

package mqtt

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// tcpPair is a connected loopback TCP pair: the server end (read by the
// connReader) and the client end.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = server.Close(); _ = client.Close() })
	return server, client
}

// plainWrapper is a wrapper whose reads are its connection's: it opts in
// to raw reads with PlainSocket.
type plainWrapper struct{ net.Conn }

func (w plainWrapper) PlainSocket() net.Conn { return w.Conn }

// opaqueWrapper hides its connection: it must be read through Read.
type opaqueWrapper struct{ net.Conn }

// TestConnReaderReadsWhatWasSent: bytes written in pieces of every size
// read back the same with ReadByte, small and large Reads, on a raw
// socket, a PlainSocket wrapper and an opaque wrapper.
func TestConnReaderReadsWhatWasSent(t *testing.T) {
	for _, tc := range []struct {
		name string
		wrap func(net.Conn) net.Conn
		raw  bool
	}{
		{"tcp", func(c net.Conn) net.Conn { return c }, rawReads},
		{"plain wrapper", func(c net.Conn) net.Conn { return plainWrapper{c} }, rawReads},
		{"opaque wrapper", func(c net.Conn) net.Conn { return opaqueWrapper{c} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server, client := tcpPair(t)
			cr := newConnReader(tc.wrap(server), 64)
			if (cr.raw != nil) != tc.raw {
				t.Fatalf("raw reads %v, want %v", cr.raw != nil, tc.raw)
			}
			want := make([]byte, 10000)
			for i := range want {
				want[i] = byte(i * 7)
			}
			go func() {
				for rest := want; len(rest) > 0; {
					n := min(len(rest), 1+len(rest)%300)
					_, _ = client.Write(rest[:n])
					rest = rest[n:]
					time.Sleep(time.Microsecond)
				}
			}()
			got := make([]byte, 0, len(want))
			for step := 0; len(got) < len(want); step++ {
				switch step % 3 {
				case 0:
					b, err := cr.ReadByte()
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, b)
				case 1: // small: through the buffer
					p := make([]byte, min(10, len(want)-len(got)))
					n, err := io.ReadFull(cr, p)
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, p[:n]...)
				case 2: // large: straight into p when the buffer is empty
					p := make([]byte, min(500, len(want)-len(got)))
					n, err := io.ReadFull(cr, p)
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, p[:n]...)
				}
			}
			if !bytes.Equal(got, want) {
				t.Fatal("read back different bytes")
			}
		})
	}
}

// TestConnReaderIdleHoldsNoBuffer: on a raw socket the reader gives its
// buffer back when it finds nothing to read, so a read that waits (and
// ends at the deadline) leaves the reader without one; deadlines, EOF and
// a close end reads as they do on the connection.
func TestConnReaderIdleHoldsNoBuffer(t *testing.T) {
	if !rawReads {
		t.Skip("no raw socket reads on this platform")
	}
	server, client := tcpPair(t)
	cr := newConnReader(plainWrapper{server}, 2048)
	if _, err := client.Write([]byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if b, err := cr.ReadByte(); err != nil || b != 1 || cr.buf == nil {
		t.Fatalf("ReadByte = %d, %v, buffer held %v; want 1, nil, true", b, err, cr.buf != nil)
	}
	p := make([]byte, 2)
	if _, err := io.ReadFull(cr, p); err != nil || p[0] != 2 || p[1] != 3 {
		t.Fatalf("Read = % x, %v", p, err)
	}

	_ = server.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := cr.ReadByte(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("idle ReadByte error %v, want the deadline", err)
	}
	if cr.buf != nil || cr.bufp != nil {
		t.Fatal("the reader held its buffer while it waited")
	}

	_ = server.SetReadDeadline(time.Time{})
	go func() {
		time.Sleep(20 * time.Millisecond)
		_, _ = client.Write([]byte{4})
		_ = client.Close()
	}()
	if b, err := cr.ReadByte(); err != nil || b != 4 {
		t.Fatalf("ReadByte after waiting = %d, %v; want 4", b, err)
	}
	if _, err := cr.ReadByte(); err != io.EOF {
		t.Fatalf("ReadByte at the end = %v, want io.EOF", err)
	}
	if cr.buf != nil {
		t.Fatal("the reader held its buffer after EOF")
	}

	server2, _ := tcpPair(t)
	cr2 := newConnReader(server2, 2048)
	go func() { time.Sleep(20 * time.Millisecond); _ = server2.Close() }()
	if _, err := cr2.ReadByte(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("ReadByte on a closed connection = %v, want net.ErrClosed", err)
	}
}
