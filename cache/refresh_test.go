package cache_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/asidetest"
	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/ttlpolicy"
)

func refreshCache(t testing.TB, client *cache.Client, ns string, src *source, clock *asidetest.Clock, mode cache.RefreshMode) *cache.Cache[string, int64] {
	return versionCache(t, client, ns, src, func(o *cache.Options[string, int64]) {
		o.TTL = ttlpolicy.Fixed(10 * time.Minute).WithSoft(0.5)
		o.Now = clock.Now
		o.Refresh = mode
	})
}

// warmRefreshCache returns a cache whose values are due for refresh after 5
// minutes of clock, holding a decoded copy of "k" (version 1 of src).
func warmRefreshCache(t *testing.T, mode cache.RefreshMode) (*cache.Cache[string, int64], *source, *asidetest.Clock) {
	t.Helper()
	clock := asidetest.NewClock(time.Now())
	src := newSource()
	src.set("k", 1)
	c := refreshCache(t, connect(t, shared), namespace(t), src, clock, mode)
	warm(t, c, "k")
	return c, src, clock
}

func TestRefreshAheadInBackground(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, src, clock := warmRefreshCache(t, cache.RefreshBackground)
	v, err := c.Get(ctx, "k")
	require.NoError(t, err)
	require.EqualValues(t, 1, v)

	src.set("k", 2)
	clock.Add(6 * time.Minute) // past the soft TTL (5m), within the hard one
	v, err = c.Get(ctx, "k")
	require.NoError(t, err)
	assert.EqualValues(t, 1, v, "the current value at once")
	assert.Eventually(t, func() bool { return c.Stats().Refreshes == 1 }, 10*time.Second, time.Millisecond)
	assert.Eventually(t, func() bool {
		v, err := c.Get(ctx, "k")
		return err == nil && v == 2
	}, 10*time.Second, time.Millisecond, "the refreshed value replaces it")
	s := c.Stats()
	assert.GreaterOrEqual(t, s.StaleServed, uint64(1), "served past its soft TTL while refreshing")
	assert.EqualValues(t, 2, src.loads.Load())

	// The refreshed value has a new soft expiry: no refresh for a while.
	v, err = c.Get(ctx, "k")
	require.NoError(t, err)
	assert.EqualValues(t, 2, v)
	assert.EqualValues(t, 1, c.Stats().Refreshes)
}

func TestRefreshAheadSync(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, src, clock := warmRefreshCache(t, cache.RefreshSync)
	src.set("k", 2)
	clock.Add(6 * time.Minute)
	v, err := c.Get(ctx, "k")
	require.NoError(t, err)
	assert.EqualValues(t, 2, v, "refreshed before returning")
	assert.Zero(t, c.Stats().StaleServed)
}

func TestStaleIfError(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	boom := errors.New("source down")
	for _, mode := range []cache.RefreshMode{cache.RefreshBackground, cache.RefreshSync} {
		t.Run(map[cache.RefreshMode]string{cache.RefreshBackground: "background", cache.RefreshSync: "sync"}[mode], func(t *testing.T) {
			t.Parallel()
			clock := asidetest.NewClock(time.Now())
			var failing atomic.Bool
			src := newSource()
			src.set("k", 1)
			c := versionCache(t, connect(t, shared), namespace(t), src, func(o *cache.Options[string, int64]) {
				o.TTL = ttlpolicy.Fixed(10 * time.Minute).WithSoft(0.5)
				o.Now = clock.Now
				o.Refresh = mode
				o.Loader = func(ctx context.Context, key string) (int64, error) {
					if failing.Load() {
						return 0, boom
					}
					return src.load(ctx, key)
				}
			})
			_, err := c.Get(ctx, "k")
			require.NoError(t, err)
			warm(t, c, "k")
			failing.Store(true)
			clock.Add(6 * time.Minute)

			v, err := c.Get(ctx, "k")
			if mode == cache.RefreshSync {
				require.ErrorIs(t, err, boom, "sync refresh surfaces the loader's error")
				assert.EqualValues(t, 1, c.Stats().RefreshErrors)
				return
			}
			require.NoError(t, err)
			assert.EqualValues(t, 1, v)
			assert.Eventually(t, func() bool { return c.Stats().RefreshErrors == 1 }, 10*time.Second, time.Millisecond)
			// The value keeps being served, flagged in the stats.
			v, err = c.Get(ctx, "k")
			require.NoError(t, err)
			assert.EqualValues(t, 1, v)
			assert.GreaterOrEqual(t, c.Stats().StaleServed, uint64(2))
		})
	}
}

func TestOneProcessRefreshes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	clock := asidetest.NewClock(time.Now())
	src := newSource()
	src.set("k", 1)
	a := refreshCache(t, connect(t, shared), ns, src, clock, cache.RefreshSync)
	b := refreshCache(t, connect(t, shared), ns, src, clock, cache.RefreshSync)
	_, err := a.Get(ctx, "k")
	require.NoError(t, err)
	warm(t, a, "k")
	warm(t, b, "k")
	// Park a's refresh after its claim; b, due too, finds the claim and
	// serves the current value without loading.
	parked := make(chan struct{})
	release := make(chan struct{})
	src.mu.Lock()
	src.hook = func(string, int64) {
		close(parked)
		<-release
	}
	src.mu.Unlock()
	src.set("k", 2)
	clock.Add(6 * time.Minute)
	done := make(chan int64, 1)
	go func() {
		v, err := a.Get(ctx, "k")
		if err != nil {
			t.Error(err)
		}
		done <- v
	}()
	<-parked
	v, err := b.Get(ctx, "k")
	require.NoError(t, err)
	assert.EqualValues(t, 1, v, "b serves the value a is refreshing")
	close(release)
	assert.EqualValues(t, 2, <-done)
	assert.EqualValues(t, 2, src.loads.Load(), "one load for the fill, one for the refresh")
	assert.EqualValues(t, 1, a.Stats().Refreshes+b.Stats().Refreshes)
}

func TestRefreshOvertakenByInvalidationIsDiscarded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, src, clock := warmRefreshCache(t, cache.RefreshSync)

	parked := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	src.mu.Lock()
	src.hook = func(string, int64) {
		once.Do(func() {
			close(parked)
			<-release
		})
	}
	src.mu.Unlock()
	clock.Add(6 * time.Minute)
	done := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx, "k") // refreshes; its load reads version 1
		done <- err
	}()
	<-parked
	src.set("k", 2)
	require.NoError(t, c.Invalidate(ctx, "k"))
	close(release)
	require.NoError(t, <-done)
	assert.EqualValues(t, 1, c.Stats().DiscardedFills, "the refresh read before the update: not written")
	v, err := c.Get(ctx, "k")
	require.NoError(t, err)
	assert.EqualValues(t, 2, v)
}
