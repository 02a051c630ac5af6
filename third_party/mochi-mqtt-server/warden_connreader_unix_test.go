// SPDX-License-Identifier: MIT

//go:build unix

package mqtt

import (
	"io"
	"testing"
)

// TestConnReaderRawReadAllocatesNothing (patch 22): reading a socket
// through its RawConn allocates nothing per read; a callback closure made
// per read cost three allocations (the closure and the two results it
// captured) for every read of every client.
func TestConnReaderRawReadAllocatesNothing(t *testing.T) {
	server, client := tcpPair(t)
	cr := newConnReader(server, 64)
	if cr.raw == nil {
		t.Fatal("a TCP socket is not read raw")
	}
	msg := make([]byte, 100)
	got := make([]byte, 100)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := client.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(cr, got); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per write and read; want 0", allocs)
	}
}
