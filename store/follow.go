package store

import (
	"context"
	"time"
)

// Follow keeps a cache in step with the change feed: it calls reload for
// every event match accepts and for every KindReset (a restore, or missed
// events), until ctx ends or events is closed. A failed reload is retried
// with a backoff doubling from minRetry to maxRetry (a newer matching
// event retries at once); onError hears of each failure and the delay
// before the next try. The caller keeps serving what it loaded last
// meanwhile: dropping a cache because Redis blinked would do more harm
// than serving it a little longer.
func Follow(ctx context.Context, events <-chan Event, match func(Event) bool, reload func(context.Context) error,
	minRetry, maxRetry time.Duration, onError func(err error, retryIn time.Duration)) {
	var retry *time.Timer
	var retryC <-chan time.Time
	backoff := minRetry
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-events:
			if !ok {
				return
			}
			if e.Kind != KindReset && !match(e) {
				continue
			}
		case <-retryC:
		}
		err := reload(ctx)
		if err == nil {
			backoff, retryC = minRetry, nil
			continue
		}
		if ctx.Err() != nil {
			return
		}
		onError(err, backoff)
		if retry == nil {
			retry = time.NewTimer(backoff)
		} else {
			retry.Reset(backoff)
		}
		retryC = retry.C
		backoff = min(2*backoff, maxRetry)
	}
}
