package credential

import (
	"errors"
	"strings"
	"testing"
)

// FuzzVerify feeds arbitrary stored hashes: Verify must never panic, never
// match a malformed hash, and only ever fail with ErrMalformedHash.
func FuzzVerify(f *testing.F) {
	good, _ := Hash("pw", testParams)
	for _, s := range []string{good, "", "$argon2id$", "$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=99999999,t=1,p=1$c29tZXNhbHQ$AAAAAAAAAAAAAAAAAAAAAA"} {
		f.Add("pw", s)
	}
	f.Fuzz(func(t *testing.T, pw, encoded string) {
		if len(pw) > MaxPasswordLen {
			return
		}
		// Keep each case cheap: skip hashes asking for more than 4 MiB.
		if p, _, _, err := decode(encoded); err == nil && (p.Memory > 4096 || p.Time > 2) {
			return
		}
		ok, err := Verify(pw, encoded)
		if err != nil && (ok || !errors.Is(err, ErrMalformedHash)) {
			t.Fatalf("Verify = %v, %v", ok, err)
		}
		if err == nil && !strings.HasPrefix(encoded, "$argon2id$v=19$") {
			t.Fatalf("accepted %q", encoded)
		}
	})
}

const messageAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ()-"

// FuzzPolicyCheck: Check never panics, and its verdict agrees with a
// direct count; errors never echo the password.
func FuzzPolicyCheck(f *testing.F) {
	for _, s := range []string{"", "Aa1!aaaa", "ääääääääää", "\xff\xfe", "pass word 123"} {
		f.Add(s, 8, 1, 1, 1, 1)
	}
	f.Fuzz(func(t *testing.T, pw string, minLen, lower, upper, numeric, symbol int) {
		p := Policy{Min: minLen % 64, Lower: lower % 8, Upper: upper % 8, Numeric: numeric % 8, Symbol: symbol % 8}
		if p.Validate() != nil {
			return
		}
		err := p.Check(pw)
		if err == nil {
			return
		}
		var pe *PolicyError
		if !errors.As(err, &pe) {
			t.Fatalf("Check returned %T %v", err, err)
		}
		// A password made only of the message's own alphabet can occur in
		// it by chance ("has 4"); any other character proves an echo.
		if len(pw) >= 4 && strings.Trim(pw, messageAlphabet) != "" && strings.Contains(err.Error(), pw) {
			t.Fatalf("error %q echoes the password", err)
		}
		if strings.ContainsAny(err.Error(), "\n\r") {
			t.Fatalf("error %q spans lines", err)
		}
	})
}
