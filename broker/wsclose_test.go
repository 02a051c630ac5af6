package broker

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestWebSocketRefusedUpgradeIsClosed: an HTTP request the WebSocket
// listener refuses (403 for an Origin not allowed, 400 for a request that
// is not an upgrade) gets its answer and then its socket is closed, within
// the connect timeout, and gives its --mqtt-max-connections slot back.
// Before, net/http kept the connection alive without a timeout, so silent
// refused sockets held slots until the client let go.
func TestWebSocketRefusedUpgradeIsClosed(t *testing.T) {
	const timeout = time.Second
	b := startBroker(t, Config{WSAddr: local, ConnectTimeout: timeout})
	for name, c := range map[string]struct {
		request string
		status  int
	}{
		"an Origin not allowed": {"GET /mqtt HTTP/1.1\r\nHost: broker\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n" +
			"Origin: https://evil.example\r\n\r\n", http.StatusForbidden},
		"not an upgrade": {"GET /mqtt HTTP/1.1\r\nHost: broker\r\n\r\n", http.StatusBadRequest},
	} {
		t.Run(name, func(t *testing.T) {
			conn := dialTCP(b.Addr(ListenerWS))(t)
			defer conn.Close()
			if _, err := conn.Write([]byte(c.request)); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			// The wait is the bound (the connect timeout) plus a
			// second of slack for a loaded machine.
			_ = conn.SetReadDeadline(start.Add(timeout + time.Second))
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no HTTP answer: %v", err)
			}
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.status)
			}
			_, err = io.Copy(io.Discard, br) // the body, then EOF when the server closes
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("socket still open %v after the refusal (connect timeout %v); slots held: %d",
					time.Since(start).Round(time.Millisecond), timeout, b.conns.open.Load())
			}
			deadline := start.Add(timeout + time.Second)
			for b.conns.open.Load() != 0 {
				if time.Now().After(deadline) {
					t.Fatalf("%d connection slots still held %v after the refusal", b.conns.open.Load(), timeout+time.Second)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}
