package cache_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/internal/redistest"
)

// TestHungRedisCostsTheBudget pauses Redis (SIGSTOP: connections stay open,
// nothing answers) under default options: a Get whose context ends first
// gets its context's error; every other call gets ErrUnavailable once
// RedisTimeout ran out, counted in Stats; FailOpen answers from the loader;
// after BreakerThreshold such failures the breaker opens and Gets no longer
// ask Redis at all.
func TestHungRedisCostsTheBudget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Start(t, redistest.Config{})
	client := connect(t, srv)
	var calls atomic.Int64
	open := userCache(t, client, "hung", &calls)
	fast := userCache(t, client, "hung", nil, func(o *cache.Options[int64, User]) {
		o.OnRedisDown = cache.FailFast
	})
	require.NoError(t, open.Set(ctx, 1, sampleUser(1)))

	require.NoError(t, srv.Pause())
	resumed := false
	defer func() {
		if !resumed {
			_ = srv.Resume()
		}
	}()

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	_, err := fast.Get(short, 2)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "the caller's deadline stays a context error")
	assert.NotErrorIs(t, err, cache.ErrUnavailable)

	// No deadline of the caller's: the budget bounds the call.
	_, err = fast.Get(ctx, 3)
	require.ErrorIs(t, err, cache.ErrUnavailable, "Redis not answering within RedisTimeout")
	assert.NotErrorIs(t, err, context.DeadlineExceeded)
	_, err = fast.GetMany(ctx, []int64{4, 5})
	require.ErrorIs(t, err, cache.ErrUnavailable)
	require.ErrorIs(t, fast.Set(ctx, 6, sampleUser(6)), cache.ErrUnavailable)
	s := fast.Stats()
	assert.EqualValues(t, 4, s.RedisErrors, "three keys read, one written; the caller's own deadline is not counted")
	assert.False(t, s.BreakerOpen, "four failed calls in a row")
	_, err = fast.Get(ctx, 7)
	require.ErrorIs(t, err, cache.ErrUnavailable)
	assert.True(t, fast.Stats().BreakerOpen, "the fifth opened the breaker")
	_, err = fast.Get(ctx, 8)
	require.ErrorIs(t, err, cache.ErrUnavailable, "an open breaker fails fast")
	assert.EqualValues(t, 1, fast.Stats().ShortCircuits)

	// FailOpen: the loader answers, nothing is written.
	for id := int64(10); id < 16; id++ {
		u, err := open.Get(ctx, id)
		require.NoError(t, err, "FailOpen serves from the loader while Redis hangs")
		assert.Equal(t, sampleUser(id), u)
	}
	s = open.Stats()
	assert.EqualValues(t, 6, calls.Load())
	assert.EqualValues(t, 6, s.Fallbacks)
	assert.True(t, s.BreakerOpen)
	assert.Positive(t, s.ShortCircuits, "once open, Gets do not ask Redis")
	assert.EqualValues(t, 5, s.RedisErrors, "the failures that opened the breaker")

	require.NoError(t, srv.Resume())
	resumed = true
	assert.Eventually(t, func() bool {
		u, err := open.Get(ctx, 1)
		return err == nil && u.ID == 1
	}, 10*time.Second, 10*time.Millisecond, "back once Redis answers and the breaker's probe succeeds")
}
