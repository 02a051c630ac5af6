package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// A minimal MQTT 5 client codec on a bare TCP connection, for the cases
// where a paho client per connection would cost the bench more than the
// broker it measures: 10,000 idle clients (paho keeps goroutines, queues
// and buffers per client) and 100,000 retained messages (one publisher
// writing as fast as the socket takes, one subscriber counting). It
// writes CONNECT, PUBLISH (QoS 0, or QoS 1 as a barrier), SUBSCRIBE,
// PINGREQ and DISCONNECT, and reads any packet as its type, flags and
// body; it decodes only what the cases check (CONNACK, SUBACK and PUBACK
// reason codes, a PUBLISH's topic and retain flag).

// MQTT control packet types (the high nibble of the first byte).
const (
	pktConnect    = 1
	pktConnack    = 2
	pktPublish    = 3
	pktPuback     = 4
	pktSubscribe  = 8
	pktSuback     = 9
	pktPingreq    = 12
	pktPingresp   = 13
	pktDisconnect = 14
)

// appendVarint appends n as an MQTT Variable Byte Integer.
func appendVarint(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

// appendString appends a two-byte length and s.
func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// appendPacket appends the fixed header (first byte and remaining length)
// and body.
func appendPacket(b []byte, first byte, body []byte) []byte {
	b = append(b, first)
	b = appendVarint(b, len(body))
	return append(b, body...)
}

// connectPacket is an MQTT 5 CONNECT with clean start, the given keep
// alive (seconds) and no properties.
func connectPacket(clientID, username, password string, keepAlive uint16) []byte {
	body := make([]byte, 0, 32+len(clientID)+len(username)+len(password))
	body = appendString(body, "MQTT")
	body = append(body, 5) // protocol version
	flags := byte(0x02)    // clean start
	if username != "" {
		flags |= 0x80
	}
	if password != "" {
		flags |= 0x40
	}
	body = append(body, flags)
	body = binary.BigEndian.AppendUint16(body, keepAlive)
	body = append(body, 0) // no properties
	body = appendString(body, clientID)
	if username != "" {
		body = appendString(body, username)
	}
	if password != "" {
		body = appendString(body, password)
	}
	return appendPacket(nil, pktConnect<<4, body)
}

// appendPublish appends an MQTT 5 PUBLISH without properties; packetID
// is used (and required) at QoS 1.
func appendPublish(b []byte, topic string, payload []byte, qos byte, retain bool, packetID uint16) []byte {
	first := byte(pktPublish<<4) | qos<<1
	if retain {
		first |= 0x01
	}
	n := 2 + len(topic) + 1 + len(payload)
	if qos > 0 {
		n += 2
	}
	b = append(b, first)
	b = appendVarint(b, n)
	b = appendString(b, topic)
	if qos > 0 {
		b = binary.BigEndian.AppendUint16(b, packetID)
	}
	b = append(b, 0) // no properties
	return append(b, payload...)
}

// subscribePacket subscribes to one filter at qos, retained messages
// sent (Retain Handling 0).
func subscribePacket(packetID uint16, filter string, qos byte) []byte {
	body := binary.BigEndian.AppendUint16(nil, packetID)
	body = append(body, 0) // no properties
	body = appendString(body, filter)
	body = append(body, qos)
	return appendPacket(nil, pktSubscribe<<4|0x02, body)
}

var (
	pingreqPacket    = []byte{pktPingreq << 4, 0}
	disconnectPacket = []byte{pktDisconnect << 4, 0}
)

// errMalformed is a packet the codec cannot read.
var errMalformed = errors.New("malformed MQTT packet")

// readPacket reads one packet into buf (grown as needed) and returns its
// first byte and body.
func readPacket(r *bufio.Reader, buf []byte) (first byte, body []byte, err error) {
	first, err = r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mul := 0, 1
	for i := 0; ; i++ {
		if i == 4 {
			return 0, nil, errMalformed
		}
		d, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(d&0x7f) * mul
		mul *= 128
		if d&0x80 == 0 {
			break
		}
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	body = buf[:n]
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return first, body, nil
}

// publishTopic returns the topic of a PUBLISH body (first is the fixed
// header's first byte). A topic sent as an alias only is empty; the bench
// never allows aliases (it sends no Topic Alias Maximum).
func publishTopic(body []byte) ([]byte, error) {
	if len(body) < 2 {
		return nil, errMalformed
	}
	n := int(binary.BigEndian.Uint16(body))
	if len(body) < 2+n {
		return nil, errMalformed
	}
	return body[2 : 2+n], nil
}

// ackReason returns the reason code of a CONNACK, PUBACK or SUBACK (first
// topic) body: CONNACK's second byte; PUBACK's third (0 when absent, as
// MQTT 5 allows); SUBACK's first after the properties.
func ackReason(typ byte, body []byte) (byte, error) {
	switch typ {
	case pktConnack:
		if len(body) < 2 {
			return 0, errMalformed
		}
		return body[1], nil
	case pktPuback:
		if len(body) < 3 {
			return 0, nil
		}
		return body[2], nil
	case pktSuback:
		if len(body) < 3 {
			return 0, errMalformed
		}
		plen, k := readVarint(body[2:])
		if k == 0 || len(body) < 2+k+plen+1 {
			return 0, errMalformed
		}
		return body[2+k+plen], nil
	}
	return 0, fmt.Errorf("packet type %d has no reason code here", typ)
}

// readVarint decodes a Variable Byte Integer at the start of b and
// returns it and its length (0: malformed).
func readVarint(b []byte) (int, int) {
	n, mul := 0, 1
	for i := 0; i < 4 && i < len(b); i++ {
		n += int(b[i]&0x7f) * mul
		mul *= 128
		if b[i]&0x80 == 0 {
			return n, i + 1
		}
	}
	return 0, 0
}

// rawConn is one bare MQTT connection.
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

// rawConnect dials the broker, sends CONNECT and waits for the CONNACK
// (within the connect timeout). readBuf sizes the read buffer: the idle
// clients keep it small, as they read nothing after the CONNACK.
func (b *bench) rawConnect(ctx context.Context, o connOpts, keepAlive uint16, readBuf int) (*rawConn, attempt) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, b.opts.connectTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", b.opts.addr)
	if err != nil {
		return nil, attempt{latency: time.Since(start), err: err}
	}
	fail := func(err error) (*rawConn, attempt) {
		_ = nc.Close()
		return nil, attempt{latency: time.Since(start), err: err}
	}
	deadline, _ := ctx.Deadline()
	_ = nc.SetDeadline(deadline)
	if _, err := nc.Write(connectPacket(o.clientID, o.username, o.password, keepAlive)); err != nil {
		return fail(err)
	}
	c := &rawConn{Conn: nc, r: bufio.NewReaderSize(nc, readBuf)}
	first, body, err := readPacket(c.r, nil)
	if err != nil {
		return fail(fmt.Errorf("waiting for CONNACK: %w", err))
	}
	if first>>4 != pktConnack {
		return fail(fmt.Errorf("got packet type %d, want CONNACK", first>>4))
	}
	code, err := ackReason(pktConnack, body)
	if err != nil {
		return fail(err)
	}
	a := attempt{latency: time.Since(start), code: code}
	if code >= 0x80 {
		_ = nc.Close()
		return nil, a
	}
	_ = nc.SetDeadline(time.Time{})
	return c, a
}

// close sends DISCONNECT (best effort, briefly) and closes the socket.
func (c *rawConn) close() {
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write(disconnectPacket)
	_ = c.Conn.Close()
}

// isTimeout reports whether err is a deadline passing.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
