package cache_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/asidetest"
	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/internal/envelope"
	"github.com/aside-go/aside/ttlpolicy"
)

var refreshModes = map[string]cache.RefreshMode{"background": cache.RefreshBackground, "sync": cache.RefreshSync}

// failingSource is a loader of version 1 that fails while failing is set,
// counting its calls (across every cache it serves).
type failingSource struct {
	calls   atomic.Int64
	failing atomic.Bool
}

var errSourceDown = errors.New("source down")

func (s *failingSource) load(context.Context, string) (int64, error) {
	s.calls.Add(1)
	if s.failing.Load() {
		return 0, errSourceDown
	}
	return 1, nil
}

// failSafeOpts are the options of the fail-safe tests: values due after 5
// minutes of clock, hard TTL 10 minutes.
func failSafeOpts(clock *asidetest.Clock, src *failingSource, mode cache.RefreshMode, more func(*cache.Options[string, int64])) func(*cache.Options[string, int64]) {
	return func(o *cache.Options[string, int64]) {
		o.TTL = ttlpolicy.Fixed(10 * time.Minute).WithSoft(0.5)
		o.Now = clock.Now
		o.Refresh = mode
		o.Loader = src.load
		o.FailSafe = true
		if more != nil {
			more(o)
		}
	}
}

// TestFailSafeServesTheValueAtHand: under RefreshSync with FailSafe, a
// refresh whose loader fails serves the value at hand, flagged and counted;
// without FailSafe the Get fails (TestStaleIfError).
func TestFailSafeServesTheValueAtHand(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	clock := asidetest.NewClock(time.Now())
	src := &failingSource{}
	c := versionCache(t, connect(t, shared), namespace(t), nil, failSafeOpts(clock, src, cache.RefreshSync, nil))
	warm(t, c, "k")
	src.failing.Store(true)
	clock.Add(6 * time.Minute)
	var from cache.Source
	v, err := c.Get(ctx, "k", cache.SourceOf(&from))
	require.NoError(t, err)
	assert.EqualValues(t, 1, v)
	assert.Equal(t, cache.SourceStale, from)
	s := c.Stats()
	assert.EqualValues(t, 1, s.FailSafeServed)
	assert.EqualValues(t, 1, s.StaleServed)
	assert.EqualValues(t, 1, s.RefreshErrors)
}

// TestFailSafeThrottle: after a refresh failed, no process calls the
// loader for the key before the throttle ends — well past the claim's
// LeaseTTL, where a failed refresh used to come due again — and the value
// at hand is served meanwhile; then one refresh is tried again.
func TestFailSafeThrottle(t *testing.T) {
	t.Parallel()
	for name, mode := range refreshModes {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			ns := namespace(t)
			clock := asidetest.NewClock(time.Now())
			src := &failingSource{}
			opts := failSafeOpts(clock, src, mode, func(o *cache.Options[string, int64]) {
				o.FailSafeThrottle = time.Minute // LeaseTTL is 5s
			})
			a := versionCache(t, connect(t, shared), ns, nil, opts)
			b := versionCache(t, connect(t, shared), ns, nil, opts)
			warm(t, a, "k")
			src.calls.Store(0)
			src.failing.Store(true)
			// Each read visits Redis (SkipLocal), so that what it serves
			// is the fleet's state, whatever pushes are still on their
			// way; AwaitWrites waits for a background refresh.
			read := func(c *cache.Cache[string, int64], what string) {
				t.Helper()
				v, err := c.Get(ctx, "k", cache.SkipLocal())
				require.NoError(t, err, what)
				assert.EqualValues(t, 1, v, what)
				require.NoError(t, c.AwaitWrites(ctx, "k"))
			}

			clock.Add(6 * time.Minute) // due
			read(a, "a, due: its refresh fails")
			assert.EqualValues(t, 1, src.calls.Load())
			read(b, "b, right after")
			clock.Add(30 * time.Second) // past LeaseTTL, within the throttle
			read(a, "a, throttled")
			read(b, "b, throttled")
			assert.EqualValues(t, 1, src.calls.Load(), "no process calls the loader during the throttle")
			assert.EqualValues(t, 1, a.Stats().RefreshErrors+b.Stats().RefreshErrors)

			clock.Add(31 * time.Second) // past the throttle
			read(b, "b, after the throttle")
			assert.EqualValues(t, 2, src.calls.Load(), "one more try after the throttle")
		})
	}
}

