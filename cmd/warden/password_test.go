package main

import (
	"bytes"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warden-mqtt/warden/credential"
)

// shellUnsafe are characters bash treats specially: inside double quotes
// in an interactive shell ('!' history expansion, '$' and '`'
// substitution, '\' and '"'), and unquoted (the rest).
const shellUnsafe = "!$`\\\"' \t\n#&*;|<>(){}[]?~^"

// TestGeneratedPasswordsAreShellSafe: every generated password (the
// admin's first, and `warden user add`'s) can be pasted into PW="..." in
// an interactive bash, passes the password policy and keeps at least the
// entropy of the 24 characters over 66 generated before.
func TestGeneratedPasswordsAreShellSafe(t *testing.T) {
	t.Parallel()
	if bits, before := float64(generatedPasswordLength)*math.Log2(float64(len(passwordAlphabet))), 24*math.Log2(66); bits < before {
		t.Errorf("generated passwords carry %.1f bits, less than the %.1f bits before", bits, before)
	}
	for range 2000 {
		pw, err := generatePassword()
		if err != nil {
			t.Fatalf("generatePassword: %v", err)
		}
		if strings.ContainsAny(pw, shellUnsafe) {
			t.Fatalf("generated password %q holds a character a shell expands", pw)
		}
		for _, r := range pw {
			if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("-_.", r)) {
				t.Fatalf("generated password %q holds %q, outside letters, digits and -_.", pw, r)
			}
		}
		if err := credential.DefaultPolicy().Check(pw); err != nil {
			t.Fatalf("generated password fails the policy: %v", err)
		}
		if len(pw) != generatedPasswordLength {
			t.Fatalf("generated password has %d characters, want %d", len(pw), generatedPasswordLength)
		}
	}
}

// TestGeneratedPasswordsSurviveAnInteractiveBash pastes generated
// passwords into an interactive bash as the README shows (PW='...') and as
// a newcomer types it (PW="..."), and checks bash keeps them unchanged
// (issue 15: "ji!8o" failed with "event not found").
func TestGeneratedPasswordsSurviveAnInteractiveBash(t *testing.T) {
	t.Parallel()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("bash is needed for this test")
	}
	var pws []string
	var script strings.Builder
	for range 50 {
		pw, err := generatePassword()
		if err != nil {
			t.Fatal(err)
		}
		pws = append(pws, pw)
		script.WriteString("PW=\"" + pw + "\"\nprintf '<%s>\\n' \"$PW\"\n")
		script.WriteString("PW='" + pw + "'\nprintf '<%s>\\n' \"$PW\"\n")
	}
	// Interactive (history expansion on), without rc files, history in
	// the test's directory, not the user's.
	home := t.TempDir()
	cmd := exec.Command(bash, "--norc", "--noprofile", "-i")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "HISTFILE=" + filepath.Join(home, "history"), "TERM=dumb"}
	cmd.Stdin = strings.NewReader(script.String())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("bash: %v\n%s", err, stderr.String())
	}
	got := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(got) != 2*len(pws) {
		t.Fatalf("bash printed %d lines, want %d:\n%s\nstderr:\n%s", len(got), 2*len(pws), stdout.String(), stderr.String())
	}
	defer func() {
		if t.Failed() {
			t.Logf("bash's stderr:\n%.2000s", stderr.String())
		}
	}()
	for i, pw := range pws {
		for _, line := range got[2*i : 2*i+2] {
			if line != "<"+pw+">" {
				t.Errorf("bash turned %q into %s", pw, line)
			}
		}
	}
}
