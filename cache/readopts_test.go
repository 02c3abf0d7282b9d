package cache_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/loader"
)

// TestSourceOf reads keys from each source in turn and checks what SourceOf
// reports: the loader, then process memory, then Redis for a second process
// that holds no copy, none for a key not found; and for GetMany the farthest
// source of its values.
func TestSourceOf(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	var calls atomic.Int64
	c := userCache(t, nil, ns, &calls)
	var src cache.Source

	u, err := c.Get(ctx, 1, cache.SourceOf(&src))
	require.NoError(t, err)
	assert.Equal(t, sampleUser(1), u)
	assert.Equal(t, cache.SourceLoader, src, "a miss is loaded")
	require.NoError(t, cache.AwaitWrites(ctx, c, 1))

	_, err = c.Get(ctx, 1, cache.SourceOf(&src))
	require.NoError(t, err)
	assert.Equal(t, cache.SourceLocal, src, "then served from process memory")

	second := userCache(t, connect(t, shared), ns, &calls)
	_, err = second.Get(ctx, 1, cache.SourceOf(&src))
	require.NoError(t, err)
	assert.Equal(t, cache.SourceRedis, src, "another process reads Redis")
	assert.EqualValues(t, 1, calls.Load())

	_, err = c.Get(ctx, -1, cache.SourceOf(&src))
	require.ErrorIs(t, err, cache.ErrNotFound)
	assert.Equal(t, cache.SourceNone, src, "no value, no source")

	m, err := c.GetMany(ctx, []int64{1, 2}, cache.SourceOf(&src))
	require.NoError(t, err)
	assert.Len(t, m, 2)
	assert.Equal(t, cache.SourceLoader, src, "2 was loaded: the farthest source of the batch")
	require.NoError(t, cache.AwaitWrites(ctx, c, 2))
	m, err = c.GetMany(ctx, []int64{1, 2}, cache.SourceOf(&src))
	require.NoError(t, err)
	assert.Len(t, m, 2)
	assert.Equal(t, cache.SourceLocal, src, "both from process memory")
	assert.Equal(t, "local", src.String())
}

// TestSkipLocal reads a key that process memory holds with SkipLocal: the
// read goes to Redis (a Redis hit, no local hit) and the copy stays for the
// reads without the option.
func TestSkipLocal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var calls atomic.Int64
	c := userCache(t, nil, namespace(t), &calls)
	warm(t, c, 1)
	before := c.Stats()

	var src cache.Source
	u, err := c.Get(ctx, 1, cache.SkipLocal(), cache.SourceOf(&src))
	require.NoError(t, err)
	assert.Equal(t, sampleUser(1), u)
	assert.Equal(t, cache.SourceRedis, src)
	after := c.Stats()
	assert.Equal(t, before.LocalHits, after.LocalHits, "process memory was not asked")
	assert.Equal(t, before.RedisHits+1, after.RedisHits)

	m, err := c.GetMany(ctx, []int64{1}, cache.SkipLocal())
	require.NoError(t, err)
	assert.Equal(t, sampleUser(1), m[1])
	assert.Equal(t, after.RedisHits+1, c.Stats().RedisHits, "GetMany too")

	_, err = c.Get(ctx, 1)
	require.NoError(t, err)
	assert.Equal(t, after.LocalHits+1, c.Stats().LocalHits, "the copy is still served without the option")
	assert.EqualValues(t, 1, calls.Load())
}

