package credential

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"unicode"
	"unicode/utf8"
)

// ErrPolicy is matched (errors.Is) by every *PolicyError.
var ErrPolicy = errors.New("password does not satisfy the policy")

// Policy is the password policy, in the shape of Connectware's
// GET /api/policy/password: minimum length and minimum counts of
// character classes.
type Policy struct {
	Min     int `json:"min"`
	Lower   int `json:"lower"`
	Upper   int `json:"upper"`
	Numeric int `json:"numeric"`
	Symbol  int `json:"symbol"`
}

// DefaultPolicy requires 10 characters and nothing else: length matters
// more than composition rules (NIST SP 800-63B), and devices often use
// generated hex or base64 secrets.
func DefaultPolicy() Policy { return Policy{Min: 10} }

// Validate reports a policy no password could meet sensibly.
func (p Policy) Validate() error {
	for _, v := range []int{p.Min, p.Lower, p.Upper, p.Numeric, p.Symbol} {
		if v < 0 {
			return errors.New("credential: policy counts must not be negative")
		}
	}
	if p.Min > MaxPasswordLen {
		return fmt.Errorf("credential: policy minimum %d exceeds the maximum password length %d", p.Min, MaxPasswordLen)
	}
	if p.Lower+p.Upper+p.Numeric+p.Symbol > MaxPasswordLen {
		return errors.New("credential: policy class counts exceed the maximum password length")
	}
	return nil
}

// PolicyError names the first rule a password broke. It never contains
// the password.
type PolicyError struct {
	Rule string // min, max, lower, upper, numeric, symbol
	Want int
	Got  int
}

func (e *PolicyError) Error() string {
	switch e.Rule {
	case "min":
		return fmt.Sprintf("password must be at least %d characters long (has %d)", e.Want, e.Got)
	case "max":
		return fmt.Sprintf("password must be at most %d bytes long (has %d)", e.Want, e.Got)
	case "utf8":
		return "password must be valid UTF-8"
	}
	return fmt.Sprintf("password must contain at least %d %s characters (has %d)", e.Want, e.Rule, e.Got)
}

// Unwrap makes errors.Is(err, ErrPolicy) true.
func (e *PolicyError) Unwrap() error { return ErrPolicy }

// Check returns nil when password satisfies the policy, else a
// *PolicyError for the first rule broken. Length counts characters
// (runes), not bytes.
func (p Policy) Check(password string) error {
	if len(password) > MaxPasswordLen {
		return &PolicyError{Rule: "max", Want: MaxPasswordLen, Got: len(password)}
	}
	if !utf8.ValidString(password) {
		return &PolicyError{Rule: "utf8"}
	}
	var n, lower, upper, numeric, symbol int
	for _, r := range password {
		n++
		switch {
		case unicode.IsLower(r):
			lower++
		case unicode.IsUpper(r):
			upper++
		case unicode.IsDigit(r):
			numeric++
		case unicode.IsPunct(r) || unicode.IsSymbol(r) || r == ' ':
			symbol++
		}
	}
	for _, c := range []struct {
		rule      string
		want, got int
	}{{"min", p.Min, n}, {"lower", p.Lower, lower}, {"upper", p.Upper, upper}, {"numeric", p.Numeric, numeric}, {"symbol", p.Symbol, symbol}} {
		if c.got < c.want {
			return &PolicyError{Rule: c.rule, Want: c.want, Got: c.got}
		}
	}
	return nil
}

const (
	lowerChars   = "abcdefghijkmnopqrstuvwxyz" // no l: confusable with 1
	upperChars   = "ABCDEFGHJKLMNPQRSTUVWXYZ"  // no I, O
	digitChars   = "23456789"                  // no 0, 1
	symbolChars  = "-_.!#%+=@"                 // safe in shells and URLs
	allGenerated = lowerChars + upperChars + digitChars + symbolChars
)

// Generate returns a random password of length characters (at least the
// policy minimum, and at least 16) that satisfies p, drawn from
// crypto/rand.
func Generate(p Policy, length int) (string, error) {
	if err := p.Validate(); err != nil {
		return "", err
	}
	length = max(length, p.Min, 16, p.Lower+p.Upper+p.Numeric+p.Symbol)
	if length > MaxPasswordLen {
		return "", fmt.Errorf("credential: generated password length %d exceeds %d", length, MaxPasswordLen)
	}
	out := make([]byte, 0, length)
	for _, c := range []struct {
		set string
		n   int
	}{{lowerChars, p.Lower}, {upperChars, p.Upper}, {digitChars, p.Numeric}, {symbolChars, p.Symbol}} {
		for range c.n {
			b, err := pick(c.set)
			if err != nil {
				return "", err
			}
			out = append(out, b)
		}
	}
	for len(out) < length {
		b, err := pick(allGenerated)
		if err != nil {
			return "", err
		}
		out = append(out, b)
	}
	// Shuffle so the required classes are not always at the front.
	for i := len(out) - 1; i > 0; i-- {
		j, err := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		if err != nil {
			return "", err
		}
		out[i], out[j.Int64()] = out[j.Int64()], out[i]
	}
	return string(out), nil
}

func pick(set string) (byte, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(int64(len(set))))
	if err != nil {
		return 0, fmt.Errorf("credential: random: %w", err)
	}
	return set[n.Int64()], nil
}
