package directory

import (
	"bytes"
	"testing"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"
)

// FuzzUserFilter: whatever the username, the user filter compiles to one
// equality match of uid against exactly the username's bytes.
func FuzzUserFilter(f *testing.F) {
	for _, s := range []string{"alice", "*", "*)(uid=*", "alice)(|(uid=*", `\2a`, "\x00", "ä", "(", ")"} {
		f.Add(s)
	}
	p, err := New(Config{URL: "ldaps://x", BaseDN: "dc=x", BindDN: "cn=r,dc=x", BindPassword: "x"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, username string) {
		filter := p.userFilter(username)
		pkt, err := ldap.CompileFilter(filter)
		if err != nil {
			t.Fatalf("filter %q of username %q does not compile: %v", filter, username, err)
		}
		if pkt.Tag != ldap.FilterEqualityMatch || len(pkt.Children) != 2 {
			t.Fatalf("filter %q of username %q is not one equality match", filter, username)
		}
		if attr, value := pkt.Children[0].Data.Bytes(), pkt.Children[1].Data.Bytes(); string(attr) != "uid" || !bytes.Equal(value, []byte(username)) {
			t.Fatalf("filter %q of username %q matches %s=%q", filter, username, attr, value)
		}
	})
}

// FuzzUserDN: whatever the username, the template's DN keeps its shape:
// the username is the one value of the first RDN, the rest is the template's.
func FuzzUserDN(f *testing.F) {
	for _, s := range []string{"alice", "alice,ou=people", "x+uid=alice", " alice ", "#alice", `a\,b`, "a\"b;c<d>e=f", "\x00"} {
		f.Add(s)
	}
	p, err := New(Config{URL: "ldaps://x", BaseDN: "dc=x", BindDNTemplate: "uid={username},ou=people,dc=example,dc=org"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, username string) {
		if username == "" || !utf8.ValidString(username) {
			t.Skip() // refused before (empty) or not a directory string
		}
		dn := p.userDN(username)
		parsed, err := ldap.ParseDN(dn)
		if err != nil {
			t.Fatalf("DN %q of username %q does not parse: %v", dn, username, err)
		}
		if len(parsed.RDNs) != 4 || len(parsed.RDNs[0].Attributes) != 1 {
			t.Fatalf("DN %q of username %q has %d RDNs, first with %d values", dn, username, len(parsed.RDNs), len(parsed.RDNs[0].Attributes))
		}
		if a := parsed.RDNs[0].Attributes[0]; a.Type != "uid" || a.Value != username {
			t.Fatalf("DN %q of username %q names %s=%q", dn, username, a.Type, a.Value)
		}
	})
}
