package mqtttest

import (
	"errors"
	"io"
	"testing"
)

// maxRemaining is the largest remaining length MQTT can encode
// (256 MiB - 1).
const maxRemaining = 268435455

// errMalformed is ReadPacket's error for a remaining length longer than
// four bytes.
var errMalformed = errors.New("mqtttest: malformed remaining length")

// Connect is a CONNECT packet with a clean session (clean start in MQTT 5)
// and no will.
type Connect struct {
	Version   byte // 4 = MQTT 3.1.1, 5 = MQTT 5
	ClientID  string
	Username  string // sent when not empty
	Password  string // sent when not empty
	Keepalive uint16 // seconds; 0 = none
}

// Bytes encodes the packet, fixed header included. An MQTT 5 CONNECT
// carries no properties.
func (c Connect) Bytes() []byte {
	flags := byte(0x02) // clean session
	if c.Username != "" {
		flags |= 0x80
	}
	if c.Password != "" {
		flags |= 0x40
	}
	body := append(String("MQTT"), c.Version, flags, byte(c.Keepalive>>8), byte(c.Keepalive))
	if c.Version == 5 {
		body = append(body, 0) // property length
	}
	body = append(body, String(c.ClientID)...)
	if c.Username != "" {
		body = append(body, String(c.Username)...)
	}
	if c.Password != "" {
		body = append(body, String(c.Password)...)
	}
	return Packet(0x10, body)
}

// String is s as an MQTT UTF-8 string: two bytes of length, then s.
func String(s string) []byte {
	return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...)
}

// Header is a fixed header: the first byte (type and flags) and the
// remaining length as a variable byte integer. remaining may be any
// length up to 256 MiB - 1, whatever follows it.
func Header(first byte, remaining int) []byte {
	if remaining < 0 || remaining > maxRemaining {
		panic("mqtttest: remaining length out of range")
	}
	out := []byte{first}
	for {
		b := byte(remaining % 128)
		remaining /= 128
		if remaining > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if remaining == 0 {
			return out
		}
	}
}

// Packet frames body with its fixed header.
func Packet(first byte, body []byte) []byte {
	return append(Header(first, len(body)), body...)
}

// ReadPacket reads one control packet from r: its first byte (type and
// flags) and its body. It reads no byte beyond the packet, so r may be a
// bare connection read again afterwards. An error is r's as it came
// (io.EOF when the connection ended before or inside the packet's
// header), or one saying the remaining length is malformed.
func ReadPacket(r io.Reader) (first byte, body []byte, err error) {
	first, err = readByte(r)
	if err != nil {
		return 0, nil, err
	}
	n, shift := 0, 0
	for {
		b, err := readByte(r)
		if err != nil {
			return 0, nil, err
		}
		n |= int(b&0x7f) << shift
		if b&0x80 == 0 {
			break
		}
		if shift += 7; shift > 21 {
			return 0, nil, errMalformed
		}
	}
	body = make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return first, body, nil
}

// MustReadPacket is ReadPacket that fails the test on an error.
func MustReadPacket(t testing.TB, r io.Reader) (first byte, body []byte) {
	t.Helper()
	first, body, err := ReadPacket(r)
	if err != nil {
		t.Fatalf("read MQTT packet: %v", err)
	}
	return first, body
}

// readByte reads one byte, with r's ReadByte when it has one (a
// bufio.Reader), so reading from a buffered reader costs no syscall each.
func readByte(r io.Reader) (byte, error) {
	if br, ok := r.(io.ByteReader); ok {
		return br.ReadByte()
	}
	var b [1]byte
	_, err := io.ReadFull(r, b[:])
	return b[0], err
}
