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

// TestConnectWhileRedisIsDown: Connect returns a client while Redis cannot
// be reached; its caches answer from the loader (FailOpen) or fail fast, and
// once Redis is up the client connects in the background and keeps copies.
func TestConnectWhileRedisIsDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Start(t, redistest.Config{})
	require.NoError(t, srv.Kill())

	_, err := cache.Connect(srv.ClientOption(), cache.RequireRedis())
	require.ErrorIs(t, err, cache.ErrUnavailable, "asked to, Connect fails")

	client := connect(t, srv)
	assert.False(t, client.Connected())
	assert.False(t, client.Tracking())
	assert.Nil(t, client.Rueidis())
	var calls atomic.Int64
	open := userCache(t, client, "down", &calls)
	fast := userCache(t, client, "down", nil, func(o *cache.Options[int64, User]) { o.OnRedisDown = cache.FailFast })

	u, err := open.Get(ctx, 1)
	require.NoError(t, err, "FailOpen answers from the loader from the first call")
	assert.Equal(t, sampleUser(1), u)
	many, err := open.GetMany(ctx, []int64{2, 3})
	require.NoError(t, err)
	assert.Len(t, many, 2)
	assert.EqualValues(t, 3, open.Stats().Fallbacks)
	_, err = fast.Get(ctx, 1)
	require.ErrorIs(t, err, cache.ErrUnavailable)
	require.ErrorIs(t, fast.Set(ctx, 1, sampleUser(1)), cache.ErrUnavailable)
	_, err = fast.Delete(ctx, 1)
	require.ErrorIs(t, err, cache.ErrUnavailable)
	_, err = fast.TTL(ctx, 1)
	require.ErrorIs(t, err, cache.ErrUnavailable)

	require.NoError(t, srv.Restart())
	require.Eventually(t, client.Connected, 10*time.Second, 10*time.Millisecond, "connected in the background")
	assert.True(t, client.Tracking())
	assert.NotNil(t, client.Rueidis())
	require.Eventually(t, func() bool {
		before := open.Stats().LocalHits
		_, err1 := open.Get(ctx, 4)
		_, err2 := open.Get(ctx, 4)
		return err1 == nil && err2 == nil && open.Stats().LocalHits > before
	}, 10*time.Second, 10*time.Millisecond, "copies kept once connected (after the breaker's cooldown)")
}

// TestConnectFailsAtOnceForWhatRedisRefuses: bad credentials and invalid
// options are not an outage.
func TestConnectFailsAtOnceForWhatRedisRefuses(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Config{Password: "secret"})
	opt := srv.ClientOption()
	opt.Password = "wrong"
	_, err := cache.Connect(opt)
	require.Error(t, err)
	assert.NotErrorIs(t, err, cache.ErrUnavailable, "%v", err)

	opt = srv.ClientOption()
	opt.ClientTrackingOptions = []string{"BCAST"}
	_, err = cache.Connect(opt)
	require.ErrorIs(t, err, cache.ErrInvalidOptions)

	opt.ClientTrackingOptions = nil
	opt.InitAddress = nil
	_, err = cache.Connect(opt)
	require.ErrorIs(t, err, cache.ErrInvalidOptions)
}

// TestOutageStalenessServesCopiesWhileRedisIsDown: with OutageStaleness set,
// a Redis that goes away does not move the reads of keys held in process
// memory onto the loader: their copies are served, flagged stale; keys
// without a copy still load. Without it (the default), every read loads.
func TestOutageStalenessServesCopiesWhileRedisIsDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Start(t, redistest.Config{})
	client, pushes := watchedClient(t, srv.ClientOption())
	var keptCalls, plainCalls atomic.Int64
	kept := userCache(t, client, "outage", &keptCalls, func(o *cache.Options[int64, User]) { o.OutageStaleness = time.Minute })
	plain := userCache(t, client, "outage-plain", &plainCalls)
	for _, c := range []*cache.Cache[int64, User]{kept, plain} {
		warm(t, c, 1)
	}
	require.EqualValues(t, 1, keptCalls.Load())
	require.EqualValues(t, 1, plainCalls.Load())

	m := pushes.mark("")
	require.NoError(t, srv.Kill())
	pushes.awaitFlush(t, m, "the dropped connection")

	u, err := kept.Get(ctx, 1)
	require.NoError(t, err)
	assert.Equal(t, sampleUser(1), u)
	assert.EqualValues(t, 1, keptCalls.Load(), "the copy, not the loader")
	assert.EqualValues(t, 1, kept.Stats().StaleServed)
	many, err := kept.GetMany(ctx, []int64{1, 2})
	require.NoError(t, err)
	assert.Len(t, many, 2)
	assert.EqualValues(t, 2, keptCalls.Load(), "a key without a copy loads")

	_, err = plain.Get(ctx, 1)
	require.NoError(t, err)
	assert.EqualValues(t, 2, plainCalls.Load(), "off by default: the loader answers")

	require.NoError(t, srv.Restart())
	// Once Redis answers, the copies from before the outage are never
	// served again (the restarted Redis lost the data: the next Get loads).
	require.Eventually(t, func() bool {
		before := keptCalls.Load()
		_, err := kept.Get(ctx, 1)
		return err == nil && keptCalls.Load() > before && kept.Stats().Fallbacks == 1
	}, 10*time.Second, 10*time.Millisecond)
}