// TestLoaderNoCache has a loader return loader.NoCache with its value: the
// value is returned, nothing is written to Redis (the lease is released) or
// kept in memory, and the next read loads again — for Get, and for GetMany
// through Func.Batch and through a BatchLoader.
func TestLoaderNoCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rc := other(t, shared.ClientOption())
	var calls atomic.Int64
	uncached := func(id int64) bool { return id%2 == 0 }
	one := userCache(t, nil, namespace(t), &calls, func(o *cache.Options[int64, User]) {
		o.Loader = func(_ context.Context, id int64) (User, error) {
			calls.Add(1)
			if uncached(id) {
				return sampleUser(id), loader.NoCache
			}
			return sampleUser(id), nil
		}
	})
	for range 2 {
		var src cache.Source
		u, err := one.Get(ctx, 2, cache.SourceOf(&src))
		require.NoError(t, err)
		assert.Equal(t, sampleUser(2), u)
		assert.Equal(t, cache.SourceLoader, src)
		require.NoError(t, cache.AwaitWrites(ctx, one, 2))
		_, ok := rawGet(t, rc, one.Key(2))
		assert.False(t, ok, "neither the value nor the lease is in Redis")
	}
	assert.EqualValues(t, 2, calls.Load(), "each Get loads")
	assert.Zero(t, one.Stats().LocalEntries)

	calls.Store(0)
	m, err := one.GetMany(ctx, []int64{3, 4})
	require.NoError(t, err, "NoCache is not a failure")
	assert.Equal(t, map[int64]User{3: sampleUser(3), 4: sampleUser(4)}, m)
	require.NoError(t, cache.AwaitWrites(ctx, one, 3, 4))
	_, ok := rawGet(t, rc, one.Key(3))
	assert.True(t, ok, "3 is cached")
	_, ok = rawGet(t, rc, one.Key(4))
	assert.False(t, ok, "4 is not")

	batched := userCache(t, nil, namespace(t), nil, func(o *cache.Options[int64, User]) {
		o.Loader = nil
		o.BatchLoader = func(_ context.Context, ids []int64) (map[int64]User, error) {
			m := map[int64]User{}
			var errs []error
			for _, id := range ids {
				m[id] = sampleUser(id)
				if uncached(id) {
					errs = append(errs, &loader.KeyError[int64]{Key: id, Err: loader.NoCache})
				}
			}
			return m, errors.Join(errs...)
		}
	})
	m, err = batched.GetMany(ctx, []int64{5, 6})
	require.NoError(t, err)
	assert.Len(t, m, 2)
	require.NoError(t, cache.AwaitWrites(ctx, batched, 5, 6))
	_, ok = rawGet(t, rc, batched.Key(5))
	assert.True(t, ok, "5 is cached")
	_, ok = rawGet(t, rc, batched.Key(6))
	assert.False(t, ok, "6, named by a KeyError wrapping NoCache, is not")

	all := userCache(t, nil, namespace(t), nil, func(o *cache.Options[int64, User]) {
		o.Loader = nil
		o.BatchLoader = func(_ context.Context, ids []int64) (map[int64]User, error) {
			return map[int64]User{ids[0]: sampleUser(ids[0])}, loader.NoCache
		}
	})
	m, err = all.GetMany(ctx, []int64{7, 8})
	require.NoError(t, err, "a key missing from a NoCache batch is not found, not failed")
	assert.Len(t, m, 1)
	require.NoError(t, cache.AwaitWrites(ctx, all, 7, 8))
	for _, id := range []int64{7, 8} {
		_, ok = rawGet(t, rc, all.Key(id))
		assert.False(t, ok, "NoCache itself: no value of the batch is cached (%d)", id)
	}
}

// TestReload changes the source behind the cache's back (no invalidation)
// and reads with Reload: the read returns the new version, loaded, and a
// second process's copy is dropped too (Reload invalidates everywhere).
func TestReload(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	src := newSource()
	src.set("k", 1)
	p, pw, q := watchedPair(t, shared, shared.ClientOption(), ns, src)
	// Q loads and writes; P then reads what Q wrote, so no echo of a write
	// of P's own is still on its way to be taken for the push awaited below.
	warm(t, q, "k")
	warm(t, p, "k")
	require.Zero(t, p.Stats().Loads, "P read Q's value")

	src.set("k", 2) // the source changed; nobody invalidated
	v, err := q.Get(ctx, "k")
	require.NoError(t, err)
	require.EqualValues(t, 1, v, "without Reload the copy stands")

	m := pw.mark(p.Key("k"))
	var from cache.Source
	v, err = q.Get(ctx, "k", cache.Reload(), cache.SourceOf(&from))
	require.NoError(t, err)
	assert.EqualValues(t, 2, v, "Reload loads the source's version")
	assert.Equal(t, cache.SourceLoader, from)
	pw.awaitPushOf(t, m, "P hears of the reload")
	v, err = p.Get(ctx, "k")
	require.NoError(t, err)
	assert.EqualValues(t, 2, v, "the other process's copy went with it")

	src.set("k", 3)
	got, err := p.GetMany(ctx, []string{"k"}, cache.Reload())
	require.NoError(t, err)
	assert.EqualValues(t, 3, got["k"], "GetMany too")
}
