package main

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// progress prints one status line per second to stderr while a scenario
// runs, so a long run shows it is alive and how far it got. Scenarios
// set the status function as they move from phase to phase.
type progress struct {
	w      io.Writer
	name   string
	start  time.Time
	status atomic.Pointer[func() string]
	stopCh chan struct{}
	done   chan struct{}
}

// startProgress starts the once-per-second line; with quiet it prints
// nothing.
func startProgress(w io.Writer, name string, quiet bool) *progress {
	p := &progress{w: w, name: name, start: time.Now(), stopCh: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		if quiet {
			<-p.stopCh
			return
		}
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-p.stopCh:
				return
			case <-t.C:
				if f := p.status.Load(); f != nil {
					fmt.Fprintf(p.w, "warden-bench: [%s %3.0fs] %s\n", p.name, time.Since(p.start).Seconds(), (*f)())
				}
			}
		}
	}()
	return p
}

// set replaces the status function; f runs on the progress goroutine,
// so it must read shared counters atomically.
func (p *progress) set(f func() string) { p.status.Store(&f) }

// stop ends the status lines.
func (p *progress) stop() {
	close(p.stopCh)
	<-p.done
}
