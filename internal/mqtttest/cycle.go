package mqtttest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Cycle dials addr, sends c and reads an accepting CONNACK: the time that
// takes is the connect latency. It then sends DISCONNECT and waits for
// the server to close the connection (closeWait), so the server's cleanup
// of the session belongs to the cycle. It is the connect benchmarks'
// client (natscallout, authhook), shared so their figures compare.
func Cycle(addr string, c Connect) (latency, closeWait time.Duration, err error) {
	start := time.Now()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(start.Add(10 * time.Second))
	if _, err := conn.Write(c.Bytes()); err != nil {
		return 0, 0, err
	}
	first, body, err := ReadPacket(conn)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: reading CONNACK: %w", c.ClientID, err)
	}
	// The reason code is the second byte in both versions (v5 properties
	// follow it).
	if first != 0x20 || len(body) < 2 || body[1] != 0 {
		return 0, 0, fmt.Errorf("%s: CONNACK %#x %v, want accepted", c.ClientID, first, body)
	}
	connected := time.Now()
	if _, err := conn.Write([]byte{0xe0, 0}); err != nil {
		return 0, 0, err
	}
	if _, err := io.Copy(io.Discard, conn); err != nil && !errors.Is(err, net.ErrClosed) {
		return 0, 0, fmt.Errorf("%s: waiting for the server to close: %w", c.ClientID, err)
	}
	return connected.Sub(start), time.Since(connected), nil
}
