package cache_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/internal/redistest"
)

// TestRedisNotAnsweringIsUnavailable pauses Redis (SIGSTOP): a Get that runs
// into the connection's own timeout gets ErrUnavailable, a Get whose context
// ends first gets its context's error.
func TestRedisNotAnsweringIsUnavailable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Start(t, redistest.Config{})
	opt := srv.ClientOption()
	opt.ConnWriteTimeout = 300 * time.Millisecond
	c := userCache(t, connectWith(t, opt), "slow", nil, func(o *cache.Options[int64, User]) {
		o.OnRedisDown = cache.FailFast
	})
	require.NoError(t, c.Set(ctx, 1, sampleUser(1)))

	require.NoError(t, srv.Pause())
	resumed := false
	defer func() {
		if !resumed {
			_ = srv.Resume()
		}
	}()

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err := c.Get(short, 2)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "the caller's deadline stays a context error")

	_, err = c.Get(ctx, 3)
	require.Error(t, err)
	assert.ErrorIs(t, err, cache.ErrUnavailable, "Redis not answering in time: %v", err)

	require.NoError(t, srv.Resume())
	resumed = true
	assert.Eventually(t, func() bool {
		u, err := c.Get(ctx, 1)
		return err == nil && u.ID == 1
	}, 10*time.Second, 10*time.Millisecond)
}
