package broker

import (
	"errors"
	"net"
	"testing"
)

func listenLocal(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", local)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

// TestListenersBoundByTheCaller: sockets the caller bound are served as
// the configured listeners (plain, TLS, WebSocket), with their addresses,
// and closed with the broker.
func TestListenersBoundByTheCaller(t *testing.T) {
	ca := newTestCA(t)
	tcp, tls, ws := listenLocal(t), listenLocal(t), listenLocal(t)
	b := startBroker(t, Config{TCPListener: tcp, TLSListener: tls, WSListener: ws, TLS: ca.serverTLS(t)})
	for id, ln := range map[string]net.Listener{ListenerTCP: tcp, ListenerTLS: tls, ListenerWS: ws} {
		if got := b.Addr(id); got != ln.Addr().String() {
			t.Errorf("Addr(%s) = %s, want the given %s", id, got, ln.Addr())
		}
	}
	sub := connectPaho(t, dialTCP(tcp.Addr().String()), "given-tcp", 30)
	pub := connectPaho(t, dialTLS(tls.Addr().String(), ca.clientTLS()), "given-tls", 30)
	viaWS := connectPaho(t, dialWS(ws.Addr().String(), nil), "given-ws", 30)
	roundTrip(t, sub, pub, "given/tcp")
	roundTrip(t, viaWS, pub, "given/ws")

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for id, ln := range map[string]net.Listener{ListenerTCP: tcp, ListenerTLS: tls, ListenerWS: ws} {
		if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s listener after Close: Accept = %v, want net.ErrClosed", id, err)
		}
	}
}

// TestNewClosesGivenListenersOnError: New takes the sockets over, so a
// failing New leaves none of them open.
func TestNewClosesGivenListenersOnError(t *testing.T) {
	tcp, ws := listenLocal(t), listenLocal(t)
	// WSS without a TLS configuration is refused.
	if _, err := New(Config{TCPListener: tcp, WSListener: ws, WSTLS: true, Logger: testLogger(t)}, &allowHook{}); err == nil {
		t.Fatal("New accepted WSS without TLS")
	}
	for name, ln := range map[string]net.Listener{"tcp": tcp, "ws": ws} {
		if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s listener after a failed New: Accept = %v, want net.ErrClosed", name, err)
		}
	}
}
