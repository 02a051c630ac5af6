package credential

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/warden-mqtt/warden/store"
)

// ErrUsername is matched (errors.Is) by every username rule violation.
var ErrUsername = errors.New("invalid username")

// Username limits.
const (
	MinUsernameLen = 3
	MaxUsernameLen = 256
)

// NormalizeUsername returns the canonical spelling of a username: its
// Unicode NFC form, the form the store keeps names in (store
// NormalizeUsername). Call it where a username arrives (HTTP login, MQTT
// CONNECT, registry) before using it as a key of anything outside the
// store, such as a lockout counter or a cache, so that the decomposed
// (NFD) spelling of a name is the same name; the store's lookups
// normalise by themselves.
func NormalizeUsername(name string) string { return store.NormalizeUsername(name) }

// ValidUsername checks the rules for a new or renamed username, shared
// by the admin API and the client registry. The name is judged in NFC,
// the form it will be stored in: at least 3 characters, at most 256
// bytes, valid UTF-8; none of '/', '+', '#' (which would make the
// {username} placeholder of topic permissions unusable); not starting
// with '$' (the prefix of broker topics such as $SYS, which a leading
// placeholder must never reach); no surrounding space and no space other
// than U+0020; no control, format (zero-width, bidi), private-use or
// unassigned characters; no compatibility characters (fullwidth forms,
// ligatures, styled letters: RFC 8264's IdentifierClass refuses them);
// and letters of one script, or one of the combinations Unicode's UTS #39
// "Highly Restrictive" level allows (Latin with Han and Japanese kana,
// with Han and Bopomofo, or with Han and Hangul), so "pаypal" with a
// Cyrillic "а" is refused. Names already stored are not checked again.
// The error names the rule, never more than the rule.
func ValidUsername(name string) error {
	why := ""
	if !utf8.ValidString(name) {
		why = "username is not valid UTF-8"
	} else {
		why = usernameProblem(norm.NFC.String(name))
	}
	if why == "" {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrUsername, why)
}

func usernameProblem(name string) string {
	switch {
	case utf8.RuneCountInString(name) < MinUsernameLen:
		return fmt.Sprintf("username must be at least %d characters", MinUsernameLen)
	case len(name) > MaxUsernameLen:
		return fmt.Sprintf("username must be at most %d bytes", MaxUsernameLen)
	case strings.ContainsAny(name, "/+#"):
		return "username must not contain '/', '+' or '#'"
	case strings.HasPrefix(name, "$"):
		return "username must not start with '$'"
	case strings.TrimSpace(name) != name:
		return "username must not start or end with white space"
	}
	for _, r := range name {
		switch {
		case unicode.IsControl(r):
			return "username must not contain control characters"
		case store.DefaultIgnorable(r):
			return "username must not contain format or invisible characters (zero-width, bidi controls)"
		case unicode.IsSpace(r) && r != ' ', unicode.In(r, unicode.Zl, unicode.Zp):
			return "username must not contain white space other than the ASCII space"
		case unicode.In(r, unicode.Co, unicode.Cs) || !assigned(r):
			return "username must not contain private-use or unassigned characters"
		}
	}
	if !norm.NFKC.IsNormalString(name) {
		return "username must not contain compatibility characters (fullwidth forms, ligatures, styled letters)"
	}
	if !singleScript(name) {
		return "username must not mix scripts (such as Latin and Cyrillic letters)"
	}
	return ""
}

// assigned reports whether r is an assigned character in the Unicode
// version of Go's tables.
func assigned(r rune) bool {
	return unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z,
		unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs) // not unicode.C: it holds Cn, the unassigned
}

// Script sets UTS #39 allows together at the Highly Restrictive level,
// besides any single script.
var scriptCombinations = [][]*unicode.RangeTable{
	{unicode.Latin, unicode.Han, unicode.Hiragana, unicode.Katakana}, // Japanese
	{unicode.Latin, unicode.Han, unicode.Bopomofo},                   // Chinese
	{unicode.Latin, unicode.Han, unicode.Hangul},                     // Korean
}

// singleScript reports whether the letters of name, ignoring characters
// of the Common and Inherited scripts (digits, punctuation, combining
// marks), come from one script or one of scriptCombinations: UTS #39's
// "Highly Restrictive" restriction level. It uses the Script property;
// UTS #39 uses Script_Extensions, which Go's tables lack, so a few
// characters shared by scripts are judged by their primary script.
func singleScript(name string) bool {
	var scripts []*unicode.RangeTable
	for _, r := range name {
		if unicode.In(r, unicode.Common, unicode.Inherited) {
			continue
		}
		s := scriptOf(r)
		if s == nil {
			return false
		}
		if !slices.Contains(scripts, s) {
			scripts = append(scripts, s)
		}
	}
	if len(scripts) <= 1 {
		return true
	}
	for _, combo := range scriptCombinations {
		all := true
		for _, s := range scripts {
			if !slices.Contains(combo, s) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// scriptOf returns the script table of r, trying the usual ones first.
func scriptOf(r rune) *unicode.RangeTable {
	for _, s := range []*unicode.RangeTable{unicode.Latin, unicode.Han, unicode.Cyrillic, unicode.Greek,
		unicode.Hiragana, unicode.Katakana, unicode.Hangul, unicode.Arabic, unicode.Hebrew} {
		if unicode.Is(s, r) {
			return s
		}
	}
	for _, s := range unicode.Scripts {
		if unicode.Is(s, r) {
			return s
		}
	}
	return nil
}
