package credential

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrUsername is matched (errors.Is) by every username rule violation.
var ErrUsername = errors.New("invalid username")

// Username limits.
const (
	MinUsernameLen = 3
	MaxUsernameLen = 256
)

// ValidUsername checks the username rules shared by the admin API and the
// client registry: at least 3 characters, at most 256 bytes, valid UTF-8,
// no control characters or surrounding space, and none of '/', '+', '#',
// which would make the {username} placeholder of topic permissions
// unusable. The error names the rule, never more than the rule.
func ValidUsername(name string) error {
	why := ""
	switch {
	case utf8.RuneCountInString(name) < MinUsernameLen:
		why = fmt.Sprintf("username must be at least %d characters", MinUsernameLen)
	case len(name) > MaxUsernameLen:
		why = fmt.Sprintf("username must be at most %d bytes", MaxUsernameLen)
	case strings.ContainsAny(name, "/+#"):
		why = "username must not contain '/', '+' or '#'"
	case !utf8.ValidString(name):
		why = "username is not valid UTF-8"
	case strings.TrimSpace(name) != name:
		why = "username must not start or end with white space"
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		why = "username must not contain control characters"
	default:
		return nil
	}
	return fmt.Errorf("%w: %s", ErrUsername, why)
}
