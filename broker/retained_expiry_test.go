package broker

import (
	"bufio"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/internal/mqtttest"
)

// retainedPublish is an MQTT 5 retained QoS 0 PUBLISH of topic, with a
// Message Expiry Interval of expiry seconds when expiry is not 0.
func retainedPublish(topic string, expiry uint32) []byte {
	body := mqtttest.String(topic)
	if expiry == 0 {
		body = append(body, 0)
	} else {
		body = append(body, 5, 0x02, byte(expiry>>24), byte(expiry>>16), byte(expiry>>8), byte(expiry))
	}
	return mqtttest.Packet(0x31, append(body, "v"...))
}

// retainedTopics subscribes a new MQTT 5 client to filter and then, in the
// same SUBSCRIBE, to "sentinel", whose retained message never expires; the
// broker sends each filter's retained messages in order, so the topics
// that come before the sentinel's are the retained messages it held for
// filter.
func retainedTopics(t *testing.T, addr, id, filter string) []string {
	t.Helper()
	c, r := rawClient(t, addr, id)
	defer c.Close()
	body := append([]byte{0, 1, 0}, mqtttest.String(filter)...)
	body = append(append(body, 0), mqtttest.String("sentinel")...)
	if _, err := c.Write(mqtttest.Packet(0x82, append(body, 0))); err != nil {
		t.Fatal(err)
	}
	return readUntilSentinel(t, c, r)
}

// readUntilSentinel returns the topics of the PUBLISH packets c receives
// before the one on "sentinel".
func readUntilSentinel(t *testing.T, c net.Conn, r *bufio.Reader) []string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var topics []string
	for {
		first, body := mqtttest.MustReadPacket(t, r)
		if first&0xf0 != 0x30 {
			continue
		}
		topic := string(body[2 : 2+(int(body[0])<<8|int(body[1]))])
		if topic == "sentinel" {
			return topics
		}
		topics = append(topics, topic)
	}
}

// TestRetainedMessageExpiryInterval (MQTT 5 [MQTT-3.3.2-5]; patch 24
// changed how the broker finds expired retained messages): a retained
// message with a Message Expiry Interval of 1 s reaches a subscriber that
// was there when it was published and one that subscribes at once, and is
// no longer sent to a subscriber that comes after it expired; a retained
// message without an interval stays (warden sets no server maximum). Real
// TCP; the wait for the expiry polls, it does not time anything.
func TestRetainedMessageExpiryInterval(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a retained message to expire (1 to 3 s)")
	}
	b := startBroker(t, Config{TCPAddr: "127.0.0.1:0"})
	addr := b.Addr("tcp")
	pub, pr := rawClient(t, addr, "retainer")
	live, lr := rawClient(t, addr, "live")
	rawSubscribe(t, live, lr, "m/#", 0)
	rawSubscribe(t, live, lr, "sentinel", 0)

	// The QoS 1 publish after them: its PUBACK says both are stored.
	burst := append(retainedPublish("m/stays", 0), retainedPublish("m/expires", 1)...)
	burst = append(burst, retainedPublish("sentinel", 0)...)
	burst = append(burst, mqtttest.Packet(0x32, append(append(mqtttest.String("end"), 0, 1, 0), "e"...))...)
	if _, err := pub.Write(burst); err != nil {
		t.Fatal(err)
	}
	if first, _ := mqtttest.MustReadPacket(t, pr); first != 0x40 {
		t.Fatalf("PUBACK expected, got %#x", first)
	}
	if got := readUntilSentinel(t, live, lr); !slices.Equal(got, []string{"m/stays", "m/expires"}) {
		t.Fatalf("the subscriber there at publication got %v, want [m/stays m/expires]", got)
	}
	if got := retainedTopics(t, addr, "early", "m/#"); !slices.Contains(got, "m/expires") {
		t.Fatalf("a subscriber right after publication got %v, want m/expires among them", got)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		got := retainedTopics(t, addr, "late", "m/#")
		if slices.Equal(got, []string{"m/stays"}) {
			break
		}
		if !slices.Equal(got, []string{"m/expires", "m/stays"}) && !slices.Equal(got, []string{"m/stays", "m/expires"}) {
			t.Fatalf("a later subscriber got %v", got)
		}
		if time.Now().After(deadline) {
			t.Fatal("the retained message with an expiry interval of 1 s is still sent after 10 s")
		}
	}
}
