package main

import (
	"context"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// TestInsecureNoAuthAllowsAnyoneAndSaysSo: with --insecure-no-auth an
// unknown user with any password connects, subscribes and publishes, and
// the log warns at start and beside the listener address.
func TestInsecureNoAuthAllowsAnyoneAndSaysSo(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := &logBuffer{}
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"--insecure-no-auth", "--mqtt-addr", "127.0.0.1:0", "--http-addr", "",
			"--data-dir", filepath.Join(t.TempDir(), "data")}, env(nil), out)
	}()
	waitRunReady(t, out, code)
	log := out.String()
	if n := strings.Count(log, "INSECURE: --insecure-no-auth"); n < 2 {
		t.Errorf("insecure warning logged %d times, want at start and per listener:\n%s", n, log)
	}
	m := regexp.MustCompile(`msg=listening listener=mqtt addr=(\S+)`).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("no mqtt listener in the log:\n%s", log)
	}

	conn, err := net.DialTimeout("tcp", m[1], 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	c := paho.NewClient(paho.ClientConfig{Conn: conn, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(pr paho.PublishReceived) (bool, error) { got <- string(pr.Packet.Payload); return true, nil },
	}})
	cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
	defer ccancel()
	if _, err := c.Connect(cctx, &paho.Connect{ClientID: "anyone", CleanStart: true, KeepAlive: 30,
		Username: "nobody", UsernameFlag: true, Password: []byte("wrong"), PasswordFlag: true}); err != nil {
		t.Fatalf("connect with made-up credentials: %v", err)
	}
	if _, err := c.Subscribe(cctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "#", QoS: 1}}}); err != nil {
		t.Fatalf("subscribe #: %v", err)
	}
	if _, err := c.Publish(cctx, &paho.Publish{Topic: "any/topic", QoS: 1, Payload: []byte("hello")}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	select {
	case p := <-got:
		if p != "hello" {
			t.Fatalf("received %q, want hello", p)
		}
	case <-cctx.Done():
		t.Fatal("own publish not received")
	}
	_ = c.Disconnect(&paho.Disconnect{})

	cancel()
	if c := <-code; c != exitOK {
		t.Fatalf("exit code %d, want 0:\n%s", c, out)
	}
}
