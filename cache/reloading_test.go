package cache_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/asidetest"
	"github.com/aside-go/aside/cache"
)

// StaleWhileReloading: after another process's change, reads get the
// previous value at once while one load reloads the key, then the new
// value; past the bound they wait for the load as without the option; the
// process's own invalidation is read at once.
func TestStaleWhileReloading(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ns := namespace(t)
	const bound = time.Minute
	clock := asidetest.NewClock(time.Now())
	src, g := gatedSource()
	pc, w := watchedClient(t, shared.ClientOption())
	p := versionCache(t, pc, ns, src, func(o *cache.Options[string, int64]) {
		o.StaleWhileReloading = bound
		o.Now = clock.Now
	})
	q := versionCache(t, connect(t, shared), ns, src)
	src.set("k", 1)
	require.Equal(t, int64(1), warmCopy(t, p, "k"))

	// Another process's change: the copy stays, one reload runs. (A read
	// of Redis first: its reply comes after every push of p's own
	// commands, so the next push of k is q's.)
	_, err := p.Get(ctx, "k", cache.SkipLocal())
	require.NoError(t, err)
	src.set("k", 2)
	gt := g.park(t, "k", 2)
	mark := w.mark(p.Key("k"))
	require.NoError(t, q.Invalidate(ctx, "k"))
	w.awaitPushOf(t, mark, "q's invalidation")
	loads := g.loadsOf("k")
	for range 3 {
		var src cache.Source
		v, err := p.Get(ctx, "k", cache.SourceOf(&src))
		require.NoError(t, err)
		assert.Equal(t, int64(1), v, "the previous value, at once, while the reload runs")
		assert.Equal(t, cache.SourceStale, src)
	}
	gt.awaitParked(t, "the reload")
	assert.Equal(t, loads+1, g.loadsOf("k"), "one reload for every read")
	staleBefore := p.Stats().StaleServed
	assert.Positive(t, staleBefore)
	gt.free()
	require.NoError(t, cache.AwaitWrites(ctx, p, "k"))
	v, err := p.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, int64(2), v, "the reloaded value replaced the stale copy")
	assert.Equal(t, staleBefore, p.Stats().StaleServed)

	// Past the bound, a read waits for the load.
	src.set("k", 3)
	gt = g.park(t, "k", 3)
	_, err = p.Get(ctx, "k", cache.SkipLocal()) // every push of p's own commands has come
	require.NoError(t, err)
	mark = w.mark(p.Key("k"))
	require.NoError(t, q.Invalidate(ctx, "k"))
	w.awaitPushOf(t, mark, "q's second invalidation")
	clock.Add(bound)
	read := inBackground(func(ctx context.Context) (int64, error) { return p.Get(ctx, "k") })
	gt.awaitParked(t, "the load of the read past the bound")
	gt.free()
	v, err = await(t, read, "the read past the bound")
	require.NoError(t, err)
	assert.Equal(t, int64(3), v, "a copy was served past StaleWhileReloading")

	// The process's own invalidation is not hidden by a stale copy.
	src.set("k", 4)
	require.NoError(t, p.Invalidate(ctx, "k"))
	v, err = p.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, int64(4), v, "read-your-writes")
}

// A not-found marker is not kept stale: after another process's write of
// the key, the next read gets the value.
func TestStaleWhileReloadingDropsMarkers(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ns := namespace(t)
	src := newSource()
	pc, w := watchedClient(t, shared.ClientOption())
	p := versionCache(t, pc, ns, src, func(o *cache.Options[string, int64]) { o.StaleWhileReloading = time.Hour })
	q := versionCache(t, connect(t, shared), ns, src)
	for {
		before := p.Stats().LocalHits
		_, err := p.Get(ctx, "k")
		require.ErrorIs(t, err, cache.ErrNotFound)
		if p.Stats().LocalHits > before {
			break // the marker is in memory
		}
	}
	require.NoError(t, cache.AwaitWrites(ctx, p, "k"))
	// A read of Redis on p's connection first: its reply comes after every
	// push of p's own commands (the echo of the marker's write), so the
	// next push of k is q's.
	_, err := p.Get(ctx, "k", cache.SkipLocal())
	require.ErrorIs(t, err, cache.ErrNotFound)
	mark := w.mark(p.Key("k"))
	require.NoError(t, q.Set(ctx, "k", 9))
	w.awaitPushOf(t, mark, "q's Set")
	v, err := p.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, int64(9), v)
}

func TestStaleWhileReloadingValidated(t *testing.T) {
	t.Parallel()
	_, err := cache.New(connect(t, shared), cache.Options[string, int64]{Namespace: "x", StaleWhileReloading: -time.Second})
	require.ErrorIs(t, err, cache.ErrInvalidOptions)
	assert.Contains(t, err.Error(), "StaleWhileReloading")
}
