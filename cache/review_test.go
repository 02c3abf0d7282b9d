package cache_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/internal/redistest"
)

// TestReviewPendingCommitRace: a load under lease that read the source
// before an Invalidate whose outcome is unknown (ctx ended: nothing sent)
// writes after it, before the resender's first DEL (10ms later).
func TestReviewPendingCommitRace(t *testing.T) {
	for _, plain := range []bool{false, true} {
		client := connect(t, needShared(t))
		ns := namespace(t)
		src, g := gatedSource()
		c := versionCache(t, client, ns, src, corePlainIf(plain))
		const k = "k"
		src.set(k, 1)
		gt := g.park(t, k, 1)
		got := inBackground(func(ctx context.Context) (int64, error) { return c.Get(ctx, k) })
		gt.awaitParked(t, "the load of v1")
		src.set(k, 2)
		cctx, cancel := context.WithCancel(context.Background())
		cancel()
		require.Error(t, c.Invalidate(cctx, k))
		gt.free()
		_, _ = await(t, got, "the Get that began before")
		require.NoError(t, cache.AwaitWrites(context.Background(), c, k))
		v, err := c.Get(context.Background(), k)
		require.NoError(t, err)
		assert.Equal(t, int64(2), v, "plain=%v: Get after Invalidate returned gives the value loaded before it", plain)
	}
}

// TestReviewPendingKeyServesStaleCopy, deterministic: Redis refuses the
// DEL (an ACL without +del), so the key stays pending and the resender
// never gets it through; the load that read v1 before the Invalidate
// writes v1 under its lease (its GET/SET script is allowed) and keeps a
// copy, which the hit path serves although the key is pending.
func TestReviewPendingKeyServesStaleCopy(t *testing.T) {
	ns := namespace(t)
	rules := append(redistest.CacheUserRules(ns), "-del")
	srv := redistest.Start(t, redistest.Config{Users: []redistest.User{{Name: "app", Password: "secret", Rules: rules}}})
	opt := srv.ClientOption()
	opt.Username, opt.Password = "app", "secret"
	client := connectWith(t, opt)
	src, g := gatedSource()
	c := versionCache(t, client, ns, src)
	const k = "k"
	src.set(k, 1)
	gt := g.park(t, k, 1)
	got := inBackground(func(ctx context.Context) (int64, error) { return c.Get(ctx, k) })
	gt.awaitParked(t, "the load of v1")
	src.set(k, 2)
	err := c.Invalidate(context.Background(), k)
	require.Error(t, err) // NOPERM: k is pending
	require.Equal(t, 1, c.Stats().PendingInvalidations)
	gt.free()
	_, _ = await(t, got, "the Get that began before")
	require.NoError(t, cache.AwaitWrites(context.Background(), c, k))
	for i := 0; i < 3; i++ {
		v, err := c.Get(context.Background(), k)
		require.NoError(t, err)
		assert.Equal(t, int64(2), v, "Get %d after Invalidate returned (k pending: %d) gives the value loaded before it", i, c.Stats().PendingInvalidations)
	}
}

// TestReviewRefusedLeaseJoinedAfterInvalidation: Redis refuses writes
// (OOM), so a Get of a missing key loads directly (directTracked) under a
// shared flight. Another process invalidates the key: a DEL of a missing
// key changes nothing and pushes nothing, so the flight is never
// forgotten; a Get that begins after that Invalidate returned joins the
// load that read the source before it.
func TestReviewRefusedLeaseJoinedAfterInvalidation(t *testing.T) {
	srv := redistest.Start(t, redistest.Config{Args: []string{"--maxmemory-policy", "noeviction"}})
	for _, plain := range []bool{false, true} {
		ctx := testContext(t)
		a, b := connect(t, srv), connect(t, srv)
		ns := namespace(t)
		src, g := gatedSource()
		ca := versionCache(t, a, ns, src, corePlainIf(plain))
		cb := versionCache(t, b, ns, newSource(), corePlainIf(plain))
		_, err := srv.Do(ctx, "CONFIG", "SET", "maxmemory", "1")
		require.NoError(t, err)
		const k = "k"
		src.set(k, 1)
		gt := g.park(t, k, 1)
		first := inBackground(func(ctx context.Context) (int64, error) { return ca.Get(ctx, k) })
		gt.awaitParked(t, "the direct load of v1")
		src.set(k, 2)
		require.NoError(t, cb.Invalidate(ctx, k), "another process's Invalidate")
		second := inBackground(func(ctx context.Context) (int64, error) { return ca.Get(ctx, k) })
		// The second Get may wait for the first load to end (the blind
		// loads of a key run one after the other), but must not take its
		// result.
		gt.free()
		v, err := await(t, first, "the first Get")
		require.NoError(t, err)
		assert.EqualValues(t, 1, v)
		v, err = await(t, second, "the second Get")
		require.NoError(t, err)
		assert.EqualValues(t, 2, v, "plain=%v: a Get begun after the Invalidate returned got the load that read v1 before it", plain)
		assert.Equal(t, 2, g.loadsOf(k), "the second Get loaded for itself")
		_, err = srv.Do(ctx, "CONFIG", "SET", "maxmemory", "0")
		require.NoError(t, err)
	}
}

