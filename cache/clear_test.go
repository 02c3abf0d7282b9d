package cache_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/codec"
	"github.com/aside-go/aside/internal/envelope"
	"github.com/aside-go/aside/internal/redistest"
)

// Clear, on both topologies: the process that clears reads the source at
// once; another process's read that reaches Redis after Clear returned
// does too (G2), and its copies go when the push of the generation's key
// comes (G4). Keys never read since are cleared as well: nothing was
// scanned.
func TestClearEveryProcess(t *testing.T) {
	t.Parallel()
	for _, topo := range topologies() {
		t.Run(topo.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			ns := namespace(t)
			src := newSource()
			pc, w := watchedClient(t, topo.opt(t))
			p := versionCache(t, pc, ns, src)
			q := versionCache(t, connectWith(t, topo.opt(t)), ns, src)
			keys := []string{"a", "b", "c", "{x}d"}
			for _, k := range keys {
				src.set(k, 1)
				assert.Equal(t, int64(1), warmCopy(t, p, k))
				assert.Equal(t, int64(1), warmCopy(t, q, k))
				src.set(k, 2)
			}
			mark := w.mark(ns + "#clear")
			n, err := q.Clear(ctx)
			require.NoError(t, err)
			assert.Zero(t, n, "Clear counts nothing: it scans nothing")

			v, err := q.Get(ctx, "a")
			require.NoError(t, err)
			assert.Equal(t, int64(2), v, "the clearing process's copies went with its Clear")
			v, err = p.Get(ctx, "b", cache.SkipLocal())
			require.NoError(t, err)
			assert.Equal(t, int64(2), v, "another process's read that reaches Redis after Clear returned reads the source")

			w.awaitPushOf(t, mark, "the Clear's push")
			for _, k := range keys {
				v, err := p.Get(ctx, k)
				require.NoError(t, err)
				assert.Equal(t, int64(2), v, "%s: a copy from before the Clear outlived its push", k)
			}
			require.NoError(t, cache.AwaitWrites(ctx, p, keys...))
			exists, err := q.Exists(ctx, "c")
			require.NoError(t, err)
			assert.Equal(t, 1, exists, "c was read again since")
		})
	}
}

// A load that read the source before a Clear writes after it returned: what
// it writes is cleared already (G1), for every process, and the next read
// replaces it.
func TestClearRacingLoad(t *testing.T) {
	t.Parallel()
	for _, topo := range topologies() {
		t.Run(topo.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			ns := namespace(t)
			src, g := gatedSource()
			pc, w := watchedClient(t, topo.opt(t))
			p := versionCache(t, pc, ns, src)
			q := versionCache(t, connectWith(t, topo.opt(t)), ns, src)
			_, err := q.Get(ctx, "other") // q tracks the generation: a Clear of p reaches it
			require.ErrorIs(t, err, cache.ErrNotFound)

			src.set("k", 1)
			gt := g.park(t, "k", 1)
			loading := inBackground(func(ctx context.Context) (int64, error) { return p.Get(ctx, "k") })
			gt.awaitParked(t, "p's load of k")

			src.set("k", 2)
			mark := w.mark(ns + "#clear")
			_, err = q.Clear(ctx)
			require.NoError(t, err)
			w.awaitPushOf(t, mark, "the Clear's push to p")
			gt.free()
			v, err := await(t, loading, "p's Get")
			require.NoError(t, err)
			assert.Equal(t, int64(1), v, "the Get that began before the Clear returns what it loaded")
			require.NoError(t, cache.AwaitWrites(ctx, p, "k"))

			raw, found := rawGet(t, pc.Rueidis(), p.Key("k"))
			require.True(t, found, "the load wrote under its lease")
			env, err := envelope.Decode([]byte(raw))
			require.NoError(t, err)
			assert.Zero(t, env.Gen, "it wrote with the generation its visit read")

			for name, c := range map[string]*cache.Cache[string, int64]{"q": q, "p": p} {
				v, err := c.Get(ctx, "k")
				require.NoError(t, err)
				assert.Equal(t, int64(2), v, "%s read what a load that began before the Clear wrote", name)
			}
			raw, found = rawGet(t, pc.Rueidis(), p.Key("k"))
			require.True(t, found)
			env, err = envelope.Decode([]byte(raw))
			require.NoError(t, err)
			assert.Equal(t, uint64(1), env.Gen, "the cleared entry was replaced by a load of the new generation")
			assert.Equal(t, 2, g.loadsOf("k"), "p's load, then one load for both reads after the Clear")
		})
	}
}

