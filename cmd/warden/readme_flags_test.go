package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var updateREADME = flag.Bool("update", false, "rewrite README.md's configuration table from the options (TestREADMEFlags)")

// The README's configuration table lies between these lines; everything
// between them is generated.
const (
	readmeFlagsBegin = "<!-- flags:begin -->\n"
	readmeFlagsEnd   = "<!-- flags:end -->\n"
	readmePath       = "../../README.md"
)

// readmeFlagsTable is the README's configuration table, generated from
// the options: every flag, its variable and its default, in the order of
// --help.
func readmeFlagsTable() string {
	var b strings.Builder
	b.WriteString("<!-- Generated from the options in cmd/warden/config.go: change them there, then run\n")
	b.WriteString("     go test ./cmd/warden -run TestREADMEFlags -update -->\n")
	b.WriteString("| flag | env | default |\n|---|---|---|\n")
	for _, o := range options {
		def := "empty"
		if o.def != "" {
			def = "`" + o.def + "`"
		}
		fmt.Fprintf(&b, "| `--%s` | `%s` | %s%s |\n", o.flag, o.env, def, o.readme)
	}
	return b.String()
}

// TestREADMEFlags fails when README.md's configuration table differs from
// the options (issue 15, item 10); -update rewrites it.
func TestREADMEFlags(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	before, rest, ok := strings.Cut(readme, readmeFlagsBegin)
	if !ok {
		t.Fatalf("README.md has no %q line", strings.TrimSpace(readmeFlagsBegin))
	}
	table, after, ok := strings.Cut(rest, readmeFlagsEnd)
	if !ok {
		t.Fatalf("README.md has no %q line after the begin marker", strings.TrimSpace(readmeFlagsEnd))
	}
	want := readmeFlagsTable()
	if table == want {
		return
	}
	if *updateREADME {
		if err := os.WriteFile(readmePath, []byte(before+readmeFlagsBegin+want+readmeFlagsEnd+after), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Log("README.md's configuration table rewritten")
		return
	}
	got, wantLines := strings.Split(table, "\n"), strings.Split(want, "\n")
	for i := range max(len(got), len(wantLines)) {
		g, w := "", ""
		if i < len(got) {
			g = got[i]
		}
		if i < len(wantLines) {
			w = wantLines[i]
		}
		if g != w {
			t.Errorf("README.md's configuration table differs from the options at its line %d:\n got: %s\nwant: %s", i+1, g, w)
			break
		}
	}
	t.Error("regenerate it: go test ./cmd/warden -run TestREADMEFlags -update")
}
