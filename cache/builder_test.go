package cache_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/internal/redistest"
)

// countingClient is a client of the application's own: a rueidis client
// wrapped as rueidishook or rueidisotel wrap one, counting the commands that
// pass through it.
type countingClient struct {
	rueidis.Client
	do, doMulti, doCache atomic.Int64
}

func (c *countingClient) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	c.do.Add(1)
	return c.Client.Do(ctx, cmd)
}

func (c *countingClient) DoMulti(ctx context.Context, cmds ...rueidis.Completed) []rueidis.RedisResult {
	c.doMulti.Add(1)
	return c.Client.DoMulti(ctx, cmds...)
}

func (c *countingClient) DoCache(ctx context.Context, cmd rueidis.Cacheable, ttl time.Duration) rueidis.RedisResult {
	c.doCache.Add(1)
	return c.Client.DoCache(ctx, cmd, ttl)
}

// TestClientBuilder: Connect builds its client with the application's
// builder, which receives aside's invalidation hook and tracking settings;
// the caches' commands pass through the wrapper, and a write by another
// client still drops the copy in process memory.
func TestClientBuilder(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := redistest.Start(t, redistest.Config{})
	ns := namespace(t)
	src := newSource()

	pw := &pushWatch{keys: map[string]int{}, changed: make(chan struct{})}
	opt := srv.ClientOption()
	opt.OnInvalidations = pw.hook
	var (
		mu      sync.Mutex
		seen    []rueidis.ClientOption
		wrapped []*countingClient
	)
	build := func(o rueidis.ClientOption) (rueidis.Client, error) {
		rc, err := rueidis.NewClient(o)
		if err != nil {
			return nil, err
		}
		w := &countingClient{Client: rc}
		mu.Lock()
		seen = append(seen, o)
		wrapped = append(wrapped, w)
		mu.Unlock()
		return w, nil
	}
	client, err := cache.Connect(opt, cache.WithClientBuilder(build))
	require.NoError(t, err)
	t.Cleanup(client.Close)
	require.True(t, client.Tracking())

	mu.Lock()
	require.Len(t, seen, 2, "the tracking probe, then the client the caches use")
	assert.True(t, seen[0].DisableCache, "the probe")
	main, w := seen[1], wrapped[1]
	mu.Unlock()
	assert.False(t, main.DisableCache)
	assert.NotNil(t, main.OnInvalidations, "aside's hook is in the ClientOption the builder gets")
	assert.Equal(t, []string{"OPTOUT"}, main.ClientTrackingOptions)
	assert.Same(t, w, client.Rueidis(), "Rueidis returns the application's client")

	p := versionCache(t, client, ns, src)
	q := versionCache(t, connect(t, srv), ns, src)
	src.set("k", 1)
	before := w.do.Load() + w.doMulti.Load()
	require.EqualValues(t, 1, warmCopy(t, p, "k"))
	assert.Greater(t, w.do.Load()+w.doMulti.Load(), before, "the caches' commands pass through the wrapper")

	// Another client writes k: Redis pushes the invalidation to the wrapped
	// client, whose hook is aside's, and the copy goes.
	// A read of Redis on P's connection first: its reply comes after every
	// push of P's own commands, so the next push of k is Q's.
	_, err = p.Get(ctx, "k", cache.SkipLocal())
	require.NoError(t, err)
	src.set("k", 2)
	m := pw.mark(p.Key("k"))
	require.NoError(t, q.Set(ctx, "k", 2))
	pw.awaitPushOf(t, m, "the wrapped client hears of Q's Set")
	st := p.Stats()
	v, err := p.Get(ctx, "k")
	require.NoError(t, err)
	assert.EqualValues(t, 2, v, "the copy was dropped")
	local, redis := hitsSince(st, p.Stats())
	assert.Zero(t, local, "read from Redis, not from a stale copy")
	assert.EqualValues(t, 1, redis)
}

// TestClientBuilderError: an error of the builder fails Connect, and a
// builder that returns no client is an error too.
func TestClientBuilderError(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Config{})
	errBuild := errors.New("the application refuses")
	_, err := cache.Connect(srv.ClientOption(), cache.WithClientBuilder(func(rueidis.ClientOption) (rueidis.Client, error) {
		return nil, errBuild
	}))
	require.ErrorIs(t, err, errBuild)

	_, err = cache.Connect(srv.ClientOption(), cache.WithClientBuilder(func(rueidis.ClientOption) (rueidis.Client, error) {
		return nil, nil
	}))
	require.Error(t, err)

	// The probe succeeds, the client the caches use fails.
	var calls atomic.Int64
	_, err = cache.Connect(srv.ClientOption(), cache.WithClientBuilder(func(o rueidis.ClientOption) (rueidis.Client, error) {
		if calls.Add(1) == 1 {
			return rueidis.NewClient(o)
		}
		return nil, errBuild
	}))
	require.ErrorIs(t, err, errBuild)
}
