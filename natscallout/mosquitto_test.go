package natscallout

import (
	"bufio"
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/acl"
)

// mosquittoArgs are the arguments that connect a mosquitto client to the
// MQTT listener addr as an MQTT 3.1.1 client of a warden user.
func mosquittoArgs(t *testing.T, addr, clientID, username string) []string {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return []string{"-h", host, "-p", port, "-V", "mqttv311", "-i", clientID, "-u", username, "-P", userPassword}
}

// program is the path of the program name from the Debian package pkg;
// the test fails without it: the issue asks for these real clients.
func program(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s (package %s) is needed: %v", name, pkg, err)
	}
	return path
}

// mosquittoAcrossCluster (a subtest of TestCluster, which shares its
// cluster): mosquitto_sub on node 3 and mosquitto_pub at QoS 1 on node 1,
// both MQTT 3.1.1 with a warden user's name and password: the permitted
// message arrives, and a publish to a topic the publisher may not write,
// sent before it, does not.
func mosquittoAcrossCluster(t *testing.T, c *cluster) {
	subBin, pubBin := program(t, "mosquitto_sub", "mosquitto-clients"), program(t, "mosquitto_pub", "mosquitto-clients")
	stdbuf := program(t, "stdbuf", "coreutils")
	c.addUser(t, "m-sub", mqtt("plant/#", acl.OpRead))
	c.addUser(t, "m-pub", mqtt("plant/temp", acl.OpWrite))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// -d prints the SUBACK ("Subscribed (mid: 1): 1"), -v each message as
	// "topic payload", -C 1 exits after the first message. Into a pipe,
	// mosquitto_sub's output is block-buffered: stdbuf -oL lets the SUBACK
	// line out when it is printed.
	args := append([]string{"-oL", subBin}, mosquittoArgs(t, c.mqtt[2], "m-sub-1", "m-sub")...)
	sub := exec.CommandContext(ctx, stdbuf, append(args, "-t", "plant/#", "-q", "1", "-d", "-v", "-C", "1", "-W", "30")...)
	out, err := sub.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	sub.Stderr = &stderr
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 64) // room for what mosquitto_sub prints once the test stops reading
	go func() {
		defer close(lines)
		for sc := bufio.NewScanner(out); sc.Scan(); {
			lines <- sc.Text()
		}
	}()
	var seen []string
	next := func(what string) string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("mosquitto_sub ended waiting for %s: %v\n%s%s", what, sub.Wait(), strings.Join(seen, "\n"), stderr.String())
			}
			seen = append(seen, l)
			return l
		case <-ctx.Done():
			t.Fatalf("no %s from mosquitto_sub:\n%s", what, strings.Join(seen, "\n"))
		}
		return ""
	}
	for l := next("SUBACK"); l != "Subscribed (mid: 1): 1"; l = next("SUBACK") {
		if strings.HasPrefix(l, "Subscribed") {
			t.Fatalf("mosquitto_sub: %q, want QoS 1 granted", l)
		}
	}

	publish := func(topic, payload string) {
		t.Helper()
		pub := exec.CommandContext(ctx, pubBin, append(mosquittoArgs(t, c.mqtt[0], "m-pub-1", "m-pub"),
			"-q", "1", "-t", topic, "-m", payload)...)
		if b, err := pub.CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_pub -t %s: %v\n%s", topic, err, b)
		}
	}
	// The denied publish is acknowledged (NATS drops it silently) before
	// the permitted one is sent: had it passed, mosquitto_sub would print
	// it first, and only it (-C 1).
	publish("plant/valve", "open")
	publish("plant/temp", "21.5")

	var messages []string
	for l, ok := <-lines; ok; l, ok = <-lines {
		seen = append(seen, l)
		if strings.HasPrefix(l, "plant/") {
			messages = append(messages, l)
		}
	}
	if err := sub.Wait(); err != nil {
		t.Fatalf("mosquitto_sub: %v\n%s%s", err, strings.Join(seen, "\n"), stderr.String())
	}
	if len(messages) != 1 || messages[0] != "plant/temp 21.5" {
		t.Fatalf("mosquitto_sub printed %q, want only \"plant/temp 21.5\"\n%s", messages, strings.Join(seen, "\n"))
	}
}
