package credential

import (
	"fmt"
	"testing"
	"time"
)

func newTestLockout(o LockoutOptions) (*Lockout, *fakeClock) {
	// The injected clock (token_test.go's): these tests never sleep.
	c := newFakeClock(time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC))
	o.Now = c.now
	return NewLockout(o), c
}

func wantBlock(t *testing.T, l *Lockout, user, remote string, want Block) {
	t.Helper()
	if got, _ := l.Check(user, remote); got != want {
		t.Fatalf("Check(%q, %q) = %v, want %v", user, remote, got, want)
	}
}

func failN(l *Lockout, n int, user, remote string) {
	for range n {
		l.Fail(user, remote)
	}
}

func TestLockoutPairFirst(t *testing.T) {
	t.Parallel()
	l, _ := newTestLockout(LockoutOptions{MaxPerUserIP: 3, MaxPerUser: 10, MaxPerIP: 50})
	failN(l, 2, "dev", "203.0.113.9:40000")
	wantBlock(t, l, "dev", "203.0.113.9:40001", NotBlocked)
	l.Fail("dev", "203.0.113.9:40002")
	// The attacker's address is blocked for this username...
	wantBlock(t, l, "dev", "203.0.113.9", BlockedUser)
	// ...but the device's own address is not, nor another username.
	wantBlock(t, l, "dev", "198.51.100.7:1883", NotBlocked)
	wantBlock(t, l, "other", "203.0.113.9:40000", NotBlocked)
}

func TestLockoutUserTotalAcrossAddresses(t *testing.T) {
	t.Parallel()
	l, _ := newTestLockout(LockoutOptions{MaxPerUserIP: 3, MaxPerUser: 10, MaxPerIP: 50})
	// Two failures from each of five addresses: no pair reaches 3, the
	// username's total reaches 10.
	for i := range 5 {
		failN(l, 2, "dev", fmt.Sprintf("203.0.113.%d:1", i))
		if i < 4 {
			wantBlock(t, l, "dev", "198.51.100.7:1", NotBlocked)
		}
	}
	wantBlock(t, l, "dev", "198.51.100.7:1", BlockedUser)
	wantBlock(t, l, "other", "198.51.100.7:1", NotBlocked)
}

func TestLockoutAddress(t *testing.T) {
	t.Parallel()
	l, c := newTestLockout(LockoutOptions{MaxPerUserIP: 3, MaxPerUser: 10, MaxPerIP: 5, Backoff: time.Minute})
	for i := range 5 {
		l.Fail(fmt.Sprint("user", i), "203.0.113.9:1")
	}
	b, left := l.Check("never-tried", "203.0.113.9:2")
	if b != BlockedAddress || left != time.Minute {
		t.Fatalf("Check = %v, %v; want BlockedAddress for 1m", b, left)
	}
	c.advance(40 * time.Second)
	if _, left := l.Check("never-tried", "203.0.113.9:2"); left != 20*time.Second {
		t.Fatalf("remaining %v, want 20s", left)
	}
	wantBlock(t, l, "user0", "198.51.100.7:1", NotBlocked)
	c.advance(20 * time.Second)
	wantBlock(t, l, "user0", "203.0.113.9:1", NotBlocked)
}

func TestLockoutWindowAndBackoff(t *testing.T) {
	t.Parallel()
	l, c := newTestLockout(LockoutOptions{MaxPerUserIP: 3, Window: time.Minute, Backoff: 5 * time.Minute})
	failN(l, 2, "dev", "203.0.113.9")
	c.advance(61 * time.Second) // the window passed: counting starts again
	failN(l, 2, "dev", "203.0.113.9")
	wantBlock(t, l, "dev", "203.0.113.9", NotBlocked)
	l.Fail("dev", "203.0.113.9")
	wantBlock(t, l, "dev", "203.0.113.9", BlockedUser)
	c.advance(5*time.Minute - time.Second)
	wantBlock(t, l, "dev", "203.0.113.9", BlockedUser)
	c.advance(time.Second)
	wantBlock(t, l, "dev", "203.0.113.9", NotBlocked)
}

func TestLockoutSucceedForgetsOnlyThePair(t *testing.T) {
	t.Parallel()
	l, _ := newTestLockout(LockoutOptions{MaxPerUserIP: 3, MaxPerUser: 5, MaxPerIP: 50})
	failN(l, 2, "dev", "198.51.100.7")
	l.Succeed("dev", "198.51.100.7")
	failN(l, 2, "dev", "198.51.100.7")
	wantBlock(t, l, "dev", "198.51.100.7", NotBlocked) // 2 since the success
	// The username's total kept all four: one more from anywhere blocks it.
	l.Fail("dev", "203.0.113.1")
	wantBlock(t, l, "dev", "192.0.2.1", BlockedUser)
}

