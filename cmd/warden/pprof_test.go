package main

import (
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPprofServesProfilesOnLoopback: the binary with --pprof-addr
// 127.0.0.1:0 logs "pprof listening" with the bound address, serves a heap
// profile and a one-second CPU profile there, keeps /debug/pprof/cmdline
// (which may hold a password flag) to itself, and the admin listener
// serves none of it.
func TestPprofServesProfilesOnLoopback(t *testing.T) {
	t.Parallel()
	p := startWardenArgs(t, buildWarden(t), []string{"--pprof-addr", "127.0.0.1:0",
		"--data-dir", filepath.Join(t.TempDir(), "data")})
	p.waitFor("warden ready")
	log := p.out.String()
	m := regexp.MustCompile(`msg="pprof listening" addr=(127\.0\.0\.1:\d+)`).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("no pprof address in the log:\n%s", log)
	}
	pprofURL := "http://" + m[1]
	client := &http.Client{Timeout: 15 * time.Second}
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: read: %v", url, err)
		}
		return resp.StatusCode, string(b)
	}

	if code, body := get(pprofURL + "/debug/pprof/heap?debug=1"); code != http.StatusOK || !strings.Contains(body, "heap profile:") {
		t.Errorf("heap?debug=1: %d, want 200 and a text heap profile; body starts %.200q", code, body)
	}
	code, body := get(pprofURL + "/debug/pprof/profile?seconds=1")
	// A CPU profile is gzip-compressed protobuf: 1f 8b.
	if code != http.StatusOK || !strings.HasPrefix(body, "\x1f\x8b") {
		t.Errorf("profile?seconds=1: %d, want 200 and a gzipped profile; body starts %.200q", code, body)
	}
	if code, _ := get(pprofURL + "/debug/pprof/cmdline"); code != http.StatusNotFound {
		t.Errorf("cmdline: %d, want 404 (the command line may hold a password)", code)
	}

	admin := regexp.MustCompile(`msg=listening listener=http addr=(\S+)`).FindStringSubmatch(log)
	if admin == nil {
		t.Fatalf("no admin address in the log:\n%s", log)
	}
	if code, body := get("http://" + admin[1] + "/debug/pprof/heap?debug=1"); strings.Contains(body, "heap profile:") {
		t.Errorf("the admin listener serves pprof (%d)", code)
	}

	p.signal(syscall.SIGTERM)
	if code := p.exitCode(); code != exitOK {
		t.Fatalf("exit %d after SIGTERM; output:\n%s", code, p.out)
	}
}

// TestPprofRefusesNonLoopbackAddresses: an address that is not loopback,
// the unspecified one or a host name other than localhost, stops the
// start as an invalid configuration (exit 2) naming the flag, before
// anything is bound or written.
func TestPprofRefusesNonLoopbackAddresses(t *testing.T) {
	t.Parallel()
	bin := buildWarden(t)
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "warden.example.com:0"} {
		t.Run(addr, func(t *testing.T) {
			t.Parallel()
			dataDir := filepath.Join(t.TempDir(), "data")
			p := startWarden(t, bin, "WARDEN_PPROF_ADDR="+addr, "WARDEN_DATA_DIR="+dataDir)
			if code := p.exitCode(); code != exitConfig {
				t.Fatalf("exit %d, want %d; output:\n%s", code, exitConfig, p.out)
			}
			out := p.out.String()
			for _, want := range []string{"--pprof-addr (WARDEN_PPROF_ADDR)", "loopback"} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "pprof listening") {
				t.Errorf("pprof started anyway:\n%s", out)
			}
		})
	}
}

// TestBindSocketsChecksWhatPprofBoundTo: Validate lets the name localhost
// through; bindSockets checks the address the listener really got, so a
// hosts file mapping localhost elsewhere cannot expose the profiler.
// (Validate is bypassed here to hand it a non-loopback address.)
func TestBindSocketsChecksWhatPprofBoundTo(t *testing.T) {
	t.Parallel()
	s, err := bindSockets(Config{PprofAddr: "0.0.0.0:0"})
	if err == nil {
		s.close()
		t.Fatal("bound pprof on 0.0.0.0")
	}
	if !strings.Contains(err.Error(), "--pprof-addr (WARDEN_PPROF_ADDR)") || !strings.Contains(err.Error(), "not a loopback address") {
		t.Errorf("error %q does not name the flag and the reason", err)
	}
	s, err = bindSockets(Config{PprofAddr: "localhost:0"})
	if err != nil {
		t.Fatalf("localhost: %v", err)
	}
	s.close()
}
