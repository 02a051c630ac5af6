package mqtttest

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/eclipse/paho.golang/packets"
)

func TestHeaderLengths(t *testing.T) {
	t.Parallel()
	for n, want := range map[int][]byte{
		0:         {0x10, 0},
		127:       {0x10, 0x7f},
		128:       {0x10, 0x80, 0x01},
		16383:     {0x10, 0xff, 0x7f},
		2097152:   {0x10, 0x80, 0x80, 0x80, 0x01},
		268435455: {0x10, 0xff, 0xff, 0xff, 0x7f},
	} {
		if got := Header(0x10, n); !bytes.Equal(got, want) {
			t.Errorf("Header(0x10, %d) = % x, want % x", n, got, want)
		}
	}
}

// TestConnectReadsBackWithPaho: paho's decoder (an MQTT 5 codec of its
// own) reads every MQTT 5 CONNECT the way it was meant.
func TestConnectReadsBackWithPaho(t *testing.T) {
	t.Parallel()
	for _, c := range []Connect{
		{Version: 5, ClientID: "v5", Keepalive: 60},
		{Version: 5, ClientID: "", Username: "bob", Password: "pw", Keepalive: 65535},
		{Version: 5, ClientID: "user-only", Username: "carol"},
	} {
		cp, err := packets.ReadPacket(bytes.NewReader(c.Bytes()))
		if err != nil {
			t.Fatalf("%+v: paho: %v", c, err)
		}
		got, ok := cp.Content.(*packets.Connect)
		if !ok {
			t.Fatalf("%+v: paho read %T, want a CONNECT", c, cp.Content)
		}
		if got.ProtocolName != "MQTT" || got.ProtocolVersion != c.Version || !got.CleanStart || got.WillFlag ||
			got.ClientID != c.ClientID || got.KeepAlive != c.Keepalive ||
			got.UsernameFlag != (c.Username != "") || got.Username != c.Username ||
			got.PasswordFlag != (c.Password != "") || string(got.Password) != c.Password {
			t.Errorf("%+v: paho read %+v", c, got)
		}
	}
}

// TestConnectBytesMQTT3: MQTT 3.1.1 CONNECTs byte by byte, as the
// specification lays them out.
func TestConnectBytesMQTT3(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		c    Connect
		want []byte
	}{
		{Connect{Version: 4, ClientID: "v3"},
			[]byte{0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 0, 0, 2, 'v', '3'}},
		{Connect{Version: 4, ClientID: "d", Username: "al", Password: "pw", Keepalive: 300},
			[]byte{0x10, 21, 0, 4, 'M', 'Q', 'T', 'T', 4, 0xc2, 0x01, 0x2c, 0, 1, 'd', 0, 2, 'a', 'l', 0, 2, 'p', 'w'}},
	} {
		if got := tc.c.Bytes(); !bytes.Equal(got, tc.want) {
			t.Errorf("%+v: Bytes = % x, want % x", tc.c, got, tc.want)
		}
	}
}

// TestReadPacketReadsWhatPacketFramed: every length of the variable byte
// integer's four sizes, read back from a reader without ReadByte (a bare
// connection) and from a buffered one, leaving the next packet unread.
func TestReadPacketReadsWhatPacketFramed(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 127, 128, 16383, 16384, 2097151, 2097152} {
		body := bytes.Repeat([]byte{'x'}, n)
		stream := append(Packet(0x32, body), 0xd0, 0)
		for name, r := range map[string]io.Reader{
			"bare":     iotest.OneByteReader(bytes.NewReader(stream)),
			"buffered": bytes.NewBuffer(stream),
		} {
			first, got, err := ReadPacket(r)
			if err != nil || first != 0x32 || !bytes.Equal(got, body) {
				t.Fatalf("%s, %d bytes: ReadPacket = %#x, %d bytes, %v", name, n, first, len(got), err)
			}
			if first, got, err := ReadPacket(r); err != nil || first != 0xd0 || len(got) != 0 {
				t.Errorf("%s, %d bytes: next packet = %#x % x %v, want PINGRESP", name, n, first, got, err)
			}
		}
	}
}

// TestReadPacketErrors: a connection that ends says so, and a length of
// five bytes is refused rather than read.
func TestReadPacketErrors(t *testing.T) {
	t.Parallel()
	if _, _, err := ReadPacket(bytes.NewReader(nil)); !errors.Is(err, io.EOF) {
		t.Errorf("empty stream: err = %v, want io.EOF", err)
	}
	if _, _, err := ReadPacket(bytes.NewReader([]byte{0x20, 2, 0})); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut body: err = %v, want io.ErrUnexpectedEOF", err)
	}
	if _, _, err := ReadPacket(bytes.NewReader([]byte{0x20, 0xff, 0xff, 0xff, 0xff, 0x01})); !errors.Is(err, errMalformed) {
		t.Errorf("five length bytes: err = %v, want errMalformed", err)
	}
}
