package main

import (
	"bufio"
	"bytes"
	"testing"
)

// TestRawPacketsRoundTrip reads back what the codec writes: the fixed
// header's type, flags and length (one to three length bytes), and the
// fields the scenarios decode.
func TestRawPacketsRoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte{'x'}, 20000) // a three-byte remaining length
	var stream []byte
	stream = append(stream, connectPacket("id", "user", "pw", 60)...)
	stream = appendPublish(stream, "a/b", []byte("hi"), 0, true, 0)
	stream = appendPublish(stream, "a/c", big, 1, false, 7)
	stream = append(stream, subscribePacket(3, "a/#", 0)...)
	stream = append(stream, pingreqPacket...)
	r := bufio.NewReader(bytes.NewReader(stream))

	first, body, err := readPacket(r, nil)
	if err != nil || first != pktConnect<<4 || !bytes.HasPrefix(body, []byte("\x00\x04MQTT\x05\xc2\x00\x3c\x00\x00\x02id\x00\x04user\x00\x02pw")) {
		t.Fatalf("CONNECT: %x %q %v", first, body, err)
	}
	first, body, err = readPacket(r, nil)
	if topic, _ := publishTopic(body); err != nil || first != pktPublish<<4|1 || string(topic) != "a/b" || !bytes.HasSuffix(body, []byte("\x00hi")) {
		t.Fatalf("retained PUBLISH: %x %q %v", first, body, err)
	}
	first, body, err = readPacket(r, nil)
	if topic, _ := publishTopic(body); err != nil || first != pktPublish<<4|2 || string(topic) != "a/c" ||
		!bytes.Equal(body[5:7], []byte{0, 7}) || len(body) != 5+2+1+len(big) {
		t.Fatalf("QoS 1 PUBLISH: %x, %d bytes, %v", first, len(body), err)
	}
	first, body, err = readPacket(r, nil)
	if err != nil || first != pktSubscribe<<4|2 || !bytes.Equal(body, []byte("\x00\x03\x00\x00\x03a/#\x00")) {
		t.Fatalf("SUBSCRIBE: %x %q %v", first, body, err)
	}
	if first, body, err = readPacket(r, nil); err != nil || first != pktPingreq<<4 || len(body) != 0 {
		t.Fatalf("PINGREQ: %x %q %v", first, body, err)
	}
	if _, _, err := readPacket(bufio.NewReader(bytes.NewReader([]byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x01})), nil); err != errMalformed {
		t.Errorf("a five-byte length: %v, want errMalformed", err)
	}
}

func TestAckReasons(t *testing.T) {
	for _, c := range []struct {
		typ  byte
		body string
		want byte
	}{
		{pktConnack, "\x00\x00\x03\x21\x00\x14", 0},
		{pktConnack, "\x00\x86", 0x86},
		{pktPuback, "\x00\x01", 0}, // MQTT 5 may leave the reason out
		{pktPuback, "\x00\x01\x87\x00", 0x87},
		{pktSuback, "\x00\x01\x00\x00", 0},
		{pktSuback, "\x00\x01\x03\x1f\x00\x00\x87", 0x87}, // after a reason string property
	} {
		got, err := ackReason(c.typ, []byte(c.body))
		if err != nil || got != c.want {
			t.Errorf("ackReason(%d, %q) = 0x%02x, %v; want 0x%02x", c.typ, c.body, got, err, c.want)
		}
	}
	if _, err := ackReason(pktSuback, []byte("\x00\x01\x05")); err == nil {
		t.Error("a SUBACK shorter than its properties was accepted")
	}
}

func TestRetainedTopics(t *testing.T) {
	var buf []byte
	for n, want := range map[int]string{0: "p/0/0", 99: "p/0/99", 100: "p/1/0", 99999: "p/999/99"} {
		if buf = retainedTopic(buf, "p/", n); string(buf) != want {
			t.Errorf("retainedTopic(%d) = %q, want %q", n, buf, want)
		}
	}
}
