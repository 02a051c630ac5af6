package main

import (
	"io"
	"log/slog"
	"math"
	"net/http"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// TestCgroupMemoryLimit: the limit is found in cgroup v2's memory.max or
// v1's memory.limit_in_bytes, at the process's own cgroup or above it
// (the lowest wins), and "max", v1's huge "unlimited" and a missing
// hierarchy are no limit.
func TestCgroupMemoryLimit(t *testing.T) {
	t.Parallel()
	const v1Unlimited = "9223372036854771712\n"
	tests := []struct {
		name  string
		files fstest.MapFS
		want  int64
	}{
		{"no cgroup files at all", fstest.MapFS{}, 0},
		{"v2 in a container (cgroup namespace: the root is the container's)", fstest.MapFS{
			"proc/self/cgroup":         {Data: []byte("0::/\n")},
			"sys/fs/cgroup/memory.max": {Data: []byte("536870912\n")},
		}, 512 << 20},
		{"v2 without a limit", fstest.MapFS{
			"proc/self/cgroup":         {Data: []byte("0::/\n")},
			"sys/fs/cgroup/memory.max": {Data: []byte("max\n")},
		}, 0},
		{"v2 systemd unit: its own MemoryMax under an unlimited slice", fstest.MapFS{
			"proc/self/cgroup": {Data: []byte("0::/system.slice/warden.service\n")},
			"sys/fs/cgroup/system.slice/warden.service/memory.max": {Data: []byte("1073741824\n")},
			"sys/fs/cgroup/system.slice/memory.max":                {Data: []byte("max\n")},
		}, 1 << 30},
		{"v2: a parent's lower limit wins", fstest.MapFS{
			"proc/self/cgroup": {Data: []byte("0::/system.slice/warden.service\n")},
			"sys/fs/cgroup/system.slice/warden.service/memory.max": {Data: []byte("1073741824\n")},
			"sys/fs/cgroup/system.slice/memory.max":                {Data: []byte("268435456\n")},
		}, 256 << 20},
		{"v1 in a container: the path from /proc is not mounted, the root file counts", fstest.MapFS{
			"proc/self/cgroup":                           {Data: []byte("12:pids:/docker/abc\n4:memory:/docker/abc\n0::/\n")},
			"sys/fs/cgroup/memory/memory.limit_in_bytes": {Data: []byte("268435456\n")},
		}, 256 << 20},
		{"v1 on a host: the process's own cgroup", fstest.MapFS{
			"proc/self/cgroup": {Data: []byte("4:memory:/process_api/x\n0::/\n")},
			"sys/fs/cgroup/memory/process_api/x/memory.limit_in_bytes": {Data: []byte("805306368\n")},
			"sys/fs/cgroup/memory/memory.limit_in_bytes":               {Data: []byte(v1Unlimited)},
		}, 768 << 20},
		{"v1 unlimited (this machine's case)", fstest.MapFS{
			"proc/self/cgroup": {Data: []byte("4:memory:/process_api/x\n0::/\n")},
			"sys/fs/cgroup/memory/process_api/x/memory.limit_in_bytes": {Data: []byte(v1Unlimited)},
			"sys/fs/cgroup/memory/memory.limit_in_bytes":               {Data: []byte(v1Unlimited)},
		}, 0},
		{"v1 with memory among other controllers on one line", fstest.MapFS{
			"proc/self/cgroup": {Data: []byte("3:cpuacct,memory:/a\n")},
			"sys/fs/cgroup/memory/a/memory.limit_in_bytes": {Data: []byte("134217728")},
		}, 128 << 20},
		{"garbage in the file is no limit", fstest.MapFS{
			"proc/self/cgroup":         {Data: []byte("0::/\n")},
			"sys/fs/cgroup/memory.max": {Data: []byte("lots\n")},
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := cgroupMemoryLimit(tt.files); got != tt.want {
				t.Fatalf("got %d, want %d", got, tt.want)
			}
		})
	}
}

// TestChooseMemoryLimit: an explicit GOMEMLIMIT always wins (kept as the
// runtime set it), else 90% of a cgroup limit, else none.
func TestChooseMemoryLimit(t *testing.T) {
	t.Parallel()
	limited := fstest.MapFS{
		"proc/self/cgroup":         {Data: []byte("0::/\n")},
		"sys/fs/cgroup/memory.max": {Data: []byte("1073741824\n")},
	}
	if m := chooseMemoryLimit(env(map[string]string{"GOMEMLIMIT": "123MiB"}), limited); m.source != "GOMEMLIMIT" || m.bytes != debug.SetMemoryLimit(-1) {
		t.Errorf("with GOMEMLIMIT: %+v, want it kept", m)
	}
	if m := chooseMemoryLimit(env(nil), limited); m.source != "cgroup" || m.bytes != 966367641 || m.cgroup != 1<<30 {
		t.Errorf("in a 1 GiB cgroup: %+v, want 90%% of it", m)
	}
	if m := chooseMemoryLimit(env(nil), fstest.MapFS{}); m.source != "none" || m.bytes != math.MaxInt64 {
		t.Errorf("without either: %+v, want none", m)
	}
}

// TestApplyMemoryLimitSetsTheCgroupsShare: a limit from the cgroup is
// set in the runtime and logged; one that leaves too little beside the
// verifications' working sets is warned about. Not parallel: the limit is
// the process's.
func TestApplyMemoryLimitSetsTheCgroupsShare(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	var out strings.Builder
	log := slog.New(slog.NewTextHandler(&out, nil))
	applyMemoryLimit(memoryLimit{bytes: 900 << 20, source: "cgroup", cgroup: 1000 << 20}, 19<<20, log)
	if got := debug.SetMemoryLimit(-1); got != 900<<20 {
		t.Errorf("runtime limit %d, want %d", got, 900<<20)
	}
	if !strings.Contains(out.String(), `msg="memory limit" source=cgroup argon2id_working_set_mib=19 limit_mib=900 cgroup_limit_mib=1000`) || strings.Contains(out.String(), "WARN") {
		t.Errorf("log:\n%s", out.String())
	}
	out.Reset()
	applyMemoryLimit(memoryLimit{bytes: 200 << 20, source: "cgroup", cgroup: 222 << 20}, 8*19<<20, log)
	if !strings.Contains(out.String(), "level=WARN") || !strings.Contains(out.String(), "--auth-verify-workers") {
		t.Errorf("no warning for a limit below twice the working set:\n%s", out.String())
	}
}

// TestMemoryLimitOfTheBinary: the binary keeps an explicit GOMEMLIMIT
// (the log says so and /metrics shows it), and without one logs the
// default it chose (on a machine without a cgroup memory limit: none).
func TestMemoryLimitOfTheBinary(t *testing.T) {
	t.Parallel()
	bin := buildWarden(t)
	metric := func(t *testing.T, p *process) string {
		t.Helper()
		m := regexp.MustCompile(`msg=listening listener=http addr=(\S+)`).FindStringSubmatch(p.out.String())
		if m == nil {
			t.Fatalf("no admin address in the log:\n%s", p.out)
		}
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + m[1] + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		v := regexp.MustCompile(`(?m)^go_gc_gomemlimit_bytes (\S+)$`).FindStringSubmatch(string(b))
		if v == nil {
			t.Fatalf("no go_gc_gomemlimit_bytes in /metrics")
		}
		return v[1]
	}

	t.Run("an explicit GOMEMLIMIT is kept", func(t *testing.T) {
		t.Parallel()
		p := startWardenArgs(t, bin, []string{"--data-dir", filepath.Join(t.TempDir(), "data")}, "GOMEMLIMIT=123MiB")
		p.waitFor("warden ready")
		if !strings.Contains(p.out.String(), `msg="memory limit" source=GOMEMLIMIT argon2id_working_set_mib=19 limit_mib=123 kept=true`) {
			t.Errorf("log:\n%s", p.out)
		}
		if got := metric(t, p); got != "1.28974848e+08" { // 123 MiB
			t.Errorf("go_gc_gomemlimit_bytes %s, want 123 MiB", got)
		}
	})
	t.Run("without GOMEMLIMIT the default is chosen and logged", func(t *testing.T) {
		t.Parallel()
		p := startWardenArgs(t, bin, []string{"--data-dir", filepath.Join(t.TempDir(), "data")})
		p.waitFor("warden ready")
		want := chooseMemoryLimit(func(string) string { return "" }, osRoot())
		line := regexp.MustCompile(`msg="memory limit" source=(\S+) .*limit_mib=(\S+)`).FindStringSubmatch(p.out.String())
		if line == nil || line[1] != want.source {
			t.Fatalf("want a memory limit line with source=%s:\n%s", want.source, p.out)
		}
		if want.source == "cgroup" {
			if got := metric(t, p); got == "9.223372036854776e+18" {
				t.Errorf("go_gc_gomemlimit_bytes %s: no limit set in a cgroup with one", got)
			}
		}
	})
}
