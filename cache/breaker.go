package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// breaker is a circuit breaker in front of Redis for one cache.
//
// Closed, every call goes to Redis. After threshold consecutive calls failed
// because Redis was unavailable, it opens: calls skip Redis (and its timeouts)
// for cooldown. Then it lets one call through as a probe (half-open): its
// success closes the breaker, its failure opens it again.
type breaker struct {
	open atomic.Bool // fast path: false while closed

	mu        sync.Mutex
	failures  int   // consecutive; guarded by mu
	until     int64 // Unix nanoseconds the cooldown ends; guarded by mu
	probing   bool  // a probe is in flight; guarded by mu
	threshold int
	cooldown  time.Duration
	now       func() time.Time
	trips     atomic.Uint64
	// log and namespace: where transitions are logged (WithLogger).
	log       *slog.Logger
	namespace string
}

// errCircuitOpen is returned while the breaker is open.
var errCircuitOpen = fmt.Errorf("%w: circuit open after repeated failures", ErrUnavailable)

// allow reports whether a call may go to Redis.
func (b *breaker) allow() bool {
	if b.threshold <= 0 || !b.open.Load() {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open.Load() {
		return true
	}
	if b.probing || b.now().UnixNano() < b.until {
		return false
	}
	b.probing = true
	logEvent(b.log, slog.LevelDebug, "cache: Redis-down breaker half-open: one call probes Redis", b.namespace, nil, nil)
	return true
}

// record tells the breaker how a call that went to Redis ended.
//
// A call that ran into a deadline counts as a failure, like a connection
// error: against a Redis that hangs, every request ends at its deadline, and
// those are exactly the timeouts the breaker exists to stop paying. A call
// whose caller gave up (context.Canceled) says nothing about Redis: it
// neither counts nor resets the count, and a probe that ends so leaves the
// breaker open for the next probe.
func (b *breaker) record(err error) {
	if b.threshold <= 0 {
		return
	}
	switch {
	case err == nil:
		if !b.open.Load() {
			b.mu.Lock()
			b.failures = 0
			b.mu.Unlock()
			return
		}
		b.mu.Lock()
		b.failures, b.probing = 0, false
		closed := b.open.Swap(false)
		b.mu.Unlock()
		if closed {
			logEvent(b.log, slog.LevelInfo, "cache: Redis-down breaker closed: Redis answers again", b.namespace, nil, nil)
		}
		return
	case errors.Is(err, errCircuitOpen):
		return
	case errors.Is(err, context.Canceled):
		b.mu.Lock()
		b.probing = false
		b.mu.Unlock()
		return
	case tryAgain(err):
		// A slot of a cluster half moved: its node answered, and the
		// call may be retried, but Redis is up.
		b.record(nil)
		return
	case errors.Is(err, ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
	default:
		// Redis answered, with an error of its own: it is up.
		b.record(nil)
		return
	}
	b.mu.Lock()
	b.failures++
	var opened, reopened bool
	failures := b.failures
	if b.probing || b.failures >= b.threshold {
		reopened = b.probing
		b.probing = false
		if !b.open.Swap(true) {
			b.trips.Add(1)
			opened = true
		}
		b.until = b.now().Add(b.cooldown).UnixNano()
	}
	b.mu.Unlock()
	switch {
	case opened:
		logEvent(b.log, slog.LevelWarn, "cache: Redis-down breaker opened: calls skip Redis for the cooldown", b.namespace, err, nil,
			slog.Int("failures", failures), slog.Duration("cooldown", b.cooldown))
	case reopened:
		logEvent(b.log, slog.LevelDebug, "cache: Redis-down breaker probe failed: open for another cooldown", b.namespace, err, nil)
	}
}

// tryAgain reports whether err is Redis' TRYAGAIN: a command of several keys
// of a slot being moved, when only some of them are on the node.
func tryAgain(err error) bool {
	var re *rueidis.RedisError
	return errors.As(err, &re) && re.IsTryAgain()
}
