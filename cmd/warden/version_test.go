package main

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// TestHelpAndVersionAnswerOnStdout runs the binary as a newcomer does
// (issue 15, item 9): help and version go to stdout with exit 0, so
// `warden --help | less` works; `warden help` is the same help and lists
// the commands; mistakes still go to stderr with exit 2.
func TestHelpAndVersionAnswerOnStdout(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildWarden(t)
	env := []string{"WARDEN_DATA_DIR=" + t.TempDir()}
	version := regexp.MustCompile(`^warden \S+ (\(commit [0-9a-f]{7}(, modified)?(, \S+)?\) )?go1\.\S+ \w+/\w+\n$`)

	for _, args := range [][]string{{"--help"}, {"-h"}, {"-help"}, {"help"}, {"--log-level", "debug", "--help"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, stdout, stderr := bCommand(t, bin, env, "", args...)
			if code != exitOK || stderr != "" {
				t.Errorf("exit %d, stderr %.200q; want 0 and nothing on stderr", code, stderr)
			}
			if stdout != usage() {
				t.Errorf("stdout is not the usage:\n%.300s", stdout)
			}
			for _, line := range []string{
				"\n  backup       ", "\n  restore      ", "\n  user add     ", "\n  healthcheck  ", "\n  version      ",
				"\n  --version\n", "\n  --mqtt-addr addr\n",
			} {
				if !strings.Contains(stdout, line) {
					t.Errorf("the usage lacks the line %q", line)
				}
			}
		})
	}
	for _, args := range [][]string{{"--version"}, {"-version"}, {"version"}, {"--mfa=false", "--version"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, stdout, stderr := bCommand(t, bin, env, "", args...)
			if code != exitOK || stderr != "" {
				t.Errorf("exit %d, stderr %.200q; want 0 and nothing on stderr", code, stderr)
			}
			if !version.MatchString(stdout) {
				t.Errorf("stdout %q is not a version line (%s)", stdout, version)
			}
		})
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"backup", "--help"}, "Usage: warden backup"},
		{[]string{"user", "--help"}, "Usage: warden user add"},
		{[]string{"user", "add", "-h"}, "Usage: warden user add"},
		{[]string{"healthcheck", "--help"}, "warden healthcheck [URL]"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			code, stdout, stderr := bCommand(t, bin, env, "", c.args...)
			if code != exitOK || stderr != "" || !strings.HasPrefix(stdout, "Usage:") || !strings.Contains(stdout, c.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want 0 and %q on stdout alone", code, stdout, stderr, c.want)
			}
		})
	}
	for _, args := range [][]string{{"--bogus"}, {"version", "now"}, {"healthcheck", "--bogus"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, stdout, stderr := bCommand(t, bin, env, "", args...)
			if code != exitConfig || stdout != "" || stderr == "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want 2 and the error on stderr alone", code, stdout, stderr)
			}
		})
	}
}

// TestVersionIsStampedByTheBuild builds as the Makefile does, with
// -X main.version, and checks --version prints it.
func TestVersionIsStampedByTheBuild(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "warden")
	if out, err := exec.Command("go", "build", "-ldflags", "-X main.version=v9.8.7-test", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatalf("warden --version: %v", err)
	}
	if want := "warden v9.8.7-test "; !strings.HasPrefix(string(out), want) || !strings.HasSuffix(string(out), " "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH+"\n") {
		t.Errorf("warden --version printed %q, want %q, the Go version and the platform", out, want)
	}
}

func TestFormatVersion(t *testing.T) {
	t.Parallel()
	stamped := func(mainVersion string, settings ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{Main: debug.Module{Version: mainVersion}}
		for i := 0; i < len(settings); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return bi
	}
	git := []string{"vcs", "git", "vcs.revision", "899b137a0c2e4d1f9e8b7a6c5d4e3f2a1b0c9d8e", "vcs.time", "2026-12-06T04:20:00Z"}
	for _, c := range []struct {
		name, version string
		bi            *debug.BuildInfo
		want          string
	}{
		{"a release built from git", "v0.3.0", stamped("(devel)", append(git, "vcs.modified", "false")...),
			"warden v0.3.0 (commit 899b137, 2026-12-06T04:20:00Z) go1.26.8 linux/amd64"},
		{"a build with uncommitted changes", "v0.3.0-2-g899b137-dirty", stamped("(devel)", append(git, "vcs.modified", "true")...),
			"warden v0.3.0-2-g899b137-dirty (commit 899b137, modified, 2026-12-06T04:20:00Z) go1.26.8 linux/amd64"},
		{"go install of a tag", "", stamped("v0.3.0"), "warden v0.3.0 go1.26.8 linux/amd64"},
		{"a plain go build in a checkout", "", stamped("v0.0.0-20261206042000-899b137a0c2e+dirty", append(git, "vcs.modified", "true")...),
			"warden v0.0.0-20261206042000-899b137a0c2e+dirty (commit 899b137, modified, 2026-12-06T04:20:00Z) go1.26.8 linux/amd64"},
		{"a build without git or version", "", stamped("(devel)"), "warden dev go1.26.8 linux/amd64"},
		{"no build info", "", nil, "warden dev go1.26.8 linux/amd64"},
	} {
		if got := formatVersion(c.version, c.bi, "go1.26.8", "linux/amd64"); got != c.want {
			t.Errorf("%s: got  %q\nwant %q", c.name, got, c.want)
		}
	}
}