// TestReviewLostPatternUnlink: case 6 of core_cases for InvalidatePattern:
// its UNLINK is lost (the proxy resets the connection on seeing it), the
// call returns an error, Redis still holds v1. The key is not made
// pending (OnDelete calls wrote), so once Redis is reachable again a Get
// visits Redis and returns v1.
func TestReviewLostPatternUnlink(t *testing.T) {
	for _, m := range coreModes {
		t.Run(m.name, func(t *testing.T) {
			ctx := testContext(t)
			src := newSource()
			src.set("k", 1)
			px := startCoreProxy(t, shared.Addr())
			client := connectWith(t, px.option(shared.ClientOption()))
			p := versionCache(t, client, namespace(t), src, corePlainIf(m.plain))
			rc := other(t, shared.ClientOption())
			require.EqualValues(t, 1, warmCopy(t, p, "k"))
			src.set("k", 2)
			px.downOn("\r\nUNLINK\r\n")
			_, err := p.InvalidatePattern(ctx, "k*")
			require.Error(t, err, "the UNLINK was lost")
			v, ok := coreRawVersion(t, rc, p.Key("k"))
			require.True(t, ok && v == 1, "Redis still holds v1")
			px.setDown(false)
			got, err := within(t, "Get", func(ctx context.Context) (int64, error) { return p.Get(ctx, "k") })
			require.NoError(t, err)
			assert.EqualValues(t, 2, got, "a Get after the process's own (failed) InvalidatePattern returned the old version (pending: %d)", p.Stats().PendingInvalidations)
		})
	}
}

// TestReviewLostSpopReply: InvalidateTag's read of the tag index runs in
// Redis but its reply comes after the budget, and the call fails. (It was
// an SPOP: the members it popped were gone from the index without being
// deleted or made pending; a retry succeeded on an empty index, and Get
// returned v1 after it.) A retry until one succeeds, as Set's doc advises,
// must remove the key: Get returns v2.
func TestReviewLostSpopReply(t *testing.T) {
	for _, m := range coreModes {
		t.Run(m.name, func(t *testing.T) {
			ctx := testContext(t)
			src := newSource()
			src.set("k", 1)
			px := startCoreProxy(t, shared.Addr())
			client := connectWith(t, px.option(shared.ClientOption()))
			p := versionCache(t, client, namespace(t), src, corePlainIf(m.plain))
			rc := other(t, shared.ClientOption())
			require.NoError(t, p.Set(ctx, "k", 1, cache.WithTags("t")))
			src.set("k", 2)
			px.holdReplies() // the reply comes past the 250ms budget
			_, err := p.InvalidateTag(ctx, "t")
			require.Error(t, err, "the index read's reply came too late")
			px.releaseAll()
			// Retry until it succeeds, as the README advises (the late
			// reply still queues ahead of the retry's for a while).
			coreAwaitState(t, "a retry succeeds", func() bool { _, err := p.InvalidateTag(ctx, "t"); return err == nil })
			v, ok := coreRawVersion(t, rc, p.Key("k"))
			t.Logf("Redis holds k: %v (version %d)", ok, v)
			got, err := within(t, "Get", func(ctx context.Context) (int64, error) { return p.Get(ctx, "k") })
			require.NoError(t, err)
			assert.EqualValues(t, 2, got, "a Get after a successful InvalidateTag returned the old version")
		})
	}
}
