package acl

import (
	"fmt"
	"testing"
)

// benchSizes are the permission counts the benchmarks compare: a device, a
// busy role set, and far more than any one client holds.
var benchSizes = []int{10, 1000, 100000}

// benchPerms returns n permissions shaped like a plant's topic tree:
// literals, '+' and '#' mixed, a fifth of them with a placeholder.
func benchPerms(n int) []Permission {
	perms := make([]Permission, n)
	for i := range perms {
		s, l, k := i/50, (i/5)%10, i%7
		var p Permission
		switch i % 5 {
		case 0:
			p = mqtt(fmt.Sprintf("site%d/line%d/+/sensor%d/#", s, l, i%10), OpRead)
		case 1:
			p = mqtt(fmt.Sprintf("site%d/line%d/cell%d/+/status", s, l, k), OpWrite)
		case 2:
			p = mqtt(fmt.Sprintf("site%d/line%d/cell%d/sensor%d/value", s, l, k, k), OpReadWrite)
		case 3:
			p = mqtt(fmt.Sprintf("site%d/line%d/dev-{clientId}/#", s, l), OpReadWrite)
		case 4:
			p = mqtt(fmt.Sprintf("site%d/+/alarms/{username}/#", s), OpRead)
		}
		perms[i] = p
	}
	return perms
}

// The 6-level topics and filters the benchmarks check. Every permission set
// holds "site0/line1/+/sensor5/#" (i = 5), and none grants sensor6 there.
const (
	benchTopicAllowed  = "site0/line1/cell2/sensor5/temp/value"
	benchTopicDenied   = "site0/line1/cell2/sensor6/temp/value"
	benchFilterCovered = "site0/line1/+/sensor5/temp/#"
	benchFilterDenied  = "site0/line1/+/sensor6/temp/#"
)

func BenchmarkAllows(b *testing.B) {
	for _, n := range benchSizes {
		bound := mustCompile(b, ContextMQTT, benchPerms(n)...).Bind("bob", "42")
		if !bound.Allows(benchTopicAllowed, OpRead) || bound.Allows(benchTopicDenied, OpRead) {
			b.Fatalf("perms=%d: the benchmark topics do not get the expected answers", n)
		}
		for _, c := range []struct {
			name  string
			topic string
		}{{"allowed", benchTopicAllowed}, {"denied", benchTopicDenied}} {
			b.Run(fmt.Sprintf("perms=%d/%s", n, c.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					bound.Allows(c.topic, OpRead)
				}
			})
		}
	}
}

func BenchmarkCovers(b *testing.B) {
	for _, n := range benchSizes {
		bound := mustCompile(b, ContextMQTT, benchPerms(n)...).Bind("bob", "42")
		if !bound.Covers(benchFilterCovered) || bound.Covers(benchFilterDenied) {
			b.Fatalf("perms=%d: the benchmark filters do not get the expected answers", n)
		}
		for _, c := range []struct {
			name   string
			filter string
		}{{"covered", benchFilterCovered}, {"denied", benchFilterDenied}} {
			b.Run(fmt.Sprintf("perms=%d/%s", n, c.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					bound.Covers(c.filter)
				}
			})
		}
	}
}

func BenchmarkCompile(b *testing.B) {
	for _, n := range benchSizes[:2] {
		perms := benchPerms(n)
		b.Run(fmt.Sprintf("perms=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Compile(ContextMQTT, perms); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkBind(b *testing.B) {
	m := mustCompile(b, ContextMQTT, benchPerms(1000)...)
	b.ReportAllocs()
	for b.Loop() {
		m.Bind("bob", "42")
	}
}
