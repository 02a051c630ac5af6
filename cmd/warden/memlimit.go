package main

import (
	"bufio"
	"bytes"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
)

// memoryLimit is the Go soft memory limit warden runs with and where it
// came from, for the log.
type memoryLimit struct {
	bytes  int64  // math.MaxInt64: none
	source string // "GOMEMLIMIT", "cgroup", "none"
	cgroup int64  // the cgroup's memory limit when one was found, else 0
}

// cgroupLimitShare is the part of a cgroup's memory limit given to the Go
// runtime as its soft limit: the rest is for what the runtime does not
// count (cgo-free as warden is, mostly the kernel's page cache of the
// bbolt file and socket buffers charged to the cgroup).
const cgroupLimitShare = 0.9

// chooseMemoryLimit decides the soft memory limit (debug.SetMemoryLimit)
// from the environment and the cgroup files under cgroupFS (the root of
// /). An explicit GOMEMLIMIT always wins, kept as the runtime parsed it.
// Otherwise, in a cgroup with a memory limit (a container, a systemd
// unit with MemoryMax=), the limit is 90% of it, so the garbage collector
// works harder before the kernel's OOM killer ends the process: a
// reconnect storm of password CONNECTs fills the heap with argon2id's
// 19 MiB working sets up to twice the live heap before each collection
// (BenchmarkVerifyStormHeap in credential: 768 MiB live, 1,457 MiB
// peak). Without either there is no limit: a limit below the live heap
// (thousands of connected clients) makes the collector run without end
// (same benchmark: 256 MiB live under a 128 MiB limit ran its storm 6.5
// times slower, 14 s of GC CPU for 120 verifications), and a limit
// derived from anything but the machine's share for warden would be a
// guess.
func chooseMemoryLimit(getenv func(string) string, cgroupFS fs.FS) memoryLimit {
	if getenv("GOMEMLIMIT") != "" {
		return memoryLimit{bytes: debug.SetMemoryLimit(-1), source: "GOMEMLIMIT"}
	}
	if c := cgroupMemoryLimit(cgroupFS); c > 0 {
		return memoryLimit{bytes: int64(float64(c) * cgroupLimitShare), source: "cgroup", cgroup: c}
	}
	return memoryLimit{bytes: math.MaxInt64, source: "none"}
}

// applyMemoryLimit sets the limit chosen by chooseMemoryLimit (an
// explicit GOMEMLIMIT is left as the runtime set it) and logs it.
// workingSet is what the password verifications may hold at once
// (credential.Verifier.WorkingSet): a limit that leaves little beside it
// is worth a warning, since a storm would then run the collector
// without end.
func applyMemoryLimit(m memoryLimit, workingSet int64, log *slog.Logger) {
	if m.source == "cgroup" {
		debug.SetMemoryLimit(m.bytes)
	}
	attrs := []any{"source", m.source, "argon2id_working_set_mib", workingSet >> 20}
	switch m.source {
	case "GOMEMLIMIT":
		attrs = append(attrs, "limit_mib", m.bytes>>20, "kept", true)
	case "cgroup":
		attrs = append(attrs, "limit_mib", m.bytes>>20, "cgroup_limit_mib", m.cgroup>>20)
	default:
		attrs = append(attrs, "limit_mib", "none", "hint", "set GOMEMLIMIT to bound the heap (a reconnect storm grows it to twice the live heap)")
	}
	log.Info("memory limit", attrs...)
	// The heap needs room for the verifications' working sets twice
	// (one in use, one collected) beside a base for everything else.
	const base = 64 << 20
	if m.bytes != math.MaxInt64 && m.bytes < 2*workingSet+base {
		log.Warn("memory limit leaves little room for password verifications: lower --auth-verify-workers or raise the limit",
			"limit_mib", m.bytes>>20, "argon2id_working_set_mib", workingSet>>20, "want_at_least_mib", (2*workingSet+base)>>20)
	}
}

// osRoot is the file system cgroupMemoryLimit reads in production.
func osRoot() fs.FS { return os.DirFS("/") }

// unlimitedCgroup: cgroup v1 reports "no limit" as a page-rounded
// MaxInt64; anything this large is no limit.
const unlimitedCgroup = 1 << 60

// cgroupMemoryLimit returns the memory limit of the cgroup this process
// is in, in bytes, or 0 for none: cgroup v2's memory.max, else v1's
// memory.limit_in_bytes. It reads the process's cgroup path from
// /proc/self/cgroup and takes the lowest limit on the way from there up
// to the mount's root, so a limit set on a parent (a systemd slice) or on
// the container's own cgroup (mounted as the root inside a container,
// where the path from /proc may not exist) counts. root is / (os.DirFS
// in run, a fstest.MapFS in tests).
func cgroupMemoryLimit(root fs.FS) int64 {
	paths := map[string]string{} // controller ("" for v2) -> cgroup path
	if b, err := fs.ReadFile(root, "proc/self/cgroup"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			// hierarchy-ID:controller-list:cgroup-path
			parts := strings.SplitN(sc.Text(), ":", 3)
			if len(parts) != 3 {
				continue
			}
			if parts[0] == "0" && parts[1] == "" {
				paths[""] = parts[2]
			}
			for _, c := range strings.Split(parts[1], ",") {
				if c == "memory" {
					paths["memory"] = parts[2]
				}
			}
		}
	}
	if l := lowestLimit(root, "sys/fs/cgroup", paths[""], "memory.max"); l > 0 {
		return l
	}
	return lowestLimit(root, "sys/fs/cgroup/memory", paths["memory"], "memory.limit_in_bytes")
}

// lowestLimit reads file in mount/cgroupPath and in each directory above
// it up to mount, and returns the lowest limit found (0: none).
func lowestLimit(root fs.FS, mount, cgroupPath, file string) int64 {
	var lowest int64
	dir := path.Join(mount, path.Clean("/"+cgroupPath))
	for {
		if b, err := fs.ReadFile(root, path.Join(dir, file)); err == nil {
			s := strings.TrimSpace(string(b))
			if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 && n < unlimitedCgroup && (lowest == 0 || n < lowest) {
				lowest = n
			} // "max" (v2) and unparsable values: no limit here
		}
		if dir == mount {
			return lowest
		}
		dir = path.Dir(dir)
	}
}
