package store

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Limits on a role's links to directory groups: a role is linked to a few
// groups, and a group DN is short; the bounds keep a role record small.
const (
	// MaxLdapGroups is the most group DNs one role may be linked to.
	MaxLdapGroups = 100
	// MaxDNBytes is the longest group DN accepted.
	MaxDNBytes = 1024
)

// NormalizeDN parses dn as an RFC 4514 distinguished name and returns the
// form warden compares DNs in: attribute types in lower case, values
// unescaped, folded to lower case and escaped again the one RFC 4514 way,
// the values of a multi-valued RDN sorted, no spaces around separators.
// Two spellings of one group DN ("CN=Admins, DC=Example" and
// "cn=admins,dc=example") give the same result. Directories compare
// names case-insensitively for the usual naming attributes (cn, ou, dc,
// uid), which is why values fold. Attribute type synonyms ("cn" and
// "commonName", or an OID) are not unified. The error, ErrInvalid, says
// what is wrong and where: a *DNError.
func NormalizeDN(dn string) (string, error) {
	rdns, err := parseDN(dn)
	if err != nil {
		return "", &DNError{DN: dn, Problem: err.msg}
	}
	parts := make([]string, len(rdns))
	for i, rdn := range rdns {
		avas := make([]string, len(rdn))
		for j, a := range rdn {
			avas[j] = a.typ + "=" + a.value
		}
		slices.Sort(avas)
		parts[i] = strings.Join(avas, "+")
	}
	return strings.Join(parts, ","), nil
}

// DNError is a string that is not a distinguished name; it matches
// ErrInvalid. Its text is written for API clients.
type DNError struct {
	DN string
	// Problem says what is wrong and at which byte.
	Problem string
}

func (e *DNError) Error() string {
	return fmt.Sprintf("%q is not a distinguished name: %s", e.DN, e.Problem)
}

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *DNError) Unwrap() error { return ErrInvalid }

// LinksError is a problem with a role's group DNs (ValidLdapGroups); it
// matches ErrInvalid. Its text names the field and the position, for API
// clients.
type LinksError struct {
	// Index is the position of the DN at fault, -1 for the list as a whole.
	Index   int
	Problem string
	err     error
}

func (e *LinksError) Error() string {
	if e.Index < 0 {
		return "ldapGroups: " + e.Problem
	}
	return fmt.Sprintf("ldapGroups[%d]: %s", e.Index, e.Problem)
}

// Unwrap makes errors.Is(err, ErrInvalid) hold, and errors.As find the
// *DNError behind a DN that does not parse.
func (e *LinksError) Unwrap() []error { return []error{ErrInvalid, e.err} }

// ValidLdapGroups checks a role's group DNs: each a distinguished name
// of at most MaxDNBytes bytes, none twice (as NormalizeDN compares them),
// at most MaxLdapGroups of them. The error, a *LinksError, names the
// first problem and its position.
func ValidLdapGroups(dns []string) error {
	if len(dns) > MaxLdapGroups {
		return &LinksError{Index: -1, Problem: fmt.Sprintf("%d group DNs, more than %d", len(dns), MaxLdapGroups)}
	}
	seen := make(map[string]int, len(dns))
	for i, dn := range dns {
		if len(dn) > MaxDNBytes {
			return &LinksError{Index: i, Problem: fmt.Sprintf("longer than %d bytes", MaxDNBytes)}
		}
		n, err := NormalizeDN(dn)
		if err != nil {
			return &LinksError{Index: i, Problem: err.Error(), err: err}
		}
		if j, dup := seen[n]; dup {
			return &LinksError{Index: i, Problem: fmt.Sprintf("%q names the same group as ldapGroups[%d]", dn, j)}
		}
		seen[n] = i
	}
	return nil
}