func TestLockoutLock(t *testing.T) {
	t.Parallel()
	l, c := newTestLockout(LockoutOptions{Backoff: time.Minute})
	l.Lock("admin")
	wantBlock(t, l, "admin", "192.0.2.1", BlockedUser)
	wantBlock(t, l, "admin", "[2001:db8::1]:443", BlockedUser)
	wantBlock(t, l, "alice", "192.0.2.1", NotBlocked)
	c.advance(time.Minute)
	wantBlock(t, l, "admin", "192.0.2.1", NotBlocked)
}

func TestLockoutAddressForms(t *testing.T) {
	t.Parallel()
	l, _ := newTestLockout(LockoutOptions{MaxPerUserIP: 2, MaxPerIP: 1000})
	// An IPv6 host holds a /64: its addresses count together.
	l.Fail("dev", "[2001:db8:1:2::1]:5000")
	l.Fail("dev", "[2001:db8:1:2:ffff::9]:6000")
	wantBlock(t, l, "dev", "2001:db8:1:2::77", BlockedUser)
	wantBlock(t, l, "dev", "[2001:db8:1:3::1]:5000", NotBlocked)
	// An IPv4-mapped IPv6 address is the IPv4 address; the port is ignored.
	l.Fail("cam", "[::ffff:192.0.2.5]:1")
	l.Fail("cam", "192.0.2.5:2")
	wantBlock(t, l, "cam", "192.0.2.5", BlockedUser)
}

func TestLockoutOff(t *testing.T) {
	t.Parallel()
	l, _ := newTestLockout(LockoutOptions{MaxPerUserIP: -1, MaxPerUser: -1, MaxPerIP: -1})
	failN(l, 1000, "dev", "192.0.2.1")
	wantBlock(t, l, "dev", "192.0.2.1", NotBlocked)
}

// TestLockoutMemoryBounded: a spray of usernames from many addresses
// (long names included) keeps each table within MaxEntries, and the
// eviction keeps what blocks: the victim's pair and the spraying
// addresses stay blocked.
func TestLockoutMemoryBounded(t *testing.T) {
	t.Parallel()
	const limit = 1000
	l, c := newTestLockout(LockoutOptions{MaxPerUserIP: 3, MaxPerUser: 1000, MaxPerIP: 200, MaxEntries: limit})
	failN(l, 3, "victim", "203.0.113.200")
	long := string(make([]byte, 60_000))
	for i := range 50_000 {
		name := fmt.Sprint("spray-", i)
		if i%1000 == 0 { // now and then a 60 kB one (an MQTT username may be 64 KiB)
			name += long
		}
		l.Fail(name, fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
		if i%10_000 == 0 {
			c.advance(time.Second)
		}
	}
	for name, n := range map[string]int{"pairs": len(l.pairs.m), "users": len(l.users.m), "ips": len(l.ips.m)} {
		if n > limit {
			t.Errorf("%s table holds %d entries, limit %d", name, n, limit)
		}
	}
	wantBlock(t, l, "victim", "203.0.113.200", BlockedUser)
	wantBlock(t, l, "victim", "198.51.100.7", NotBlocked)
}

func BenchmarkLockoutCheck(b *testing.B) {
	l := NewLockout(LockoutOptions{})
	b.ReportAllocs()
	for b.Loop() {
		l.Check("device-0042", "198.51.100.7:51234")
	}
}

// TestLockoutCheckDoesNotAllocate: every CONNECT checks the lockout and
// every successful password login clears its pair, whatever the remote
// address looks like.
func TestLockoutCheckDoesNotAllocate(t *testing.T) {
	l, _ := newTestLockout(LockoutOptions{})
	l.Fail("dev", "192.0.2.1:1")
	for _, remote := range []string{"198.51.100.7:51234", "[2001:db8::1]:8883", "2001:db8::2", "pipe", "@unix"} {
		if n := testing.AllocsPerRun(100, func() { l.Check("dev", remote); l.Succeed("dev", remote) }); n != 0 {
			t.Errorf("Check and Succeed from %q: %v allocations, want 0", remote, n)
		}
	}
	// Something that is no IP address still counts, as itself.
	l.Fail("cam", "pipe")
	l2, _ := newTestLockout(LockoutOptions{MaxPerUserIP: 1})
	l2.Fail("cam", "pipe")
	wantBlock(t, l2, "cam", "pipe", BlockedUser)
	wantBlock(t, l2, "cam", "other-pipe", NotBlocked)
}