// Set before a Clear is cleared by it; Set after it is not, for another
// process too.
func TestClearAndSet(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ns := namespace(t)
	src := newSource()
	src.set("k", 7)
	p := versionCache(t, connect(t, shared), ns, src)
	q := versionCache(t, connect(t, shared), ns, src)

	require.NoError(t, p.Set(ctx, "k", 5))
	_, err := p.Clear(ctx)
	require.NoError(t, err)
	v, err := p.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, int64(7), v, "a Set before the Clear was cleared")

	require.NoError(t, p.Set(ctx, "k", 6))
	v, err = p.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, int64(6), v)
	v, err = q.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, int64(6), v, "a Set after the Clear is read by another process")
	ttl, err := q.TTL(ctx, "k")
	require.NoError(t, err)
	assert.Positive(t, ttl)
}

// A process whose first operation is a Set keeps the value it wrote in
// memory only once Redis tracks the generation for it: a Clear elsewhere
// then reaches that copy.
func TestClearReachesCopiesOfSet(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ns := namespace(t)
	src := newSource()
	src.set("k", 1)
	pc, w := watchedClient(t, shared.ClientOption())
	p := versionCache(t, pc, ns, src)
	q := versionCache(t, connect(t, shared), ns, src)

	require.NoError(t, p.Set(ctx, "k", 5))
	before := p.Stats().LocalHits
	v, err := p.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, int64(5), v)
	require.Equal(t, before+1, p.Stats().LocalHits, "Set kept its copy")

	mark := w.mark(ns + "#clear")
	_, err = q.Clear(ctx)
	require.NoError(t, err)
	w.awaitPushOf(t, mark, "the Clear's push to the process that only wrote")
	v, err = p.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, int64(1), v, "the copy Set kept outlived another process's Clear")
}

// Exists and a read without a loader see a cleared key as missing; a
// not-found marker is cleared like a value.
func TestClearedKeysAreMissing(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ns := namespace(t)
	src := newSource()
	p := versionCache(t, connect(t, shared), ns, src)
	_, err := p.Get(ctx, "absent") // a not-found marker
	require.ErrorIs(t, err, cache.ErrNotFound)
	require.NoError(t, p.Set(ctx, "k", 5))
	reader, err := cache.New(connect(t, shared), cache.Options[string, int64]{Namespace: ns, Codec: codec.MsgPack[int64]()})
	require.NoError(t, err)
	n, err := reader.Exists(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, 1, n)

	_, err = p.Clear(ctx)
	require.NoError(t, err)
	n, err = reader.Exists(ctx, "k")
	require.NoError(t, err)
	assert.Zero(t, n, "Exists counted a cleared value")
	_, err = reader.Get(ctx, "k", cache.SkipLocal())
	assert.ErrorIs(t, err, cache.ErrNotFound, "a read without a loader found a cleared value")

	src.set("absent", 3)
	v, err := p.Get(ctx, "absent")
	require.NoError(t, err)
	assert.Equal(t, int64(3), v, "a cleared not-found marker still answered")
}

// In plain mode Clear is a prefix invalidation: the values carry no
// generation.
func TestClearPlainMode(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ns := namespace(t)
	src := newSource()
	src.set("a", 1)
	src.set("b", 1)
	p := versionCache(t, connect(t, shared), ns, src, func(o *cache.Options[string, int64]) {
		o.Plain = true
		o.Codec = codec.JSON[int64]()
	})
	for _, k := range []string{"a", "b"} {
		warmCopy(t, p, k)
	}
	src.set("a", 2)
	n, err := p.Clear(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(2), n, "the two values were deleted")
	v, err := p.Get(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, int64(2), v)
	_, found := rawGet(t, connect(t, shared).Rueidis(), ns+"#clear")
	assert.False(t, found, "plain mode keeps no generation")
}

// The generation's key is one of the namespace's, not a value: a Clear is
// one INCR.
func TestClearIsOneCommand(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Config{})
	ctx := testContext(t)
	ns := namespace(t)
	p := versionCache(t, connect(t, srv), ns, newSource())
	before := commandCalls(t, srv)
	_, err := p.Clear(ctx)
	require.NoError(t, err)
	after := commandCalls(t, srv)
	assert.Equal(t, before["incr"]+1, after["incr"])
	assert.Equal(t, before["scan"], after["scan"], "Clear scanned")
	rc := connectWith(t, srv.ClientOption()).Rueidis()
	v, err := rc.Do(ctx, rc.B().Get().Key(ns+"#clear").Build()).ToString()
	require.NoError(t, err)
	assert.Equal(t, "1", v)
}

