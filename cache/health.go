package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Ping sends PING to every Redis node, within ctx and at most
// DefaultPingTimeout when ctx has no deadline, and returns nil when every
// node answered: a readiness probe's question. Otherwise it returns an error
// wrapping [ErrUnavailable] (not connected yet, or a node did not answer, the
// error of the first named) or [ErrClosed]. Under FailOpen an outage shows
// nowhere else to the callers: Gets answer from the loader, Stats count
// RedisErrors and ShortCircuits, and [WithLogger] logs the breaker.
func (c *Client) Ping(ctx context.Context) error {
	if c.isClosed.Load() {
		return fmt.Errorf("cache: ping: %w", ErrClosed)
	}
	rc, ok := c.redis()
	if !ok {
		return fmt.Errorf("cache: ping: %w", errNotConnected)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultPingTimeout)
		defer cancel()
	}
	nodes := rc.Nodes()
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for addr, n := range nodes {
		wg.Go(func() {
			if err := n.Do(ctx, n.B().Ping().Build()).Error(); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", addr, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("cache: ping: %w", classifyErr(errors.Join(errs...)))
	}
	return nil
}

// DefaultPingTimeout bounds [Client.Ping] when its context has no deadline.
const DefaultPingTimeout = time.Second

// Status is what a Client knows of Redis now, without a round trip.
type Status struct {
	// Connected: the client has reached Redis (see [Connect]).
	Connected bool
	// Tracking: client-side caching is on (see [Client.Tracking]).
	Tracking bool
	// Closed: Close was called.
	Closed bool
	// LastHeard is when the last heartbeat round that every node answered
	// began: every 200ms while Redis answers. Zero while not connected,
	// and without tracking (no heartbeat runs then; use Ping).
	LastHeard time.Time
}

// Status reports what the client knows of Redis now. A Client whose
// LastHeard is older than a second has not heard from every node for that
// long: its caches serve no copies (MaxSilence, 1s by default), and their
// reads meet Redis's silence within their time budget.
func (c *Client) Status() Status {
	s := Status{Connected: c.Connected(), Tracking: c.Tracking(), Closed: c.isClosed.Load()}
	if s.Connected && s.Tracking {
		s.LastHeard = time.Unix(0, c.heard.Load())
	}
	return s
}
