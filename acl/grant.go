package acl

import "strings"

// Grants reports whether holding p is enough to hand q to someone else:
// the same context, an operation of p that includes q's (readWrite
// includes read and write), and a resource of p that covers q's as
// written. Covering as written means every topic (or path) q's resource
// can match is matched by p's, with the placeholders {username} and
// {clientId} compared as text, not expanded: "{username}/#" covers
// "{username}/a" (whoever holds q gets the same shape of access p gives
// its holder) but not "alice/a" nor "+/a". A leading wildcard of p does
// not cover a q whose first level starts with '$', as in matching.
//
// This is the coverage relation of the admin API's escalation rule
// (Kubernetes RBAC's: a caller may only grant what it holds). It is
// conservative where exact coverage would need several of p's levels at
// once: q "#" is covered only by a p ending in a leading "#".
func (p Permission) Grants(q Permission) bool {
	return p.Context == q.Context && p.Operation.Allows(q.Operation) && coversAsWritten(p.Resource, q.Resource)
}

// Ungranted returns the first permission of want that held does not
// grant, and false when held grants them all. A readWrite permission is
// granted when one permission of held grants its read and one (maybe
// another) grants its write, as Kubernetes splits a rule into its verbs.
func Ungranted(held, want []Permission) (Permission, bool) {
	for _, q := range want {
		for _, op := range []Operation{OpRead, OpWrite} {
			if !q.Operation.Allows(op) {
				continue
			}
			one := Permission{Resource: q.Resource, Operation: op, Context: q.Context}
			granted := false
			for _, p := range held {
				if p.Grants(one) {
					granted = true
					break
				}
			}
			if !granted {
				return q, true
			}
		}
		if q.Operation.mask() == 0 {
			return q, true // an unknown operation is never granted
		}
	}
	return Permission{}, false
}

// coversAsWritten reports whether resource p matches everything resource
// q can match, level by level, with placeholder levels compared as text.
func coversAsWritten(p, q string) bool {
	if p == "" || q == "" {
		return false
	}
	pl, ql := strings.Split(p, "/"), strings.Split(q, "/")
	for i := 0; ; i++ {
		if i < len(pl) && pl[i] == "#" {
			// '#' matches the parent level and everything below it; a
			// leading one no topic starting with '$'.
			return !(i == 0 && strings.HasPrefix(ql[0], "$"))
		}
		if i == len(pl) || i == len(ql) {
			return len(pl) == len(ql)
		}
		switch {
		case ql[i] == "#":
			return false // only a '#' of p covers it (above)
		case pl[i] == "+":
			if i == 0 && strings.HasPrefix(ql[i], "$") {
				return false
			}
		case pl[i] != ql[i]:
			// A literal or placeholder level covers only itself: not '+'
			// of q, not another text.
			return false
		}
	}
}
