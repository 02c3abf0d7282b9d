package cache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// Client is a rueidis client that aside connected itself, so that it owns the
// client's invalidation stream: rueidis hands every client-side caching
// invalidation (and a nil "flush everything" whenever a connection drops) to
// the ClientOption.OnInvalidations hook, which is fixed when the client is
// built. Client fans that stream out to every [Cache] built on it, which is how
// the decoded copies a Cache keeps in process memory learn that Redis changed.
//
// Many caches (of different types and namespaces) share one Client. A Client is
// safe for concurrent use; Close it when the application stops.
type Client struct {
	rc       rueidis.Client
	tracking bool
	clock    *clock
	closed   sync.Once
	// closing is cancelled by Close: background work of the caches stops.
	closing context.Context
	cancel  context.CancelFunc

	mu sync.RWMutex // guards subs
	// subs maps a namespace to the caches that serve it. Invalidations are
	// dispatched by the namespace part of the key (up to the first ':').
	subs map[string][]invalidator
	// all receives every invalidation, whatever its key (a flush-all reaches
	// every cache through it too).
	all []invalidator
}

// invalidator is the part of a Cache the client talks to.
type invalidator interface {
	invalidateKey(key string)
	invalidateAll()
	// waitBackground waits for the cache's background work, which the
	// client's closing context has told to stop.
	waitBackground()
}

// Connect builds a rueidis client from opt and returns it wrapped as a Client.
//
// Connect installs its own OnInvalidations hook (calling opt.OnInvalidations
// too, when set). When opt.RetryDelay is nil it caps the retries rueidis makes
// of read commands on network errors at [DefaultMaxRetries], because rueidis
// otherwise retries them until the context ends, and a Get without a deadline
// against a dead Redis would never return.
//
// When the server refuses RESP3 or CLIENT TRACKING (some managed services and
// proxies do), Connect falls back to a client without client-side caching
// (rueidis DisableCache) instead of failing; [Client.Tracking] then reports
// false and every cache built on it reads through Redis on each Get, never from
// an in-process copy that nothing would keep fresh.
func Connect(opt rueidis.ClientOption) (*Client, error) {
	c := &Client{subs: make(map[string][]invalidator)}
	userHook := opt.OnInvalidations
	opt.OnInvalidations = func(msgs []rueidis.RedisMessage) {
		c.dispatch(msgs)
		if userHook != nil {
			userHook(msgs)
		}
	}
	if opt.RetryDelay == nil {
		opt.RetryDelay = func(attempts int, _ rueidis.Completed, _ error) time.Duration {
			if attempts > DefaultMaxRetries {
				return -1
			}
			return time.Duration(attempts) * 10 * time.Millisecond
		}
	}
	rc, err := rueidis.NewClient(opt)
	if err != nil && errors.Is(err, rueidis.ErrNoCache) && !opt.DisableCache {
		opt.DisableCache = true
		rc, err = rueidis.NewClient(opt)
	}
	if err != nil {
		return nil, fmt.Errorf("cache: connect: %w", classify(err))
	}
	c.rc = rc
	c.tracking = !opt.DisableCache
	c.clock = startClock()
	c.closing, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// DefaultMaxRetries is how many times a read command is retried on a network
// error when the ClientOption given to [Connect] sets no RetryDelay.
const DefaultMaxRetries = 3

// Rueidis returns the underlying rueidis client, for commands aside does not
// wrap. Writes made through it are seen by every cache: Redis pushes their
// invalidations like any other.
func (c *Client) Rueidis() rueidis.Client { return c.rc }

// Tracking reports whether client-side caching is on. When it is off, caches
// keep no in-process copies.
func (c *Client) Tracking() bool { return c.tracking }

// Close closes the connections. Caches built on the client stop working.
// It is safe to call more than once.
func (c *Client) Close() {
	c.closed.Do(func() {
		c.cancel()
		c.mu.RLock()
		for _, inv := range c.all {
			inv.waitBackground()
		}
		c.mu.RUnlock()
		c.rc.Close()
		c.clock.close()
	})
}

func (c *Client) subscribe(namespace string, inv invalidator) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.subs[namespace] = append(c.subs[namespace], inv)
	c.all = append(c.all, inv)
}

// dispatch runs on a rueidis connection's reading goroutine: it must be quick
// and must not call Redis.
func (c *Client) dispatch(msgs []rueidis.RedisMessage) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if msgs == nil {
		for _, inv := range c.all {
			inv.invalidateAll()
		}
		return
	}
	for i := range msgs {
		key, err := msgs[i].ToString()
		if err != nil {
			continue
		}
		ns, _, ok := strings.Cut(key, ":")
		if !ok {
			continue
		}
		for _, inv := range c.subs[ns] {
			inv.invalidateKey(key)
		}
	}
}
