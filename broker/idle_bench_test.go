package broker

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/internal/mqtttest"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// Flags of BenchmarkIdleClients (go test -bench IdleClients -benchtime 1x
// ./broker -idle.clients 10000 -idle.heapprofile heap.pprof).
var (
	idleClients     = flag.Int("idle.clients", 2000, "BenchmarkIdleClients: idle clients to connect")
	idleHeapProfile = flag.String("idle.heapprofile", "", "BenchmarkIdleClients: write a heap profile here while the clients are connected (with -test.memprofilerate=1 for every allocation)")
)

// Environment of the client process BenchmarkIdleClients starts (the test
// binary again, running idleClientsProcess from TestMain).
const (
	idleEnvAddr    = "WARDEN_IDLE_ADDR"
	idleEnvN       = "WARDEN_IDLE_N"
	idleEnvVersion = "WARDEN_IDLE_VERSION"
	idleUser       = "idle"
	idlePassword   = "idle-secret-123"
)

// idleMetrics are the runtime/metrics BenchmarkIdleClients compares before
// and after the clients connect.
var idleMetrics = []string{
	"/memory/classes/heap/objects:bytes", // live heap (read after a GC)
	"/memory/classes/heap/stacks:bytes",  // goroutine stacks
	"/memory/classes/os-stacks:bytes",    // stacks of threads (cgo, some OSes)
	"/sched/goroutines:goroutines",
}

// BenchmarkIdleClients measures what an idle connected client costs the
// broker: it starts the broker as New builds it (TCP listener, warden's
// auth hook on a bbolt store, the keepalive hook), connects
// -idle.clients clients that send CONNECT (user and password; keepalive
// 60 s) and nothing more, and reports per client the growth of the live
// heap, of goroutine stacks and of goroutines, between before the clients
// dialled and once they all have their CONNACK and the broker is quiet,
// each read right after a forced GC.
//
// The clients run in a child process (this test binary again, running
// idleClientsProcess), so their sockets, buffers and goroutines are not
// counted: every byte measured is the broker's, the process's own
// socket-side state included. Kernel socket buffers are not in the Go
// runtime's figures; vmrss-B/client (VmRSS growth) is the resident
// memory, heap kept for the next GC cycle included, which is noisier.
//
// The argon2id verification runs once (the hook's verifier caches the
// success), as for a fleet reconnecting with warm caches.
//
// One iteration connects every client: run it with -benchtime 1x.
func BenchmarkIdleClients(b *testing.B) {
	for _, v := range []struct {
		name    string
		version byte
	}{{"mqtt3", 4}, {"mqtt5", 5}} {
		b.Run(v.name, func(b *testing.B) {
			for b.Loop() {
				benchIdleClients(b, *idleClients, v.version)
			}
		})
	}
}

func benchIdleClients(b *testing.B, n int, version byte) {
	addr, srv, stop := startIdleBroker(b)
	defer stop()

	before := readIdleMetrics()
	rssBefore := vmRSS(b)

	cmd := exec.Command(os.Args[0]) // TestMain: the client process

	cmd.Env = append(os.Environ(), idleEnvAddr+"="+addr, idleEnvN+"="+strconv.Itoa(n), idleEnvVersion+"="+strconv.Itoa(int(version)))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = stdin.Close() // the helper exits when its stdin closes
		_ = cmd.Wait()
	}()
	if err := awaitLine(stdout, "ready", 5*time.Minute); err != nil {
		b.Fatalf("client process: %v", err)
	}
	// Every CONNACK is out; wait until every client is counted and its
	// goroutines have settled in their reads.
	waitQuiet(b, srv, int64(n))

	after := readIdleMetrics()
	rssAfter := vmRSS(b)
	if *idleHeapProfile != "" {
		writeHeapProfile(b, *idleHeapProfile)
	}

	per := func(i int) float64 { return float64(after[i]-before[i]) / float64(n) }
	heap, stacks, osStacks, gs := per(0), per(1), per(2), per(3)
	b.ReportMetric(heap+stacks+osStacks, "B/client")
	b.ReportMetric(heap, "heap-B/client")
	b.ReportMetric(stacks+osStacks, "stack-B/client")
	b.ReportMetric(gs, "goroutines/client")
	b.ReportMetric(float64(rssAfter-rssBefore)/float64(n), "vmrss-B/client")
	b.ReportMetric(0, "ns/op") // one op is the whole run: its time means nothing
}