// TestFailSafeMaxAge: a value past its soft expiry by more than
// FailSafeMaxAge is refreshed synchronously in either mode and never
// served stale: the failing loader fails the Get. A younger value is
// served, and its refresh cuts its TTL in Redis to the end of its maximum
// age, so that no process serves it past that.
func TestFailSafeMaxAge(t *testing.T) {
	t.Parallel()
	for name, mode := range refreshModes {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			ns := namespace(t)
			clock := asidetest.NewClock(time.Now())
			src := &failingSource{}
			c := versionCache(t, connect(t, shared), ns, nil, failSafeOpts(clock, src, mode, func(o *cache.Options[string, int64]) {
				o.FailSafeMaxAge = time.Minute
			}))
			rc := other(t, shared.ClientOption())
			warm(t, c, "young")
			warm(t, c, "old")
			assert.Greater(t, rawPTTL(t, rc, ns+":young"), int64(9*time.Minute/time.Millisecond))
			src.failing.Store(true)

			clock.Add(5*time.Minute + 30*time.Second) // 30s past the soft expiry
			var from cache.Source
			v, err := c.Get(ctx, "young", cache.SourceOf(&from))
			require.NoError(t, err, "within its maximum age: served")
			assert.EqualValues(t, 1, v)
			assert.Equal(t, cache.SourceStale, from)
			require.NoError(t, c.AwaitWrites(ctx, "young"))
			pttl := rawPTTL(t, rc, ns+":young")
			assert.Positive(t, pttl)
			assert.LessOrEqual(t, pttl, int64(30_000), "the TTL ends with the maximum age")

			clock.Add(time.Minute) // "old" is 90s past its soft expiry
			calls := src.calls.Load()
			_, err = c.Get(ctx, "old", cache.SourceOf(&from))
			require.ErrorIs(t, err, errSourceDown, "too old to be served stale")
			assert.Equal(t, cache.SourceNone, from)
			assert.Equal(t, calls+1, src.calls.Load(), "refreshed synchronously")
			_, held := rawGet(t, rc, ns+":old")
			assert.False(t, held, "its refresh failed: deleted, so that no process serves it")
		})
	}
}

// TestNotModified: a refresh's loader sees the value it replaces through
// Previous and says ErrNotModified; the entry keeps its payload bytes and
// gets a fresh soft expiry and TTL, for every process.
func TestNotModified(t *testing.T) {
	t.Parallel()
	for name, mode := range refreshModes {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			ns := namespace(t)
			clock := asidetest.NewClock(time.Now())
			var mu sync.Mutex
			var previous []int64
			var calls atomic.Int64
			loaderFn := func(ctx context.Context, _ string) (int64, error) {
				calls.Add(1)
				p, ok := cache.Previous[int64](ctx)
				if !ok {
					return 1, nil
				}
				mu.Lock()
				previous = append(previous, p)
				mu.Unlock()
				if _, wrongType := cache.Previous[string](ctx); wrongType {
					t.Error("Previous of another type than the cache's")
				}
				return 0, fmt.Errorf("etag matches: %w", cache.ErrNotModified)
			}
			c := versionCache(t, connect(t, shared), ns, nil, func(o *cache.Options[string, int64]) {
				o.TTL = ttlpolicy.Fixed(10 * time.Minute).WithSoft(0.5)
				o.Now = clock.Now
				o.Refresh = mode
				o.Loader = loaderFn
			})
			rc := other(t, shared.ClientOption())
			warm(t, c, "k")
			mu.Lock()
			assert.Empty(t, previous, "a miss has no previous value")
			mu.Unlock()
			before, ok := rawGet(t, rc, ns+":k")
			require.True(t, ok)
			ok, err := c.Expire(ctx, "k", time.Minute)
			require.NoError(t, err)
			require.True(t, ok)
			require.LessOrEqual(t, rawPTTL(t, rc, ns+":k"), int64(60_000))

			clock.Add(6 * time.Minute)
			v, err := c.Get(ctx, "k")
			require.NoError(t, err)
			assert.EqualValues(t, 1, v)
			require.NoError(t, c.AwaitWrites(ctx, "k"))
			s := c.Stats()
			assert.EqualValues(t, 1, s.NotModified)
			assert.EqualValues(t, 1, s.Refreshes)
			assert.Zero(t, s.LoadErrors)
			assert.Zero(t, s.RefreshErrors)
			mu.Lock()
			assert.Equal(t, []int64{1}, previous, "the loader saw the value it refreshes")
			mu.Unlock()

			after, ok := rawGet(t, rc, ns+":k")
			require.True(t, ok)
			assert.Equal(t, before[envelope.HeaderSize:], after[envelope.HeaderSize:], "the same payload bytes")
			assert.NotEqual(t, before[:envelope.HeaderSize], after[:envelope.HeaderSize], "a new soft expiry")
			assert.Greater(t, rawPTTL(t, rc, ns+":k"), int64(60_000), "the policy's TTL again")

			// Fresh for every process: read from Redis, not due.
			n := calls.Load()
			var from cache.Source
			other := versionCache(t, connect(t, shared), ns, nil, func(o *cache.Options[string, int64]) {
				o.TTL = ttlpolicy.Fixed(10 * time.Minute).WithSoft(0.5)
				o.Now = clock.Now
				o.Refresh = mode
				o.Loader = loaderFn
			})
			v, err = other.Get(ctx, "k", cache.SourceOf(&from))
			require.NoError(t, err)
			assert.EqualValues(t, 1, v)
			assert.Equal(t, cache.SourceRedis, from)
			assert.Equal(t, n, calls.Load())
		})
	}
}

// TestNotModifiedOutsideARefresh: ErrNotModified from the load of a
// missing key, which has no previous value, is a load error.
func TestNotModifiedOutsideARefresh(t *testing.T) {
	t.Parallel()
	c := versionCache(t, connect(t, shared), namespace(t), nil, func(o *cache.Options[string, int64]) {
		o.Loader = func(ctx context.Context, _ string) (int64, error) {
			if _, ok := cache.Previous[int64](ctx); ok {
				t.Error("a miss has no previous value")
			}
			return 0, cache.ErrNotModified
		}
	})
	_, err := c.Get(testContext(t), "k")
	require.ErrorIs(t, err, cache.ErrNotModified)
	assert.EqualValues(t, 1, c.Stats().LoadErrors)
	assert.Zero(t, c.Stats().NotModified)
	_, ok := cache.Previous[int64](context.Background())
	assert.False(t, ok, "not inside a loader call")
}
