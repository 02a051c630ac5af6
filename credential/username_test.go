package credential

import (
	"errors"
	"strings"
	"testing"
)

func TestValidUsername(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		username string
		want     string // a part of the reason; "" means valid
	}{
		{"a plain name", "plant1-sensor_7.a@corp", ""},
		{"an inner space", "line operator", ""},
		{"accented Latin", "José Müller", ""},
		{"decomposed accents are judged in NFC", "Jose\u0301", ""},
		{"Cyrillic alone", "оператор", ""},
		{"Greek alone", "χειριστής", ""},
		{"Japanese: kanji, kana and Latin", "工場A-センサー", ""},
		{"Chinese: Han and Bopomofo", "工廠ㄅ", ""},
		{"Korean: Hangul, Han and Latin", "공장工場A", ""},
		{"digits and punctuation go with any script", "датчик-42", ""},
		{"too short", "ab", "at least 3"},
		{"too long", strings.Repeat("a", 257), "at most 256"},
		{"a slash", "a/b/c", "'/'"},
		{"a wildcard", "dev+1", "'+'"},
		{"a leading dollar", "$SYS", "'$'"},
		{"a leading dollar placeholder trick", "$share", "'$'"},
		{"surrounding space", " admin", "white space"},
		{"a control character", "adm\x07in", "control"},
		{"a DEL", "adm\x7fin", "control"},
		{"a zero-width space", "ad\u200bmin", "format"},
		{"a zero-width joiner", "ad\u200dmin", "format"},
		{"a right-to-left override", "admin\u202egnp.exe", "format"},
		{"a left-to-right mark", "\u200eadmin", "format"},
		{"a byte order mark", "\ufeffadmin", "format"},
		{"a soft hyphen", "ad\u00admin", "format"},
		{"a variation selector", "admin\ufe0f", "format"},
		{"a Hangul filler", "ad\u3164min", "format"},
		{"a no-break space", "ad\u00a0min", "white space"},
		{"an ideographic space", "工場\u3000A", "white space"},
		{"a line separator", "ad\u2028min", "white space"},
		{"a private-use character", "ad\ue000min", "private-use"},
		{"an unassigned code point", "ad\U0003ffffmin", "unassigned"},
		{"fullwidth letters", "ａｄｍｉｎ", "compatibility"},
		{"mathematical bold letters", "\U0001d41a\U0001d41d\U0001d426\U0001d422\U0001d427", "compatibility"},
		{"a ligature", "of\ufb01ce", "compatibility"},
		{"Latin with a Cyrillic a", "p\u0430ypal", "mix scripts"},
		{"Latin with a Greek omicron", "r\u03bfot", "mix scripts"},
		{"Cyrillic and Greek", "\u043e\u03bf\u043e", "mix scripts"},
		{"Hangul with kana", "공장センサー", "mix scripts"},
		{"invalid UTF-8", "ab\xffc", "UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidUsername(tc.username)
			if tc.want == "" {
				if err != nil {
					t.Errorf("ValidUsername(%q) = %v, want valid", tc.username, err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrUsername) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ValidUsername(%q) = %v, want an ErrUsername naming %q", tc.username, err, tc.want)
			}
		})
	}
}

func TestNormalizeUsername(t *testing.T) {
	t.Parallel()
	if got := NormalizeUsername("Jose\u0301"); got != "Jos\u00e9" {
		t.Errorf("NormalizeUsername(NFD) = %q, want the NFC form", got)
	}
	if got := NormalizeUsername("admin"); got != "admin" {
		t.Errorf("NormalizeUsername(admin) = %q", got)
	}
}