// startIdleBroker starts a broker as cmd/warden does (TCP listener,
// warden's auth hook on a fresh bbolt store, default limits) with one user
// the helper connects as.
func startIdleBroker(b *testing.B) (addr string, srv *mqtt.Server, stop func()) {
	b.Helper()
	ctx := context.Background()
	st := storetest.OpenBolt(b)
	r, err := st.CreateRole(ctx, store.Role{Name: "idle-role", Permissions: []acl.Permission{
		{Resource: "idle/{clientId}/#", Operation: acl.OpRead, Context: acl.ContextMQTT},
	}})
	if err != nil {
		b.Fatal(err)
	}
	hash, err := credential.Hash(idlePassword, credential.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.CreateUser(ctx, store.User{
		Username: idleUser, Roles: []string{r.ID}, PasswordHash: hash,
		GrantTypes: []store.GrantType{{Method: store.GrantPassword}},
	}); err != nil {
		b.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	h, err := authhook.New(ctx, authhook.Options{Store: st, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	br, err := New(Config{TCPAddr: "127.0.0.1:0", Logger: quiet}, h)
	if err != nil {
		b.Fatal(err)
	}
	h.Attach(br.Server())
	if err := br.Start(); err != nil {
		b.Fatal(err)
	}
	return br.Addr(ListenerTCP), br.Server(), func() { _ = br.Close() }
}

// readIdleMetrics forces two collections and reads idleMetrics.
// runtime.GC finishes sweeping, so the heap figure is what is live; and
// each collection halves an idle goroutine's stack at most once (when it
// uses under a quarter of it), as the periodic collections of a running
// broker do: two take a connection's goroutine from the 16 KiB it may have
// grown to while handling CONNECT down to what it needs while it waits.
func readIdleMetrics() []uint64 {
	for range 2 {
		runtime.GC()
	}
	s := make([]metrics.Sample, len(idleMetrics))
	for i, name := range idleMetrics {
		s[i].Name = name
	}
	metrics.Read(s)
	out := make([]uint64, len(s))
	for i := range s {
		out[i] = s[i].Value.Uint64()
	}
	return out
}

// waitQuiet waits until the server counts n clients connected and the
// goroutine count stops changing (every connection's goroutines parked in
// their reads).
func waitQuiet(b testing.TB, srv *mqtt.Server, n int64) {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	last, stable := -1, 0
	for stable < 5 {
		if time.Now().After(deadline) {
			b.Fatalf("broker not quiet: %d clients connected of %d, %d goroutines", atomic.LoadInt64(&srv.Info.ClientsConnected), n, runtime.NumGoroutine())
		}
		time.Sleep(20 * time.Millisecond)
		g := runtime.NumGoroutine()
		if atomic.LoadInt64(&srv.Info.ClientsConnected) == n && g == last {
			stable++
		} else {
			stable = 0
		}
		last = g
	}
}

// vmRSS is the process's resident memory in bytes (0 where /proc is
// missing).
func vmRSS(b *testing.B) int64 {
	b.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				b.Fatalf("VmRSS %q: %v", rest, err)
			}
			return kb * 1024
		}
	}
	return 0
}

func writeHeapProfile(b *testing.B, path string) {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}

// awaitLine reads r until a line equal to want, an error or the timeout.
func awaitLine(r io.Reader, want string, timeout time.Duration) error {
	found := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if sc.Text() == want {
				found <- nil
				_, _ = io.Copy(io.Discard, r)
				return
			}
		}
		found <- fmt.Errorf("ended before %q: %v", want, sc.Err())
	}()
	select {
	case err := <-found:
		return err
	case <-time.After(timeout):
		return fmt.Errorf("no %q within %v", want, timeout)
	}
}

// TestMain runs this test binary as BenchmarkIdleClients' client process
// when the benchmark started it so (WARDEN_IDLE_ADDR set), and as the
// package's tests otherwise.
func TestMain(m *testing.M) {
	if os.Getenv(idleEnvAddr) != "" {
		if err := idleClientsProcess(); err != nil {
			fmt.Fprintln(os.Stderr, "idle clients:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// idleClientsProcess is BenchmarkIdleClients' client process. It connects
// WARDEN_IDLE_N clients to WARDEN_IDLE_ADDR (64 at a time), each sending
// one CONNECT and reading its CONNACK, prints "ready", and holds the
// connections, sending nothing, until its standard input closes.
func idleClientsProcess() error {
	addr := os.Getenv(idleEnvAddr)
	n, err := strconv.Atoi(os.Getenv(idleEnvN))
	if err != nil {
		return err
	}
	version, err := strconv.Atoi(os.Getenv(idleEnvVersion))
	if err != nil {
		return err
	}
	conns := make([]net.Conn, n)
	var (
		wg       sync.WaitGroup
		next     atomic.Int64
		failures atomic.Int64
		firstErr atomic.Value
	)
	for range 64 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c, err := idleConnect(addr, byte(version), fmt.Sprintf("idle-%d", i), mqtttest.Connect{Username: idleUser, Password: idlePassword})
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	if f := failures.Load(); f > 0 {
		return fmt.Errorf("%d of %d clients failed to connect; first: %v", f, n, firstErr.Load())
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		_ = c.Close()
	}
	return nil
}

// idleConnect dials addr, sends CONNECT (with the credentials of creds,
// keepalive 60 s) and returns the connection once a CONNACK accepts it.
func idleConnect(addr string, version byte, id string, creds mqtttest.Connect) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	connect := mqtttest.Connect{Version: version, ClientID: id, Username: creds.Username, Password: creds.Password, Keepalive: 60}
	if _, err := c.Write(connect.Bytes()); err != nil {
		_ = c.Close()
		return nil, err
	}
	first, body, err := mqtttest.ReadPacket(c)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	if first != 0x20 || len(body) < 2 || body[1] != 0 {
		_ = c.Close()
		return nil, fmt.Errorf("%s: CONNACK % x, want success", id, append([]byte{first}, body...))
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}
