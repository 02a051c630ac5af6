package broker

import (
	"bufio"
	"net"
	"testing"

	"github.com/warden-mqtt/warden/internal/mqtttest"
)

// rawClient connects a bare MQTT 5 client (no client library: tests and
// benchmarks that count the broker's allocations need a client side that
// makes none) and returns its connection and a reader on it, after the
// CONNACK. The connection is closed at the end of the test.
func rawClient(t testing.TB, addr, id string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	r := bufio.NewReaderSize(c, 64<<10)
	if _, err := c.Write(mqtttest.Connect{Version: 5, ClientID: id}.Bytes()); err != nil {
		t.Fatal(err)
	}
	if first, body := mqtttest.MustReadPacket(t, r); first != 0x20 || len(body) < 2 || body[1] != 0 {
		t.Fatalf("%s: CONNACK %#x %x, want success", id, first, body)
	}
	return c, r
}

// rawSubscribe sends one SUBSCRIBE (packet ID 1) for filter at qos with
// the given SUBSCRIBE properties (MQTT 5 encoding, under 128 bytes) and
// waits for its SUBACK.
func rawSubscribe(t testing.TB, c net.Conn, r *bufio.Reader, filter string, qos byte, props ...byte) {
	t.Helper()
	body := append([]byte{0, 1, byte(len(props))}, props...)
	body = append(append(body, mqtttest.String(filter)...), qos)
	if _, err := c.Write(mqtttest.Packet(0x82, body)); err != nil {
		t.Fatal(err)
	}
	if first, _ := mqtttest.MustReadPacket(t, r); first != 0x90 {
		t.Fatalf("SUBACK expected for %s, got %#x", filter, first)
	}
}
