package storetest

import (
	"net"
	"os/exec"
	"strconv"
	"testing"
)

// RestartEmpty kills the server and starts a new one on the same address
// with nothing in it: a Redis restarted without persistence, as the
// stores using it see it (their connections break, and reconnect to an
// empty server). The new server is killed when the test ends.
func (r *Redis) RestartEmpty(t testing.TB) *Redis {
	t.Helper()
	r.Stop()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found: %v", err)
	}
	_, p, err := net.SplitHostPort(r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(p)
	n, err := startRedisAt(bin, t.TempDir(), port)
	if err != nil {
		t.Fatalf("restart redis-server on %s: %v", r.Addr, err)
	}
	t.Cleanup(n.Stop)
	return n
}
