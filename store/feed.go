package store

import (
	"context"
	"sync"
)

// maxQueued bounds the events held for one slow consumer; past it the
// queue collapses into one KindReset, so a stuck consumer costs bounded
// memory and never blocks a writer.
const maxQueued = 4096

// feed fans committed events out to Watch consumers of this process.
type feed struct {
	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	closed bool
}

type subscriber struct {
	mu     sync.Mutex
	queue  []Event
	notify chan struct{} // capacity 1: "the queue is non-empty"
}

func newFeed() *feed { return &feed{subs: make(map[*subscriber]struct{})} }

// subscribe returns a channel of events until ctx is done or the feed
// closes.
func (f *feed) subscribe(ctx context.Context) (<-chan Event, error) {
	s := &subscriber{notify: make(chan struct{}, 1)}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, ErrClosed
	}
	f.subs[s] = struct{}{}
	f.mu.Unlock()

	out := make(chan Event)
	go func() {
		defer close(out)
		defer f.remove(s)
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-s.notify:
				if !ok {
					return
				}
			}
			for {
				s.mu.Lock()
				if len(s.queue) == 0 {
					s.mu.Unlock()
					break
				}
				e := s.queue[0]
				s.queue = s.queue[1:]
				s.mu.Unlock()
				select {
				case out <- e:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

func (f *feed) remove(s *subscriber) {
	f.mu.Lock()
	delete(f.subs, s)
	f.mu.Unlock()
}

// publish queues events for every consumer without blocking.
func (f *feed) publish(events ...Event) {
	if len(events) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	for s := range f.subs {
		s.mu.Lock()
		if len(s.queue)+len(events) > maxQueued {
			last := events[len(events)-1]
			s.queue = []Event{{Kind: KindReset, Version: last.Version}}
		} else {
			s.queue = append(s.queue, events...)
		}
		s.mu.Unlock()
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
}

// close ends every consumer's channel once its queue is drained or its
// context is done.
func (f *feed) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	f.closed = true
	for s := range f.subs {
		close(s.notify)
	}
}