// A read after a Clear of its own process meets the lease of a load of that
// process that began before the Clear: Redis holding the lease proves no
// change of the key, but a Clear changes no key. The read must not take
// that load's value; it loads once the load's write (cleared) ended.
func TestClearDoesNotJoinOwnOlderLoad(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ns := namespace(t)
	src, g := gatedSource()
	p := versionCache(t, connect(t, shared), ns, src)
	_, err := p.Get(ctx, "other") // the generation is read and tracked
	require.ErrorIs(t, err, cache.ErrNotFound)

	src.set("k", 1)
	gt := g.park(t, "k", 1)
	first := inBackground(func(ctx context.Context) (int64, error) { return p.Get(ctx, "k") })
	gt.awaitParked(t, "the load of k")
	src.set("k", 2)
	_, err = p.Clear(ctx)
	require.NoError(t, err)
	second := inBackground(func(ctx context.Context) (int64, error) { return p.Get(ctx, "k") })
	gt.free()
	v, err := await(t, first, "the Get that began before the Clear")
	require.NoError(t, err)
	assert.Equal(t, int64(1), v)
	v, err = await(t, second, "the Get that began after the Clear")
	require.NoError(t, err)
	assert.Equal(t, int64(2), v, "a read after the Clear took the value of a load that began before it")
}

// TTL, Expire, ExpireAt, Persist and Delete see a cleared value as missing,
// as Exists and Get do: in the process that cleared, in another process
// that hears of the Clear, and in one without tracking, which reads the
// generation first. A value written after the Clear is seen.
func TestClearedKeysAreMissingToKeyOperations(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ns := namespace(t)
	p := versionCache(t, connect(t, shared), ns, newSource())
	q := versionCache(t, connect(t, shared), ns, newSource())
	opt := shared.ClientOption()
	opt.DisableCache = true
	untracked := versionCache(t, connectWith(t, opt), ns, newSource())
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		require.NoError(t, p.Set(ctx, k, 1, cache.WithTTL(time.Hour)))
	}
	ttl, err := q.TTL(ctx, "a")
	require.NoError(t, err)
	require.Positive(t, ttl)
	_, err = p.Clear(ctx)
	require.NoError(t, err)

	for name, c := range map[string]*cache.Cache[string, int64]{"p": p, "q": q, "untracked": untracked} {
		_, err = c.TTL(ctx, "a")
		assert.ErrorIs(t, err, cache.ErrKeyMissing, "%s: TTL of a cleared value", name)
		ok, err := c.Expire(ctx, "b", time.Minute)
		require.NoError(t, err)
		assert.False(t, ok, "%s: Expire of a cleared value", name)
		ok, err = c.ExpireAt(ctx, "c", time.Now().Add(time.Minute))
		require.NoError(t, err)
		assert.False(t, ok, "%s: ExpireAt of a cleared value", name)
		ok, err = c.Persist(ctx, "d")
		require.NoError(t, err)
		assert.False(t, ok, "%s: Persist of a cleared value", name)
	}
	n, err := untracked.Delete(ctx, "e", "a")
	require.NoError(t, err)
	assert.Zero(t, n, "Delete counted cleared values")
	left, err := shared.Do(ctx, "EXISTS", p.Key("e"), p.Key("a"))
	require.NoError(t, err)
	assert.Equal(t, "0", left, "Delete removes cleared entries all the same")
	pttl, err := shared.Do(ctx, "PTTL", p.Key("b"))
	require.NoError(t, err)
	assert.NotEqual(t, "-1", pttl, "the cleared entry kept its expiry")

	require.NoError(t, q.Set(ctx, "a", 2, cache.WithTTL(time.Hour)))
	for name, c := range map[string]*cache.Cache[string, int64]{"p": p, "q": q, "untracked": untracked} {
		ttl, err := c.TTL(ctx, "a")
		require.NoError(t, err, "%s: a value written after the Clear", name)
		assert.Positive(t, ttl)
	}
	n, err = p.Delete(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, 1, n)
}
