// Package asidetest helps test code that uses aside: a private Redis for a
// test, a Client connected to it, and a clock that drives soft TTLs.
//
//	func TestProductPage(t *testing.T) {
//		client := asidetest.Client(t) // a private redis-server, closed after the test
//		clock := asidetest.NewClock(time.Now())
//		products, err := cache.New(client, cache.Options[int64, Product]{
//			Namespace: "product",
//			TTL:       ttlpolicy.Minutes(5).WithSoft(0.8),
//			Loader:    db.LoadProduct,
//			Now:       clock.Now, // soft expiry follows the test's clock
//			Refresh:   cache.RefreshSync,
//		})
//		...
//		p, err := products.Get(ctx, 42)
//		require.NoError(t, products.AwaitWrites(ctx, 42)) // the write behind the Get
//		clock.Add(4 * time.Minute)                        // due: the next Get refreshes
//	}
//
// The server is a real redis-server (or valkey-server) process on a free
// loopback port, in a directory of its own: tests that each start one run
// in parallel without sharing anything. The binary is, in order, the
// REDIS_SERVER environment variable (a path, e.g. to a valkey-server), then
// redis-server on PATH; a test fails with an install hint when there is
// none.
package asidetest

import (
	"sync"
	"testing"
	"time"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/internal/redistest"
)

// Redis starts a private redis-server for the test, stopped when the test
// ends, and returns its URL (redis://127.0.0.1:<port>), for
// [cache.ConnectURL] or any other client.
func Redis(tb testing.TB) string {
	tb.Helper()
	return "redis://" + redistest.Start(tb, redistest.Config{}).Addr()
}

// Client starts a private redis-server for the test and returns a Client
// connected to it; both are closed when the test ends.
func Client(tb testing.TB, opts ...cache.ConnectOption) *cache.Client {
	tb.Helper()
	return Connect(tb, Redis(tb), opts...)
}

// Connect returns a Client connected to url (a second "process" on the
// same server, say), closed when the test ends.
func Connect(tb testing.TB, url string, opts ...cache.ConnectOption) *cache.Client {
	tb.Helper()
	client, err := cache.ConnectURL(url, append([]cache.ConnectOption{cache.RequireRedis()}, opts...)...)
	if err != nil {
		tb.Fatalf("asidetest: connect to %s: %v", url, err)
	}
	tb.Cleanup(client.Close)
	return client
}

// Clock is a clock a test sets: give its Now to [cache.Options].Now, and
// soft expiries (refresh-ahead, stale-if-error) come due when the test moves
// it with Add, as do the expiries of the copies in process memory. The keys
// in Redis expire on Redis's own clock. It is safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock that reads start until moved.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Add moves the clock forward by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
