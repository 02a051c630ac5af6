package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// version is the release warden was built as, set by the build:
//
//	go build -ldflags "-X main.version=$(git describe --tags --always --dirty)" ./cmd/warden
//
// (`make build` and docker/Dockerfile do). Unset, the module version the
// go command stamped is used (a tag with `go install ...@v1.2.3`, a
// pseudo-version in a git checkout), else "dev".
var version string

// versionLine is what `warden version` and `warden --version` print, e.g.
// "warden v0.3.0 (commit 899b137, 2026-12-06T04:20:00Z) go1.26.8 linux/amd64".
// The commit, whether the tree had uncommitted changes ("modified") and
// the commit's time come from what go build stamps from git
// (vcs.revision, vcs.modified, vcs.time); they are left out when the
// build had no git (the Docker build context holds no .git).
func versionLine() string {
	bi, _ := debug.ReadBuildInfo()
	return formatVersion(version, bi, runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH)
}

// formatVersion is versionLine over its inputs; bi may be nil.
func formatVersion(v string, bi *debug.BuildInfo, goVersion, platform string) string {
	var rev, when string
	var modified bool
	if bi != nil {
		if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "dev"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "warden %s ", v)
	if rev != "" {
		fmt.Fprintf(&b, "(commit %.7s", rev)
		if modified {
			b.WriteString(", modified")
		}
		if when != "" {
			b.WriteString(", " + when)
		}
		b.WriteString(") ")
	}
	fmt.Fprintf(&b, "%s %s", goVersion, platform)
	return b.String()
}

// helpOrVersion answers `warden help`, `warden version` and the server's
// --help, -h and --version: on stdout, exit 0, before anything starts.
// done is false when args ask for none of them (a flag error included:
// run reports it).
func helpOrVersion(args []string, stdout, stderr io.Writer) (code int, done bool) {
	if len(args) > 0 {
		switch args[0] {
		case "healthcheck":
			if len(args) == 2 && isHelpArg(args[1]) {
				fmt.Fprint(stdout, "Usage:\n"+healthcheckUsage)
				return exitOK, true
			}
			return 0, false
		case "help":
			fmt.Fprint(stdout, usage())
			return exitOK, true
		case "version":
			if len(args) > 1 {
				fmt.Fprintf(stderr, "warden version: takes no arguments, got %q\nUsage: warden version\n", args[1])
				return exitConfig, true
			}
			fmt.Fprintln(stdout, versionLine())
			return exitOK, true
		}
	}
	var c Config
	switch _, _, err := parseServerFlags(args, &c); {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, usage())
		return exitOK, true
	case errors.Is(err, errVersion):
		fmt.Fprintln(stdout, versionLine())
		return exitOK, true
	}
	return 0, false
}

// isHelpArg reports whether arg asks for help as the flag package
// understands it.
func isHelpArg(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help"
}
