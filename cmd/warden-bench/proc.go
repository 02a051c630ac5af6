package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is Linux's USER_HZ, the unit of utime and stime in
// /proc/PID/stat. It is 100 on every architecture Go supports on Linux;
// reading it properly (sysconf) would need cgo.
const clockTicks = 100

// procSample is what /proc tells about one process at one moment.
type procSample struct {
	cpu    time.Duration // user + system CPU time since the process started
	rssKiB int64         // resident set size (VmRSS)
}

// readProc reads the CPU time and resident memory of process pid ("self"
// when pid is 0).
func readProc(pid int) (procSample, error) {
	dir := "/proc/self"
	if pid > 0 {
		dir = "/proc/" + strconv.Itoa(pid)
	}
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return procSample{}, err
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields we want are counted from the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return procSample{}, fmt.Errorf("%s/stat: unexpected format", dir)
	}
	f := strings.Fields(string(stat[i+1:]))
	// After ')': state is field 3, utime field 14, stime field 15.
	if len(f) < 13 {
		return procSample{}, fmt.Errorf("%s/stat: too few fields", dir)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return procSample{}, fmt.Errorf("%s/stat: bad utime/stime", dir)
	}
	s := procSample{cpu: time.Duration(utime+stime) * time.Second / clockTicks}

	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return procSample{}, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB"))
			s.rssKiB, _ = strconv.ParseInt(kb, 10, 64)
			break
		}
	}
	return s, nil
}

// meter measures a process over a phase of a scenario: CPU time spent
// between start and stop, and the largest resident memory seen (sampled
// four times a second, and at both ends).
type meter struct {
	pid   int
	start procSample
	began time.Time

	mu     sync.Mutex
	maxRSS int64
	err    error
	stopCh chan struct{}
	done   chan struct{}
}

// startMeter begins measuring pid (0: this process).
func startMeter(pid int) *meter {
	m := &meter{pid: pid, began: time.Now(), stopCh: make(chan struct{}), done: make(chan struct{})}
	m.start, m.err = readProc(pid)
	m.maxRSS = m.start.rssKiB
	go func() {
		defer close(m.done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-m.stopCh:
				return
			case <-t.C:
				m.sample()
			}
		}
	}()
	return m
}

func (m *meter) sample() procSample {
	s, err := readProc(m.pid)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		if m.err == nil {
			m.err = err
		}
		return s
	}
	m.maxRSS = max(m.maxRSS, s.rssKiB)
	return s
}

// procUsage is what a meter measured.
type procUsage struct {
	cpu      time.Duration // CPU time spent during the phase
	wall     time.Duration // length of the phase
	rssKiB   int64         // resident memory at the end of the phase
	maxKiB   int64         // largest resident memory seen
	startKiB int64         // resident memory at the start of the phase
	err      error         // the first /proc read that failed, if any
}

// stop ends the phase.
func (m *meter) stop() procUsage {
	close(m.stopCh)
	<-m.done
	end := m.sample()
	m.mu.Lock()
	defer m.mu.Unlock()
	return procUsage{cpu: end.cpu - m.start.cpu, wall: time.Since(m.began), rssKiB: end.rssKiB, maxKiB: m.maxRSS, startKiB: m.start.rssKiB, err: m.err}
}

// settleQuiet is how long a broker's resident memory must not fall for
// settle to call it settled: longer than warden's --memory-return-interval
// (5 s), so a broker that gives a burst's heap back once quiet has done
// so by then.
const settleQuiet = 6 * time.Second

// settle waits until the resident memory of process pid has not fallen by
// a MiB or more for settleQuiet, or limit has passed, and returns how long
// it waited. A run that starts while the broker still holds what an
// earlier run freed (Go returns it minutes later unless told otherwise)
// would count that memory as its own, or reuse it and count too little.
func settle(ctx context.Context, pid int, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	s, err := readProc(pid)
	if err != nil {
		return 0, err
	}
	low, lowAt := s.rssKiB, start
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for time.Since(lowAt) < settleQuiet && time.Since(start) < limit {
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-t.C:
		}
		if s, err = readProc(pid); err != nil {
			return time.Since(start), err
		}
		if s.rssKiB <= low-1024 {
			low, lowAt = s.rssKiB, time.Now()
		}
	}
	return time.Since(start), nil
}
