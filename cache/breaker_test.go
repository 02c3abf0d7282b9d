package cache_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/asidetest"
	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/internal/redistest"
)

func TestBreakerStopsPayingForADeadRedis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Start(t, redistest.Config{})
	clock := asidetest.NewClock(time.Now())
	var calls atomic.Int64
	c := userCache(t, connect(t, srv), "breaker", &calls, func(o *cache.Options[int64, User]) {
		o.Now = clock.Now
		o.BreakerThreshold = 5
		o.BreakerCooldown = time.Minute
	})
	require.NoError(t, srv.Kill())

	for id := range int64(100) {
		u, err := c.Get(ctx, id)
		require.NoError(t, err, "fail open")
		require.Equal(t, sampleUser(id), u)
	}
	s := c.Stats()
	assert.EqualValues(t, 5, s.RedisErrors, "only the reads before the breaker opened asked Redis")
	assert.EqualValues(t, 95, s.ShortCircuits)
	assert.EqualValues(t, 100, s.Fallbacks)
	assert.EqualValues(t, 1, s.BreakerTrips)
	assert.True(t, s.BreakerOpen)

	// Writes fail fast too while the breaker is open.
	err := c.Set(ctx, 1, sampleUser(1))
	require.ErrorIs(t, err, cache.ErrUnavailable)

	// Redis is back; after the cooldown one read probes, and closes it.
	require.NoError(t, srv.Restart())
	_, err = c.Get(ctx, 1000)
	require.NoError(t, err)
	assert.True(t, c.Stats().BreakerOpen, "still cooling down")
	clock.Add(2 * time.Minute)
	require.Eventually(t, func() bool {
		_, err := c.Get(ctx, 1001)
		return err == nil && !c.Stats().BreakerOpen
	}, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, c.Set(ctx, 1, sampleUser(1)))
	n, err := c.Exists(ctx, 1)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
}

func TestFallbackLoadsAreBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Start(t, redistest.Config{})
	const bound = 3
	const gets = 30
	var inFlight, maxInFlight, remaining atomic.Int64
	remaining.Store(gets)
	c := userCache(t, connect(t, srv), "bounded", nil, func(o *cache.Options[int64, User]) {
		o.FallbackConcurrency = bound
		o.Loader = func(_ context.Context, id int64) (User, error) {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for {
				m := maxInFlight.Load()
				if n <= m || maxInFlight.CompareAndSwap(m, n) {
					break
				}
			}
			// Hold the slot until the bound is reached (bounded wait), so
			// that a missing bound would show as more loads at once.
			deadline := time.Now().Add(2 * time.Second)
			for inFlight.Load() < min(bound, remaining.Load()) && time.Now().Before(deadline) {
				waitABit()
			}
			return sampleUser(id), nil
		}
	})
	require.NoError(t, srv.Kill())
	var wg sync.WaitGroup
	for id := range int64(gets) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u, err := c.Get(ctx, id)
			remaining.Add(-1)
			if err != nil || u.ID != id {
				t.Error(fmt.Sprint(u.ID, err))
			}
		}()
	}
	wg.Wait()
	assert.EqualValues(t, bound, maxInFlight.Load())
	assert.EqualValues(t, gets, c.Stats().Fallbacks)
}
