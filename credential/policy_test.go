package credential

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestPolicyCheck(t *testing.T) {
	t.Parallel()
	strict := Policy{Min: 8, Lower: 1, Upper: 1, Numeric: 1, Symbol: 1}
	for _, c := range []struct {
		p    Policy
		pw   string
		rule string // "" = accepted
	}{
		{DefaultPolicy(), "0123456789", ""},
		{DefaultPolicy(), "012345678", "min"},
		{DefaultPolicy(), "ääääääääää", ""}, // 10 runes, 20 bytes
		{strict, "Aa1!aaaa", ""},
		{strict, "Aa1!aaa", "min"},
		{strict, "AA1!AAAA", "lower"},
		{strict, "aa1!aaaa", "upper"},
		{strict, "Aa!!aaaa", "numeric"},
		{strict, "Aa11aaaa", "symbol"},
		{DefaultPolicy(), strings.Repeat("a", MaxPasswordLen+1), "max"},
		{DefaultPolicy(), "abcdefghij\xff", "utf8"},
	} {
		err := c.p.Check(c.pw)
		if c.rule == "" {
			if err != nil {
				t.Errorf("Check(%q) = %v, want nil", c.pw, err)
			}
			continue
		}
		var pe *PolicyError
		if !errors.As(err, &pe) || pe.Rule != c.rule || !errors.Is(err, ErrPolicy) {
			t.Errorf("Check(%q) = %v, want rule %s", c.pw, err, c.rule)
			continue
		}
		if len(c.pw) < 100 && strings.Contains(err.Error(), c.pw) {
			t.Errorf("error %q contains the password", err)
		}
	}
}

func TestPolicyValidate(t *testing.T) {
	t.Parallel()
	if DefaultPolicy().Validate() != nil {
		t.Fatal("default policy invalid")
	}
	for _, p := range []Policy{{Min: -1}, {Min: MaxPasswordLen + 1}, {Upper: 600, Lower: 600}} {
		if p.Validate() == nil {
			t.Errorf("Validate(%+v) = nil", p)
		}
	}
}

func TestGenerateSatisfiesPolicy(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, p := range []Policy{DefaultPolicy(), {Min: 30, Lower: 3, Upper: 3, Numeric: 3, Symbol: 3}, {Min: 4}} {
		for range 50 {
			pw, err := Generate(p, 20)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Check(pw); err != nil {
				t.Fatalf("Generate(%+v) = %q fails its own policy: %v", p, pw, err)
			}
			if n := utf8.RuneCountInString(pw); n < max(p.Min, 16, 20) {
				t.Fatalf("Generate gave %d characters", n)
			}
			if seen[pw] {
				t.Fatalf("Generate repeated %q", pw)
			}
			seen[pw] = true
		}
	}
	if _, err := Generate(Policy{Min: -1}, 10); err == nil {
		t.Fatal("Generate accepted an invalid policy")
	}
}