// RolesByLdapGroups returns the roles of roles linked to any of the
// groups groupDNs (a directory user's groups), in the order of roles,
// each once. DNs are compared as NormalizeDN gives them; a group DN that
// does not parse links to nothing. Roles are few, so the login path
// computes this from the role list rather than from an index.
func RolesByLdapGroups(roles []Role, groupDNs []string) []Role {
	groups := make(map[string]bool, len(groupDNs))
	for _, dn := range groupDNs {
		if n, err := NormalizeDN(dn); err == nil {
			groups[n] = true
		}
	}
	var out []Role
	for _, r := range roles {
		for _, dn := range r.LdapGroups {
			if n, err := NormalizeDN(dn); err == nil && groups[n] {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

// ava is one attribute type and value of an RDN, both normalized.
type ava struct{ typ, value string }

// dnError says where a DN breaks the grammar.
type dnError struct{ msg string }

// dnParser reads a DN string left to right (RFC 4514 section 3).
type dnParser struct {
	s   string
	pos int
}

func (p *dnParser) fail(format string, args ...any) *dnError {
	return &dnError{msg: fmt.Sprintf("at byte %d: ", p.pos) + fmt.Sprintf(format, args...)}
}

func (p *dnParser) skipSpaces() {
	for p.pos < len(p.s) && p.s[p.pos] == ' ' {
		p.pos++
	}
}

// parseDN parses a non-empty DN. Spaces around ",", "+" and "=" are
// tolerated (RFC 4514 allows accepting other spellings; people write
// "cn=a, dc=b"); spaces inside a value are kept.
func parseDN(s string) ([][]ava, *dnError) {
	if !utf8.ValidString(s) {
		return nil, &dnError{msg: "not valid UTF-8"}
	}
	p := &dnParser{s: s}
	if strings.TrimSpace(s) == "" {
		return nil, &dnError{msg: "empty"}
	}
	var rdns [][]ava
	for {
		var rdn []ava
		for {
			a, err := p.ava()
			if err != nil {
				return nil, err
			}
			if slices.ContainsFunc(rdn, func(b ava) bool { return b.typ == a.typ }) {
				return nil, p.fail("attribute type %q appears twice in one RDN", a.typ)
			}
			rdn = append(rdn, a)
			if p.pos < len(s) && s[p.pos] == '+' {
				p.pos++
				continue
			}
			break
		}
		rdns = append(rdns, rdn)
		if p.pos == len(s) {
			return rdns, nil
		}
		if s[p.pos] != ',' {
			return nil, p.fail("expected ',' or '+', found %q", s[p.pos])
		}
		p.pos++
	}
}

// ava parses attributeType "=" attributeValue.
func (p *dnParser) ava() (ava, *dnError) {
	p.skipSpaces()
	typ, err := p.attributeType()
	if err != nil {
		return ava{}, err
	}
	p.skipSpaces()
	if p.pos >= len(p.s) || p.s[p.pos] != '=' {
		return ava{}, p.fail("expected '=' after attribute type %q", typ)
	}
	p.pos++
	p.skipSpaces()
	var value string
	if p.pos < len(p.s) && p.s[p.pos] == '#' {
		value, err = p.hexValue()
	} else {
		value, err = p.stringValue()
	}
	if err != nil {
		return ava{}, err
	}
	p.skipSpaces()
	return ava{typ: typ, value: value}, nil
}

// attributeType parses a descr (letter, then letters, digits, hyphens) or
// a numeric OID, and returns it in lower case.
func (p *dnParser) attributeType() (string, *dnError) {
	start := p.pos
	switch {
	case p.pos < len(p.s) && isAlpha(p.s[p.pos]):
		for p.pos < len(p.s) && (isAlpha(p.s[p.pos]) || isDigit(p.s[p.pos]) || p.s[p.pos] == '-') {
			p.pos++
		}
	case p.pos < len(p.s) && isDigit(p.s[p.pos]):
		for p.pos < len(p.s) && (isDigit(p.s[p.pos]) || p.s[p.pos] == '.') {
			p.pos++
		}
		oid := p.s[start:p.pos]
		for _, arc := range strings.Split(oid, ".") {
			if arc == "" || (len(arc) > 1 && arc[0] == '0') {
				return "", &dnError{msg: fmt.Sprintf("at byte %d: %q is not a numeric OID", start, oid)}
			}
		}
		if !strings.Contains(oid, ".") {
			return "", &dnError{msg: fmt.Sprintf("at byte %d: %q is not a numeric OID", start, oid)}
		}
	default:
		return "", p.fail("expected an attribute type")
	}
	return strings.ToLower(p.s[start:p.pos]), nil
}

// hexValue parses "#" followed by hex pairs (the BER encoding of the
// value), kept as lower-case hex.
func (p *dnParser) hexValue() (string, *dnError) {
	p.pos++ // '#'
	start := p.pos
	for p.pos < len(p.s) && isHex(p.s[p.pos]) {
		p.pos++
	}
	h := p.s[start:p.pos]
	if h == "" || len(h)%2 != 0 {
		return "", p.fail("'#' must be followed by pairs of hex digits")
	}
	return "#" + strings.ToLower(h), nil
}

// stringValue parses an escaped string value up to an unescaped ',' or
// '+' (or the end), drops unescaped trailing spaces, and returns it
// folded to lower case and escaped again (escapeDNValue).
func (p *dnParser) stringValue() (string, *dnError) {
	var b []byte
	trail := 0 // unescaped spaces at the end of b
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		switch c {
		case ',', '+':
			return p.finishValue(b[:len(b)-trail])
		case '\\':
			p.pos++
			if p.pos >= len(p.s) {
				return "", p.fail("'\\' at the end")
			}
			c = p.s[p.pos]
			switch {
			case strings.IndexByte("\\ #=\"+,;<>", c) >= 0:
				b = append(b, c)
				p.pos++
			case p.pos+1 < len(p.s) && isHex(c) && isHex(p.s[p.pos+1]):
				v, _ := hex.DecodeString(p.s[p.pos : p.pos+2])
				b = append(b, v[0])
				p.pos += 2
			default:
				return "", p.fail("'\\' must be followed by a special character or two hex digits")
			}
			trail = 0
			continue
		case '"', ';', '<', '>', 0:
			return "", p.fail("%q must be escaped", c)
		case '=':
			// RFC 4514 leaves '=' unescaped in values, but a second '=' in
			// an RDN is far more often a missing ','.
			return "", p.fail("'=' in a value must be escaped (a missing ','?)")
		}
		if c == ' ' {
			trail++
		} else {
			trail = 0
		}
		b = append(b, c)
		p.pos++
	}
	return p.finishValue(b[:len(b)-trail])
}

func (p *dnParser) finishValue(raw []byte) (string, *dnError) {
	if len(raw) == 0 {
		return "", p.fail("empty attribute value")
	}
	if !utf8.Valid(raw) {
		return "", p.fail("the value is not valid UTF-8")
	}
	return escapeDNValue(strings.ToLower(string(raw))), nil
}

// escapeDNValue escapes v as RFC 4514 section 2.4 requires: '"', '+',
// ',', ';', '<', '>', '\' anywhere, '#' and ' ' in front, ' ' at the end,
// NUL as \00; and '=', which the parser wants escaped.
func escapeDNValue(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == 0:
			b.WriteString(`\00`)
			continue
		case strings.IndexByte("\"+,;<>\\=", c) >= 0,
			i == 0 && (c == '#' || c == ' '),
			i == len(v)-1 && c == ' ':
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isHex(c byte) bool   { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }
