package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// buildWarden compiles this command into a temporary directory: the
// end-to-end tests run the real binary with real signals and files. It
// is compiled once per test run and shared: every test runs the same
// source, and linking it again cost each test seconds of CPU. TestMain
// removes it.
//
// WARDEN_TEST_BIN, when set, names a prebuilt binary to run instead: the
// attack tests (security_test.go) log the memory they measure, so running
// them against a build of an older commit gives the "before" figures.
func buildWarden(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("WARDEN_TEST_BIN"); bin != "" {
		t.Logf("running the prebuilt binary %s (WARDEN_TEST_BIN)", bin)
		return bin
	}
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "warden-test-"); built.err != nil {
			return
		}
		bin := filepath.Join(built.dir, "warden")
		if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		built.bin = bin
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

// built is the binary buildWarden compiled, with the directory it is in.
var built struct {
	once     sync.Once
	dir, bin string
	err      error
}

// TestMain runs the tests, then removes the binary buildWarden compiled.
func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// process is a running warden binary with its stderr captured.
type process struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *logBuffer
	done chan struct{}
	err  error // of cmd.Wait, valid once done is closed
}

// startWarden starts bin with the given environment on top of a clean
// one (no WARDEN_* from the caller's shell) and flags that bind only free
// loopback ports, so parallel runs and later listeners never collide.
func startWarden(t *testing.T, bin string, env ...string) *process {
	t.Helper()
	return startWardenArgs(t, bin, nil, env...)
}

// startWardenArgs is startWarden with more flags after those; a flag
// given twice takes the later value.
func startWardenArgs(t *testing.T, bin string, args []string, env ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--mqtt-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WARDEN_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	p := &process{t: t, cmd: cmd, out: &logBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start warden: %v", err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// waitFor waits until the output contains s, failing the test if the
// process exits first or it takes longer than 15 s.
func (p *process) waitFor(s string) {
	p.t.Helper()
	deadline := time.After(15 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(p.out.String(), s) {
		select {
		case <-p.done:
			if strings.Contains(p.out.String(), s) {
				return
			}
			p.t.Fatalf("warden exited (%v) before logging %q; output:\n%s", p.err, s, p.out)
		case <-deadline:
			p.t.Fatalf("warden did not log %q within 15 s; output:\n%s", s, p.out)
		case <-tick.C:
		}
	}
}

// exitCode waits for the process to end and returns its exit status.
func (p *process) exitCode() int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.t.Fatalf("warden did not exit within 15 s; output:\n%s", p.out)
	}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &ee):
		return ee.ExitCode()
	}
	p.t.Fatalf("wait: %v", p.err)
	return -1
}

func (p *process) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// generatedPasswordLines returns the passwords of the text-format log
// lines that carry a generated admin password.
func generatedPasswordLines(t *testing.T, out string) []string {
	t.Helper()
	var pws []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, "generated admin password") {
			continue
		}
		if !strings.Contains(line, "level=WARN") {
			t.Errorf("generated password not at WARN: %s", line)
		}
		// The text handler quotes a message with spaces Go-style.
		_, rest, ok := strings.Cut(line, "msg=")
		if !ok {
			t.Fatalf("no msg in %q", line)
		}
		quoted, err := strconv.QuotedPrefix(rest)
		if err != nil {
			t.Fatalf("msg not quoted in %q: %v", line, err)
		}
		msg, _ := strconv.Unquote(quoted)
		pw, ok := strings.CutPrefix(msg, generatedPasswordMsg)
		if !ok {
			t.Fatalf("unexpected message %q", msg)
		}
		pws = append(pws, pw)
	}
	return pws
}

