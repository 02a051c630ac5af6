package main

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The flag package's own values answer a bad value with "parse error", and
// its Parse formats errors with %v into its own text ("flag provided but
// not defined: -x"), so neither the reason nor the unknown name can be
// recovered without matching on that text. warden therefore uses the
// values below, whose errors say how to fix the value, and parseArgs,
// which parses as flag.FlagSet.Parse does but writes its own errors.

// durationValue is a time.Duration flag value.
type durationValue time.Duration

func (d *durationValue) String() string { return time.Duration(*d).String() }

func (d *durationValue) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return durationProblem(s)
	}
	*d = durationValue(v)
	return nil
}

// durationProblem says why s is not a duration and what to write instead.
func durationProblem(s string) error {
	t := strings.TrimSpace(s)
	if t == "" {
		return errors.New("empty duration; use a number with a unit, e.g. 10s")
	}
	if _, err := strconv.ParseFloat(t, 64); err == nil {
		return fmt.Errorf("missing unit in duration %q; use a unit, e.g. %ss", s, t)
	}
	if days, ok := strings.CutSuffix(t, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil {
			return fmt.Errorf("no unit d (days) in duration %q; use hours, e.g. %dh", s, 24*n)
		}
	}
	return fmt.Errorf("invalid duration %q; use a number with a unit (ns, us, ms, s, m, h), e.g. 10s or 1h30m", s)
}

// intValue is an int flag value; like the flag package's, it accepts
// 0x, 0o and 0b prefixes and digit underscores.
type intValue struct {
	p *int
	// unit and example complete the error: "bytes", "1048576".
	unit, example string
}

func (v intValue) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.Itoa(*v.p)
}

func (v intValue) Set(s string) error {
	n, err := strconv.ParseInt(s, 0, strconv.IntSize)
	if errors.Is(err, strconv.ErrRange) {
		return fmt.Errorf("%q is out of range", s)
	}
	if err != nil {
		what := "a whole number"
		if v.unit == "bytes" {
			what = "a whole number of bytes, without a unit"
		}
		return fmt.Errorf("%q is not %s; e.g. %s", s, what, v.example)
	}
	*v.p = int(n)
	return nil
}

// boolValue is a bool flag value: --flag alone means true.
type boolValue bool

func (b *boolValue) String() string   { return strconv.FormatBool(bool(*b)) }
func (b *boolValue) IsBoolFlag() bool { return true }

func (b *boolValue) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("%q is not true or false", s)
	}
	*b = boolValue(v)
	return nil
}

// boolVar defines a bool flag with boolValue's errors.
func boolVar(fs *flag.FlagSet, p *bool, name string, def bool, usage string) {
	*p = def
	fs.Var((*boolValue)(p), name, usage)
}

// isBoolFlag reports whether f takes no value (--flag alone).
func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// parseArgs parses args into fs with flag.FlagSet.Parse's syntax (-flag
// or --flag; a value as -flag=value or -flag value; a bool flag alone
// means true; -h and --help give flag.ErrHelp; "--" or the first
// argument that is not a flag ends the flags) and returns the arguments
// after the flags. Its errors name the flag as --name and say what to do.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	for len(args) > 0 {
		s := args[0]
		if len(s) < 2 || s[0] != '-' {
			return args, nil
		}
		if s == "--" {
			return args[1:], nil
		}
		name := strings.TrimPrefix(s[1:], "-")
		if name == "" || name[0] == '-' || name[0] == '=' {
			// Without what follows '=': it may be a password.
			bad, _, _ := strings.Cut(s, "=")
			return nil, fmt.Errorf("bad flag syntax %q: write --name or --name=value", bad)
		}
		args = args[1:]
		name, value, hasValue := strings.Cut(name, "=")
		f := fs.Lookup(name)
		if f == nil {
			if name == "help" || name == "h" {
				return nil, flag.ErrHelp
			}
			return nil, unknownFlag(fs, name)
		}
		switch {
		case isBoolFlag(f) && !hasValue:
			// "--mfa false" would turn --mfa on and leave "false" as an
			// argument; say how to write it instead.
			if len(args) > 0 && (strings.EqualFold(args[0], "true") || strings.EqualFold(args[0], "false")) {
				return nil, fmt.Errorf("--%s takes its value after '=': write --%s=%s (--%s alone means true)", name, name, strings.ToLower(args[0]), name)
			}
			value = "true"
		case !hasValue:
			if len(args) == 0 {
				return nil, fmt.Errorf("--%s needs a value%s", name, valueExample(name))
			}
			value, args = args[0], args[1:]
		}
		if err := fs.Set(name, value); err != nil {
			if o, ok := optionNamed(name); ok {
				return nil, fmt.Errorf("--%s: %s", name, valueProblem(o, value, err))
			}
			return nil, fmt.Errorf("--%s: %v", name, err)
		}
	}
	return nil, nil
}

// valueExample is ", e.g. --name DEFAULT" for an option with a non-empty,
// non-secret default.
func valueExample(name string) string {
	if o, ok := optionNamed(name); ok && !o.secret && o.def != "" {
		return fmt.Sprintf(", e.g. --%s %s", name, o.def)
	}
	return ""
}

// optionNamed returns the option of flag name.
func optionNamed(name string) (option, bool) {
	for _, o := range options {
		if o.flag == name {
			return o, true
		}
	}
	return option{}, false
}

// unknownFlag is the error for --name, which fs does not define, with the
// nearest defined flag when one is close.
func unknownFlag(fs *flag.FlagSet, name string) error {
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	names = append(names, "help")
	if near := nearest(name, names); len(near) > 0 {
		return fmt.Errorf("unknown flag --%s; did you mean --%s?", name, strings.Join(near, " or --"))
	}
	return fmt.Errorf("unknown flag --%s", name)
}

// nearest returns the candidates closest to name by edit distance, when
// close enough to be a typo: at most 2 edits, and fewer than half of
// name's length. Case, '_' for '-' and a WARDEN_ prefix (an environment
// variable's name given as a flag) are forgiven first. Failing that, the
// one candidate name is a prefix of.
func nearest(name string, candidates []string) []string {
	norm := strings.ReplaceAll(strings.TrimPrefix(strings.ToLower(name), "warden_"), "_", "-")
	best, out := 0, []string(nil)
	for _, c := range candidates {
		d := editDistance(norm, c)
		switch {
		case d > 2 || 2*d >= len(norm):
		case out == nil || d < best:
			best, out = d, []string{c}
		case d == best:
			out = append(out, c)
		}
	}
	if out != nil || len(norm) < 3 {
		return out
	}
	for _, c := range candidates {
		if strings.HasPrefix(c, norm) {
			out = append(out, c)
		}
	}
	if len(out) != 1 {
		return nil
	}
	return out
}

// editDistance is the optimal string alignment distance of a and b: the
// insertions, deletions, substitutions and swaps of two neighbours that
// turn a into b (bytes: flag names are ASCII).
func editDistance(a, b string) int {
	// d[i][j] is the distance of a[:i] and b[:j].
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
