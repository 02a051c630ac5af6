package acl

import (
	"slices"
	"testing"
)

func TestExplainNamesTheDecidingPermissionFirst(t *testing.T) {
	perms := []Permission{
		mqtt("a/#", OpReadWrite),       // 0
		mqtt("a/b", OpRead),            // 1
		mqtt("a/+", OpWrite),           // 2
		mqtt("{username}/x", OpRead),   // 3
		mqtt("dev/{clientId}", OpRead), // 4
		mqtt("a/b", OpReadWrite),       // 5: same rank as 1, given later
		httpPerm("/api/#", OpRead),     // 6: another context
	}
	cases := []struct {
		name           string
		q              Question
		allowed        bool
		by, unresolved []int
	}{
		{"an exact permission decides before a wildcard, ties in given order",
			Question{Topic: "a/b", Op: OpRead}, true, []int{1, 5, 0}, nil},
		{"'+' is more specific than '#'",
			Question{Topic: "a/c", Op: OpWrite}, true, []int{2, 0}, nil},
		{"a filter is judged by coverage",
			Question{Topic: "a/+", Op: OpRead}, true, []int{0}, nil},
		{"a placeholder resolves to the bound value",
			Question{Topic: "u1/x", Op: OpRead, Username: "u1"}, true, []int{3}, nil},
		{"a placeholder without a value never matches, and is named",
			Question{Topic: "dev/c1", Op: OpRead, Username: "u1"}, false, nil, []int{4}},
		{"a username with '/' cannot resolve either",
			Question{Topic: "u1/x", Op: OpRead, Username: "u/1"}, false, nil, []int{3}},
		{"nothing allows: nothing named",
			Question{Topic: "b", Op: OpRead}, false, nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := Explain(ContextMQTT, perms, c.q)
			if err != nil {
				t.Fatal(err)
			}
			if v.Allowed != c.allowed || !slices.Equal(v.By, c.by) || !slices.Equal(v.Unresolved, c.unresolved) {
				t.Errorf("Explain = %+v, want allowed %v by %v unresolved %v", v, c.allowed, c.by, c.unresolved)
			}
		})
	}
}

func TestExplainRefusesInvalidQuestions(t *testing.T) {
	for _, c := range []struct {
		ctx   Context
		topic string
	}{{ContextMQTT, ""}, {ContextMQTT, "a/b#"}, {ContextMQTT, "a\x00"}, {ContextHTTP, "api/x"}, {"ftp", "a"}} {
		if _, err := Explain(c.ctx, nil, Question{Topic: c.topic, Op: OpRead}); err == nil {
			t.Errorf("Explain(%s, %q): no error", c.ctx, c.topic)
		}
	}
}

// TestExplainAgreesWithTheMatcher: for every topic and filter over a few
// levels, the verdict is the compiled matcher's and the slow reference's,
// and it names a permission exactly when it allows.
func TestExplainAgreesWithTheMatcher(t *testing.T) {
	perms := []Permission{
		mqtt("a/#", OpRead), mqtt("a/+/c", OpWrite), mqtt("{username}/+", OpReadWrite),
		mqtt("+/b/#", OpRead), mqtt("x/{clientId}", OpWrite), mqtt("#", OpWrite), mqtt("$SYS/b", OpRead),
	}
	levels := []string{"a", "b", "c", "u1", "c1", "$SYS", "+", "#"}
	var topics []string
	for _, l1 := range levels {
		topics = append(topics, l1)
		for _, l2 := range levels {
			topics = append(topics, l1+"/"+l2)
			for _, l3 := range levels {
				topics = append(topics, l1+"/"+l2+"/"+l3)
			}
		}
	}
	b := mustCompile(t, ContextMQTT, perms...).Bind("u1", "c1")
	checked := 0
	for _, topic := range topics {
		for _, op := range []Operation{OpRead, OpWrite} {
			v, err := Explain(ContextMQTT, perms, Question{Topic: topic, Op: op, Username: "u1", ClientID: "c1"})
			if err != nil {
				continue // an invalid filter ("#/a")
			}
			checked++
			var want, ref bool
			switch {
			case IsFilter(topic) && op == OpRead:
				want, ref = b.Covers(topic), refCoversAny(perms, "u1", "c1", topic)
			default:
				want, ref = b.Allows(topic, op), refAllows(perms, "u1", "c1", topic, op, false)
			}
			if v.Allowed != want || want != ref || v.Allowed != (len(v.By) > 0) {
				t.Errorf("%s %q: Explain %+v, matcher %v, reference %v", op, topic, v, want, ref)
			}
		}
	}
	if checked < 500 {
		t.Fatalf("only %d questions checked", checked)
	}
}

func TestSpecificityOrdersLevelByLevel(t *testing.T) {
	order := []string{"a/b/c", "a/b/+", "a/b/#", "a/+/c", "a/#", "+/b", "#"}
	for i := 1; i < len(order); i++ {
		if Specificity(order[i-1]) <= Specificity(order[i]) {
			t.Errorf("Specificity(%q) <= Specificity(%q)", order[i-1], order[i])
		}
	}
	if Specificity("a") <= Specificity("a/#") {
		t.Error(`"a" is not more specific than "a/#"`)
	}
}

func TestResolveExpandsUsableValuesOnce(t *testing.T) {
	for _, c := range []struct{ in, user, client, want string }{
		{"{username}/x/{clientId}", "u1", "c1", "u1/x/c1"},
		{"{username}/x/{clientId}", "", "c1", "{username}/x/c1"},
		{"{username}/x", "a/b", "", "{username}/x"},
		{"{username}-{clientId}", "{clientId}", "c1", "{clientId}-c1"},
	} {
		if got := Resolve(c.in, c.user, c.client); got != c.want {
			t.Errorf("Resolve(%q, %q, %q) = %q, want %q", c.in, c.user, c.client, got, c.want)
		}
	}
}