// waitRunReady waits until run, started in-process with its log in out
// and its exit code to come on code, logs that it is ready; it fails the
// test if run returns first or is not ready within 15 s.
func waitRunReady(t *testing.T, out *logBuffer, code <-chan int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(out.String(), "warden ready") {
		if time.Now().After(deadline) {
			t.Fatalf("not ready within 15 s:\n%s", out)
		}
		select {
		case c := <-code:
			t.Fatalf("run returned %d before ready:\n%s", c, out)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// adminInFile opens the store file of a stopped warden and returns its
// admin user.
func adminInFile(t *testing.T, dataDir string) store.User {
	t.Helper()
	s := storetest.OpenBolt(t, storetest.Path(filepath.Join(dataDir, storeFile)))
	defer s.Close()
	u, err := s.UserByUsername(t.Context(), adminUsername)
	if err != nil {
		t.Fatalf("admin user: %v", err)
	}
	return u
}

func TestBinary(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildWarden(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	env := []string{"WARDEN_LOG_LEVEL=info", "WARDEN_DATA_DIR=" + dataDir}

	var first store.User
	var firstPassword string
	t.Run("first start creates the admin, logs its password once and stops cleanly on SIGINT", func(t *testing.T) {
		p := startWarden(t, bin, env...)
		p.waitFor("warden ready")
		p.signal(syscall.SIGINT)
		if code := p.exitCode(); code != 0 {
			t.Fatalf("exit code %d, want 0; output:\n%s", code, p.out)
		}
		out := p.out.String()
		if !strings.Contains(out, "store=bolt") || !strings.Contains(out, "data_dir="+dataDir) {
			t.Errorf("ready line lacks the store kind or data dir:\n%s", out)
		}
		pws := generatedPasswordLines(t, out)
		if len(pws) != 1 {
			t.Fatalf("generated password logged %d times, want once; output:\n%s", len(pws), out)
		}
		firstPassword = pws[0]
		first = adminInFile(t, dataDir)
		if !verify(t, firstPassword, first.PasswordHash) {
			t.Error("the logged password does not verify against the stored admin")
		}
	})
	if t.Failed() {
		return
	}

	t.Run("restart keeps the admin, prints no password and stops cleanly on SIGTERM", func(t *testing.T) {
		// A different configured password must not reset the admin.
		other := validPassword(t)
		p := startWarden(t, bin, append(env, "WARDEN_ADMIN_PASSWORD="+other)...)
		p.waitFor("warden ready")
		p.signal(syscall.SIGTERM)
		if code := p.exitCode(); code != 0 {
			t.Fatalf("exit code %d, want 0; output:\n%s", code, p.out)
		}
		out := p.out.String()
		if strings.Contains(out, "generated admin password") || strings.Contains(out, firstPassword) || strings.Contains(out, other) {
			t.Errorf("a password was printed on restart:\n%s", out)
		}
		if !strings.Contains(out, "admin password setting ignored") {
			t.Errorf("no notice that the configured admin password was ignored:\n%s", out)
		}
		again := adminInFile(t, dataDir)
		if again.ID != first.ID || again.PasswordHash != first.PasswordHash {
			t.Errorf("admin changed across restarts: id %s→%s, hash changed %v", first.ID, again.ID, again.PasswordHash != first.PasswordHash)
		}
	})

	t.Run("a second process on the same data dir exits 1 because the file is in use", func(t *testing.T) {
		holder := startWarden(t, bin, env...)
		holder.waitFor("warden ready")

		p := startWarden(t, bin, env...)
		if code := p.exitCode(); code != 1 {
			t.Fatalf("exit code %d, want 1; output:\n%s", code, p.out)
		}
		out := strings.TrimSpace(p.out.String())
		if !strings.Contains(out, "in use") || !strings.Contains(out, "level=ERROR") {
			t.Errorf("output lacks an error saying the file is in use:\n%s", out)
		}
		if strings.Count(out, "\n") != 0 {
			t.Errorf("want a one-line error, got:\n%s", out)
		}

		holder.signal(syscall.SIGINT)
		if code := holder.exitCode(); code != 0 {
			t.Fatalf("holder exit code %d, want 0; output:\n%s", code, holder.out)
		}
	})

	t.Run("an invalid configuration exits 2 and lists every problem", func(t *testing.T) {
		p := startWarden(t, bin, append(env, "WARDEN_LOG_LEVEL=loud", "WARDEN_TLS_KEY=k.pem")...)
		if code := p.exitCode(); code != 2 {
			t.Fatalf("exit code %d, want 2; output:\n%s", code, p.out)
		}
		for _, want := range []string{"WARDEN_LOG_LEVEL", "WARDEN_TLS_CERT"} {
			if !strings.Contains(p.out.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, p.out)
			}
		}
	})
}

func TestRunExitsOneWhenRedisIsUnreachable(t *testing.T) {
	// Port 1 on loopback refuses at once; nothing listens there.
	var out logBuffer
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	code := run(ctx, []string{"--redis-url", "redis://:hunter2pw@127.0.0.1:1/0"}, env(nil), &out)
	if code != exitFail {
		t.Fatalf("exit code %d, want %d; output:\n%s", code, exitFail, out.String())
	}
	s := out.String()
	if !strings.Contains(s, "startup failed") || !strings.Contains(s, "127.0.0.1:1") {
		t.Errorf("output does not say which Redis failed:\n%s", s)
	}
	if strings.Contains(s, "hunter2pw") {
		t.Errorf("the Redis password was logged:\n%s", s)
	}
}

func TestRunInProcessWithRedis(t *testing.T) {
	url := storetest.StartRedis(t).URL
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := &logBuffer{}
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"--redis-url", url, "--mqtt-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--data-dir", ""}, env(nil), out)
	}()
	waitRunReady(t, out, code)
	cancel()
	if c := <-code; c != exitOK {
		t.Fatalf("exit code %d, want 0:\n%s", c, out)
	}
	if !strings.Contains(out.String(), "store=redis") {
		t.Errorf("ready line lacks store=redis:\n%s", out)
	}
	if n := len(generatedPasswordLines(t, out.String())); n != 1 {
		t.Errorf("generated password logged %d times, want once", n)
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"redis://localhost:6379/0":            "redis://localhost:6379/0",
		"redis://u:secret@h:1/2":              "redis://u:xxxxx@h:1/2",
		"rediss://h:1/0?password=secret&x=1":  "rediss://h:1/0?password=xxxxx&x=1",
		"redis://h:1/0?master_name=m&addr=h2": "redis://h:1/0?addr=h2&master_name=m",
	} {
		if got := redactURL(in); got != want || bytes.Contains([]byte(got), []byte("secret")) {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// rssMiB is the resident memory of process pid (VmRSS) in MiB.
func rssMiB(t *testing.T, pid int) float64 {
	t.Helper()
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatalf("read RSS of %d: %v", pid, err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			if err != nil {
				t.Fatalf("VmRSS of %d: %q", pid, line)
			}
			return kb / 1024
		}
	}
	t.Fatalf("no VmRSS for process %d", pid)
	return 0
}

// pid is the process ID of the running binary.
func (p *process) pid() int { return p.cmd.Process.Pid }
