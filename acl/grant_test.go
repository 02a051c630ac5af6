package acl

import "testing"

func TestGrants(t *testing.T) {
	mq := func(res string, op Operation) Permission {
		return Permission{Resource: res, Operation: op, Context: ContextMQTT}
	}
	tests := []struct {
		name string
		p, q Permission
		want bool
	}{
		{"the same permission", mq("plant1/#", OpRead), mq("plant1/#", OpRead), true},
		{"readWrite includes read", mq("a/#", OpReadWrite), mq("a/b", OpRead), true},
		{"readWrite includes write", mq("a/#", OpReadWrite), mq("a/b", OpWrite), true},
		{"read does not include readWrite", mq("a/#", OpRead), mq("a/b", OpReadWrite), false},
		{"read does not include write", mq("a/#", OpRead), mq("a/b", OpWrite), false},
		{"another context", mq("/#", OpReadWrite), Permission{Resource: "/#", Operation: OpRead, Context: ContextHTTP}, false},
		{"'#' covers its parent", mq("a/#", OpRead), mq("a", OpRead), true},
		{"'#' covers deeper wildcards", mq("a/#", OpRead), mq("a/+/c/#", OpRead), true},
		{"a sibling is not covered", mq("plant1/#", OpReadWrite), mq("plant2/#", OpReadWrite), false},
		{"a literal does not cover '+'", mq("a/b", OpRead), mq("a/+", OpRead), false},
		{"'+' covers a literal", mq("a/+/c", OpRead), mq("a/b/c", OpRead), true},
		{"'+' does not cover '#'", mq("a/+", OpRead), mq("a/#", OpRead), false},
		{"a longer filter is not covered", mq("a/b", OpRead), mq("a/b/c", OpRead), false},
		{"a shorter filter is not covered", mq("a/b/c", OpRead), mq("a/b", OpRead), false},
		{"a placeholder covers itself", mq("{username}/#", OpReadWrite), mq("{username}/a", OpWrite), true},
		{"a placeholder does not cover a name", mq("{username}/#", OpReadWrite), mq("alice/a", OpWrite), false},
		{"a name does not cover a placeholder", mq("alice/#", OpReadWrite), mq("{username}/a", OpWrite), false},
		{"a placeholder does not cover '+'", mq("{username}/#", OpReadWrite), mq("+/a", OpWrite), false},
		{"'+' covers a placeholder", mq("+/a", OpRead), mq("{clientId}/a", OpRead), true},
		{"a leading '#' covers a leading placeholder", mq("#", OpRead), mq("{username}/x", OpRead), true},
		{"a leading '#' does not cover '$' topics", mq("#", OpReadWrite), mq("$SYS/#", OpRead), false},
		{"a leading '+' does not cover '$' topics", mq("+/x", OpRead), mq("$SYS/x", OpRead), false},
		{"'#' covers '#'", mq("#", OpRead), mq("#", OpRead), true},
		{"'+/#' is conservatively not taken to cover '#'", mq("+/#", OpRead), mq("#", OpRead), false},
		{"http: the admin pattern covers any path", Permission{Resource: "/#", Operation: OpReadWrite, Context: ContextHTTP},
			Permission{Resource: "/api/users/+", Operation: OpWrite, Context: ContextHTTP}, true},
		{"http: a narrower pattern does not cover /#", Permission{Resource: "/api/roles/+", Operation: OpReadWrite, Context: ContextHTTP},
			Permission{Resource: "/#", Operation: OpReadWrite, Context: ContextHTTP}, false},
		{"an unknown operation grants nothing", mq("#", "all"), mq("a", OpRead), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.Grants(tc.q); got != tc.want {
				t.Errorf("%+v.Grants(%+v) = %v, want %v", tc.p, tc.q, got, tc.want)
			}
		})
	}
}

func TestUngranted(t *testing.T) {
	mq := func(res string, op Operation) Permission {
		return Permission{Resource: res, Operation: op, Context: ContextMQTT}
	}
	held := []Permission{mq("a/#", OpRead), mq("a/#", OpWrite), mq("b", OpRead)}
	if q, missing := Ungranted(held, []Permission{mq("a/x", OpReadWrite), mq("b", OpRead)}); missing {
		t.Errorf("read and write held separately: Ungranted = %+v, want none", q)
	}
	q, missing := Ungranted(held, []Permission{mq("a/x", OpRead), mq("b", OpReadWrite), mq("c", OpRead)})
	if !missing || q != mq("b", OpReadWrite) {
		t.Errorf("Ungranted = %+v, %v; want the first missing one, b readWrite", q, missing)
	}
	if q, missing := Ungranted(nil, nil); missing {
		t.Errorf("granting nothing: Ungranted = %+v", q)
	}
	if _, missing := Ungranted(held, []Permission{mq("a", "bogus")}); !missing {
		t.Error("an unknown operation was taken as granted")
	}
}

// TestGrantsIsSound checks Grants against the matcher: whenever p grants
// q, every topic q allows (and every filter q covers) is allowed (covered)
// by p, for the same binding of the placeholders.
func TestGrantsIsSound(t *testing.T) {
	resources := []string{"#", "+", "a", "a/#", "a/+", "a/b", "a/+/c", "+/b", "+/#", "$SYS/#", "$SYS/x",
		"{username}", "{username}/#", "{clientId}/+", "dev-{clientId}/#", "alice/#", "/a", "/+", "a//b", "a/b/#"}
	topics := []string{"a", "a/b", "a/x", "a/b/c", "a/x/c", "b", "x/b", "$SYS/x", "$SYS", "alice", "alice/a", "bob/a",
		"c1/x", "dev-c1/a", "/a", "/x", "a//b", "", "a/b/c/d"}
	bindings := [][2]string{{"alice", "c1"}, {"bob", "dev"}, {"a", "a"}}
	for _, pr := range resources {
		for _, qr := range resources {
			p := Permission{Resource: pr, Operation: OpReadWrite, Context: ContextMQTT}
			q := Permission{Resource: qr, Operation: OpReadWrite, Context: ContextMQTT}
			if !p.Grants(q) {
				continue
			}
			pm, err := Compile(ContextMQTT, []Permission{p})
			if err != nil {
				t.Fatal(err)
			}
			qm, err := Compile(ContextMQTT, []Permission{q})
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range bindings {
				pb, qb := pm.Bind(b[0], b[1]), qm.Bind(b[0], b[1])
				for _, topic := range append(topics, resources...) {
					if qb.Allows(topic, OpWrite) && !pb.Allows(topic, OpWrite) {
						t.Errorf("%q grants %q, but with %v only the latter allows topic %q", pr, qr, b, topic)
					}
					if qb.Covers(topic) && !pb.Covers(topic) {
						t.Errorf("%q grants %q, but with %v only the latter covers filter %q", pr, qr, b, topic)
					}
				}
			}
		}
	}
}
