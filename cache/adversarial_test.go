package cache_test

// Adversarial tests of the read path (a second engineer's review): each one
// forces an interleaving that the guarantees of the package documentation
// (G1–G5) or the documented behaviour of Get and GetMany rule out, with
// parked loaders, a fake clock, paused servers and a TCP proxy that cuts one
// connection half-open, never with sleeps. Tests that still fail document a
// bug; the others are regression tests of attacks that held.
//
// The helpers are those of helpers_test.go.

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/asidetest"
	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/codec"
	"github.com/aside-go/aside/internal/redistest"
	"github.com/aside-go/aside/loader"
)

// ---------------------------------------------------------------------------
// Found by this review and fixed: RefreshSync joins a refresh that began before a write.

// TestAdvRefreshSyncJoinsARefreshOlderThanTheProcesssOwnSet attacks G3 (and
// G2) through refresh-ahead in RefreshSync mode.
//
//  1. k holds version 1, due for refresh; Get#1 claims it, and its refresh
//     load reads version 1 and parks.
//  2. The source moves to 2 and the process Sets k to 2; Set returns.
//  3. Time passes: the value 2 is due in its turn. Get#2 finds it due and
//     calls the refresh group for the Redis key, where Get#1's refresh is
//     still in flight: it joins it.
//  4. The parked refresh returns version 1 (its write is discarded, the claim
//     is gone) and Get#2 returns 1, the value of a load that began before the
//     process's own Set.
//
// The refresh group (Cache.refreshes) was never forgotten by an invalidation,
// a write or a flush, unlike the read path's flights; now it is, with them.
func TestAdvRefreshSyncJoinsARefreshOlderThanTheProcesssOwnSet(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		tracking bool
	}{{"tracking", true}, {"server refuses tracking", false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			cfg := redistest.Config{}
			if !tc.tracking {
				cfg.Users = []redistest.User{{Name: "notrack", Password: "n", Rules: []string{"~*", "&*", "+@all", "-client|tracking"}}}
			}
			srv := redistest.Start(t, cfg)
			opt := srv.ClientOption()
			if !tc.tracking {
				opt.Username, opt.Password = "notrack", "n"
			}
			clock := asidetest.NewClock(time.Now())
			src, g := gatedSource()
			client := connectWith(t, opt)
			require.Equal(t, tc.tracking, client.Tracking())
			c := versionCache(t, client, namespace(t), src, refreshOpts(clock))
			const k = "k"
			src.set(k, 1)
			v, err := c.Get(ctx, k)
			require.NoError(t, err)
			require.EqualValues(t, 1, v)

			gate := g.park(t, k, 1)
			clock.Add(6 * time.Minute) // past the soft expiry, within the hard one
			first := inBackground(func(ctx context.Context) (int64, error) { return c.Get(ctx, k) })
			gate.awaitParked(t, "Get#1's refresh")

			src.set(k, 2)
			require.NoError(t, c.Set(ctx, k, 2))
			clock.Add(6 * time.Minute) // the value just written is due in its turn
			second := inBackground(func(ctx context.Context) (int64, error) { return c.Get(ctx, k) })
			// Get#1's refresh is still parked: Get#2 must not wait for it.
			v, err = await(t, second, "Get#2, while the refresh that began before the Set is parked")
			require.NoError(t, err)
			assert.EqualValues(t, 2, v, "Get#2 began after the process's own Set(2) returned (G3): it must not return the value of a refresh load that began before it")
			gate.free()
			v, err = await(t, first, "Get#1")
			require.NoError(t, err)
			assert.EqualValues(t, 1, v, "Get#1 began before the Set: the old row is fine")
		})
	}
}

// TestAdvRefreshSyncJoinsARefreshOlderThanAnotherProcesssSet is the same
// attack on G2: the write is another process's Set, and Get#2 reaches Redis
// after it returned (the process holds no copy: the claim dropped it), reads
// the new value, finds it due, and joins the refresh that began before.
func TestAdvRefreshSyncJoinsARefreshOlderThanAnotherProcesssSet(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := redistest.Start(t, redistest.Config{})
	clock := asidetest.NewClock(time.Now())
	src, g := gatedSource()
	ns := namespace(t)
	pc := connect(t, srv)
	qc := connect(t, srv)
	p := versionCache(t, pc, ns, src, refreshOpts(clock))
	q := versionCache(t, qc, ns, src, refreshOpts(clock))
	const k = "k"
	src.set(k, 1)
	require.EqualValues(t, 1, warmCopy(t, p, k))

	gate := g.park(t, k, 1)
	clock.Add(6 * time.Minute)
	first := inBackground(func(ctx context.Context) (int64, error) { return p.Get(ctx, k) })
	gate.awaitParked(t, "P's refresh")

	src.set(k, 2)
	require.NoError(t, q.Set(ctx, k, 2))
	clock.Add(6 * time.Minute)
	before := p.Stats()
	second := inBackground(func(ctx context.Context) (int64, error) { return p.Get(ctx, k) })
	// P's first refresh is still parked: Get#2 must not wait for it.
	v, err := await(t, second, "P's Get#2, while the refresh that began before Q's Set is parked")
	require.NoError(t, err)
	gate.free()
	v1, err := await(t, first, "P's Get#1")
	require.NoError(t, err)
	assert.EqualValues(t, 1, v1)
	assert.EqualValues(t, 1, p.Stats().RedisHits-before.RedisHits, "Get#2 read Redis, after Q's Set returned")
	assert.EqualValues(t, 2, v, "G2: a read that reached Redis after Q's Set returned gave the value of P's refresh load that began before it")
}

// ---------------------------------------------------------------------------
// Found by this review and fixed: a read-only user's Get of an unreadable
// value never returned.

// TestAdvReadOnlyUserUnreadableValueNeverReturns: a user that may not write
// (the read-only ACL user of TestReadOnlyUserStillReads) Gets a key holding
// bytes aside cannot read. The visit with a lease is refused, so resolve
// visits again with a plain GET, finds the unreadable bytes, and calls
// deleteUnreadable — whose compare-and-delete Redis refuses too (NOPERM,
// ignored) — and visits again, forever (read.go: corrupt keys go back to
// todo whatever deleteUnreadable achieved). The Get returns only when its
// context ends; with context.Background() it never does.
func TestAdvReadOnlyUserUnreadableValueNeverReturns(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := redistest.Start(t, redistest.Config{Users: []redistest.User{{
		Name: "reader", Password: "r", Rules: []string{"~*", "&*", "+@all", "-@write"},
	}}})
	ns := namespace(t)
	_, err := srv.Do(ctx, "SET", ns+":k", "bytes of another program")
	require.NoError(t, err)
	opt := srv.ClientOption()
	opt.Username, opt.Password = "reader", "r"
	client := connectWith(t, opt)
	src := newSource()
	src.set("k", 7)
	c := versionCache(t, client, ns, src)

	for _, via := range []struct {
		name string
		read func(context.Context) (int64, error)
	}{
		{"Get", func(ctx context.Context) (int64, error) { return c.Get(ctx, "k") }},
		{"GetMany", func(ctx context.Context) (int64, error) {
			m, err := c.GetMany(ctx, []string{"k"})
			return m["k"], err
		}},
	} {
		t.Run(via.name, func(t *testing.T) {
			t.Parallel()
			v, err := await(t, inBackground(via.read), via.name+" of an unreadable value by a read-only user")
			if err == nil {
				assert.EqualValues(t, 7, v, "loaded without writing")
			} else {
				assert.ErrorIs(t, err, cache.ErrCorrupt)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Found by this review and fixed: RefreshSync ignores FailOpen when Redis is unavailable.

// TestAdvRefreshSyncFailsReadsRedisCouldServe: a copy past its soft TTL,
// within its hard TTL, in RefreshSync mode with the default FailOpen policy.
// The refresh's claim cannot be made, and Get (and GetMany, alike) fails:
//
//   - Redis hangs (SIGSTOP): the claim meets the time budget and Get returns
//     ErrUnavailable, which Get's documentation reserves for FailFast ("When
//     Redis is unavailable the result follows Options.OnRedisDown"); FailOpen
//     should load from the source, or serve the copy.
//   - a read-only user (who "still reads", TestReadOnlyUserStillReads): the
//     claim is refused (NOPERM) and every Get of the key fails from its soft
//     expiry to its hard one, although Redis holds a valid value; the
//     documented failure of RefreshSync is the loader's, not the claim's.
//
// whenDue (read.go) returns any refresh error but errNotClaimed as the Get's.
func TestAdvRefreshSyncFailsReadsRedisCouldServe(t *testing.T) {
	t.Parallel()
	for _, readOnly := range []bool{false, true} {
		name := "Redis hung, FailOpen"
		if readOnly {
			name = "read-only user"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			srv := redistest.Start(t, redistest.Config{Users: []redistest.User{{
				Name: "reader", Password: "r", Rules: []string{"~*", "&*", "+@all", "-@write"},
			}}})
			clock := asidetest.NewClock(time.Now())
			src := newSource()
			ns := namespace(t)
			src.set("a", 1)
			src.set("b", 1)
			opt := srv.ClientOption()
			if readOnly {
				// A process that may write fills the keys first.
				wc := connect(t, srv)
				w := versionCache(t, wc, ns, src, refreshOpts(clock))
				for _, k := range []string{"a", "b"} {
					_, err := w.Get(ctx, k)
					require.NoError(t, err)
				}
				opt.Username, opt.Password = "reader", "r"
			}
			client := connectWith(t, opt)
			c := versionCache(t, client, ns, src, refreshOpts(clock), func(o *cache.Options[string, int64]) {
				o.OnRedisDown = cache.FailOpen
				o.BreakerThreshold = -1
			})
			warmCopy(t, c, "a")
			warmCopy(t, c, "b")
			src.set("a", 2)
			src.set("b", 2)
			clock.Add(6 * time.Minute) // past the soft expiry, within the hard one
			if !readOnly {
				require.NoError(t, srv.Pause())
				t.Cleanup(func() { _ = srv.Resume() })
			}

			v, err := await(t, inBackground(func(ctx context.Context) (int64, error) { return c.Get(ctx, "a") }), "Get")
			if assert.NoError(t, err, "Get of a value within its hard TTL") {
				assert.Contains(t, []int64{1, 2}, v)
			}
			m, err := await(t, inBackground(func(ctx context.Context) (map[string]int64, error) { return c.GetMany(ctx, []string{"b"}) }), "GetMany")
			if assert.NoError(t, err, "GetMany of a value within its hard TTL") {
				assert.Contains(t, []int64{1, 2}, m["b"])
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Found by this review and fixed: an echo expected for a load's write, which
// no push would answer, swallowed the next invalidation of the key.

// TestAdvHalfOpenVisitConnectionSwallowsAnotherProcesssInvalidation attacks
// G4 through the echo bookkeeping of a load's write (commit, load.go).
//
// The visit's connection can lose its tracking without any push: here it is
// cut half-open (the server closed it, the client has not noticed) during the
// load. When the write compared the lease with GETEX (which tracks nothing),
// it then pushed to nobody and left the expected echo unanswered, so the next
// change of the key by another process was taken for the echo and the copy of
// the old value stayed. The write now reads the key with GET right before its
// SET, so its own connection always gets the echo.
//
// The routing is made deterministic with rueidis' own rules: one pipelined
// connection (PipelineMultiplex -1) and BlockingPipeline 2, so that the
// two-key GetMany's visits travel on a pooled connection of their own while
// every single-key command (the load's write, Get, Set) travels on the
// pipelined one.
func TestAdvHalfOpenVisitConnectionSwallowsAnotherProcesssInvalidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cut  bool
	}{
		{"control: every connection intact", false},
		{"the visit's connection cut half-open during the load", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			halfOpenRound(t, tc.cut)
		})
	}
}

func halfOpenRound(t *testing.T, cut bool) {
	ctx := testContext(t)
	srv := redistest.Start(t, redistest.Config{})
	proxy := startProxy(t, srv.Addr())
	ns := namespace(t)
	src, g := gatedSource()

	opt := srv.ClientOption()
	opt.InitAddress = []string{proxy.addr()}
	opt.PipelineMultiplex = -1
	opt.BlockingPipeline = 2
	opt.ConnWriteTimeout = time.Minute // rueidis notices the cut only after this
	p, pw, q := watchedPair(t, srv, opt, ns, src)

	// Both scripts are in Redis' script cache: no NOSCRIPT retry moves a
	// visit onto the pipelined connection.
	src.set("warm", 1)
	_, err := p.Get(ctx, "warm")
	require.NoError(t, err)
	require.NoError(t, q.Set(ctx, "other", 5)) // a key P holds no copy of

	const k = "k"
	key := p.Key(k)
	src.set(k, 1)
	gate := g.park(t, k, 1)
	many := inBackground(func(ctx context.Context) (map[string]int64, error) { return p.GetMany(ctx, []string{k, "other"}) })
	gate.awaitParked(t, "P's load of k, under the lease its visit took")

	visit := proxy.carrying(key)
	require.Len(t, visit, 1, "the visit of k went over one connection (the pooled one)")
	m := pw.mark(key)
	if cut {
		addr := visit[0].server.LocalAddr().String()
		visit[0].sever()
		awaitClientGone(t, srv, addr)
	}

	gate.free()
	got, err := await(t, many, "P's GetMany")
	require.NoError(t, err)
	require.Equal(t, map[string]int64{k: 1, "other": 5}, got)
	require.NoError(t, cache.AwaitWrites(ctx, p, k))
	require.Len(t, proxy.carrying(key), 2, "the load's write went over the pipelined connection")
	require.Zero(t, pw.flushesSince(m), "P has noticed nothing")
	pw.awaitPushOf(t, m, "the echo of the load's write")
	before := p.Stats().LocalHits
	v, err := p.Get(ctx, k)
	require.NoError(t, err)
	require.EqualValues(t, 1, v)
	if cut {
		// The write's own echo was the one push: the copy stays. (Intact,
		// the pooled connection tracks the key too, and its push may drop
		// the copy: safe, if one more read.)
		require.Greater(t, p.Stats().LocalHits, before, "P keeps the copy its load wrote")
	}

	// Another process changes k; P hears of it on its healthy connection.
	src.set(k, 2)
	m = pw.mark(key)
	require.NoError(t, q.Set(ctx, k, 2))
	pw.awaitPushOf(t, m, "P hears of Q's Set")
	v, err = p.Get(ctx, k)
	require.NoError(t, err)
	assert.EqualValues(t, 2, v, "G4: P received the invalidation of Q's Set and still serves its copy of the old value (the push was taken for the echo of P's own write)")
}

// ---------------------------------------------------------------------------
// Attacks that held: regression tests.

// TestAdvWritesThatDoNotLandLeaveNoEchoBehind: a write that announced an
// echo and then did not land, or landed with an error, must not leave an
// expected echo behind to swallow the next change of the key. Each round ends
// with another process's Set, whose push must drop P's copy.
func TestAdvWritesThatDoNotLandLeaveNoEchoBehind(t *testing.T) {
	t.Parallel()
	// finalChange makes Q change k to v and checks that P, having heard of
	// it, reads v; P holds a copy of k tracked before.
	finalChange := func(t *testing.T, ctx context.Context, p, q *cache.Cache[string, int64], pw *pushWatch, src *source, k string, v int64) {
		t.Helper()
		src.set(k, v)
		m := pw.mark(p.Key(k))
		require.NoError(t, q.Set(ctx, k, v))
		pw.awaitPushOf(t, m, "P hears of Q's Set")
		got, err := p.Get(ctx, k)
		require.NoError(t, err)
		assert.Equal(t, v, got, "P heard of Q's Set and must not serve its old copy")
	}

	t.Run("Set refused by the ACL", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		srv := redistest.Start(t, redistest.Config{Users: []redistest.User{{
			Name: "reader", Password: "r", Rules: []string{"~*", "&*", "+@all", "-@write"},
		}}})
		ns := namespace(t)
		src := newSource()
		opt := srv.ClientOption()
		opt.Username, opt.Password = "reader", "r"
		p, pw, q := watchedPair(t, srv, opt, ns, src)
		require.NoError(t, q.Set(ctx, "k", 1))
		require.EqualValues(t, 1, warmCopy(t, p, "k"))
		require.Error(t, p.Set(ctx, "k", 9), "the reader may not write")
		finalChange(t, ctx, p, q, pw, src, "k", 2)
	})

	t.Run("load's write discarded (the lease was overwritten)", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		srv := redistest.Start(t, redistest.Config{})
		ns := namespace(t)
		src, g := gatedSource()
		p, pw, q := watchedPair(t, srv, srv.ClientOption(), ns, src)
		src.set("k", 1)
		gate := g.park(t, "k", 1)
		old := inBackground(func(ctx context.Context) (int64, error) { return p.Get(ctx, "k") })
		gate.awaitParked(t, "P's load")
		src.set("k", 2)
		m := pw.mark(p.Key("k"))
		require.NoError(t, q.Set(ctx, "k", 2))
		pw.awaitPushOf(t, m, "P hears of Q's Set over its lease")
		gate.free()
		v, err := await(t, old, "P's Get")
		require.NoError(t, err)
		require.EqualValues(t, 1, v)
		require.NoError(t, cache.AwaitWrites(ctx, p, "k"))
		require.EqualValues(t, 1, p.Stats().DiscardedFills)
		require.EqualValues(t, 2, warmCopy(t, p, "k"))
		finalChange(t, ctx, p, q, pw, src, "k", 3)
	})

	t.Run("Set landed but its tag index has another type", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		srv := redistest.Start(t, redistest.Config{})
		ns := namespace(t)
		src := newSource()
		_, err := srv.Do(ctx, "SET", ns+"#tag:t", "not a set")
		require.NoError(t, err)
		p, pw, q := watchedPair(t, srv, srv.ClientOption(), ns, src)
		m := pw.mark(p.Key("k"))
		require.Error(t, p.Set(ctx, "k", 2, cache.WithTags("t")), "the tag index is not a set")
		pw.awaitPushOf(t, m, "the push of P's own Set, which did land")
		src.set("k", 2)
		require.EqualValues(t, 2, warmCopy(t, p, "k"))
		finalChange(t, ctx, p, q, pw, src, "k", 3)
	})
}

// TestAdvKeyOfAnotherType: a key of the namespace holding a list. Get and
// GetMany answer at once, alike, with Redis' WRONGTYPE (not ErrUnavailable,
// no load, no hang) for that key alone; Set replaces it, and the value is
// then read back.
func TestAdvKeyOfAnotherType(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := redistest.Start(t, redistest.Config{})
	ns := namespace(t)
	src, g := gatedSource()
	_, err := srv.Do(ctx, "RPUSH", ns+":k", "x")
	require.NoError(t, err)
	src.set("k", 1)
	client := connect(t, srv)
	c := versionCache(t, client, ns, src)

	_, err = await(t, inBackground(func(ctx context.Context) (int64, error) { return c.Get(ctx, "k") }), "Get of a list")
	require.Error(t, err)
	assert.NotErrorIs(t, err, cache.ErrUnavailable)
	assert.Contains(t, err.Error(), "WRONGTYPE")
	var ke *loader.KeyError[string]
	require.ErrorAs(t, err, &ke)
	assert.Equal(t, "k", ke.Key)
	// With another key, whose visit is not touched by k's failure.
	src.set("j", 2)
	m, err := await(t, inBackground(func(ctx context.Context) (map[string]int64, error) { return c.GetMany(ctx, []string{"k", "j"}) }), "GetMany of a list and a key")
	require.Error(t, err)
	assert.Equal(t, map[string]int64{"j": 2}, m)
	assert.Contains(t, err.Error(), "WRONGTYPE")
	require.ErrorAs(t, err, &ke)
	assert.Equal(t, "k", ke.Key)
	assert.Zero(t, g.loadsOf("k"), "nothing was loaded")

	require.NoError(t, c.Set(ctx, "k", 5))
	v, err := c.Get(ctx, "k")
	require.NoError(t, err)
	assert.EqualValues(t, 5, v)
}

// TestAdvScriptCacheFlushed: SCRIPT FLUSH under a running client (as after a
// restart or failover). Every EVALSHA meets NOSCRIPT and is sent again: a
// miss loads once and writes (another process finds the value), Set and
// GetMany work, and the copies land as before.
func TestAdvScriptCacheFlushed(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := redistest.Start(t, redistest.Config{})
	ns := namespace(t)
	src, g := gatedSource()
	pc := connect(t, srv)
	p := versionCache(t, pc, ns, src)
	src.set("warm", 1)
	_, err := p.Get(ctx, "warm")
	require.NoError(t, err)
	require.NoError(t, p.Set(ctx, "warm", 1))

	for _, step := range []struct {
		name string
		do   func(t *testing.T)
	}{
		{"Get of a missing key", func(t *testing.T) {
			src.set("a", 1)
			v, err := p.Get(ctx, "a")
			require.NoError(t, err)
			assert.EqualValues(t, 1, v)
			assert.Equal(t, 1, g.loadsOf("a"))
			reader, err := cache.New(connect(t, srv), cache.Options[string, int64]{Namespace: ns, Codec: codec.MsgPack[int64]()})
			require.NoError(t, err)
			v, err = reader.Get(ctx, "a")
			require.NoError(t, err, "the load's write landed")
			assert.EqualValues(t, 1, v)
		}},
		{"Set", func(t *testing.T) {
			require.NoError(t, p.Set(ctx, "b", 2))
			assert.EqualValues(t, 2, warmCopy(t, p, "b"))
		}},
		{"GetMany", func(t *testing.T) {
			src.set("c", 3)
			src.set("d", 4)
			m, err := p.GetMany(ctx, []string{"c", "d"})
			require.NoError(t, err)
			assert.Equal(t, map[string]int64{"c": 3, "d": 4}, m)
		}},
	} {
		_, err := srv.Do(ctx, "SCRIPT", "FLUSH")
		require.NoError(t, err)
		t.Run(step.name, step.do)
	}
}

// TestAdvLeaderLeavesWhileAnotherProcessLoads: process Q holds k's lease
// (its load parked). In P, Get#1 leads the read and waits for Q's lease;
// Get#2 joins Get#1's flight. Get#1's context ends: Get#2 must neither fail
// nor load (errAbandoned sends it round again, to wait for Q), and returns
// Q's value once Q writes it. One load in all (G5).
func TestAdvLeaderLeavesWhileAnotherProcessLoads(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := redistest.Start(t, redistest.Config{})
	ns := namespace(t)
	qsrc, qg := gatedSource()
	psrc, pg := gatedSource()
	qsrc.set("k", 7)
	psrc.set("k", 7)
	qc := connect(t, srv)
	q := versionCache(t, qc, ns, qsrc)
	pc := connect(t, srv)
	p := versionCache(t, pc, ns, psrc)

	gate := qg.park(t, "k", 7)
	held := inBackground(func(ctx context.Context) (int64, error) { return q.Get(ctx, "k") })
	gate.awaitParked(t, "Q's load")

	short, cancel := context.WithCancel(ctx)
	defer cancel()
	first := inBackground(func(context.Context) (int64, error) { return p.Get(short, "k") })
	deadline := time.Now().Add(patience)
	for p.Stats().LeaseWaits == 0 {
		require.True(t, time.Now().Before(deadline), "P's Get#1 never waited for Q's lease")
		runtime.Gosched()
	}
	second := inBackground(func(ctx context.Context) (int64, error) { return p.Get(ctx, "k") })
	awaitGoroutines(t, "P's Get#2 joins Get#1's flight", 1, func(s string) bool {
		return strings.Contains(s, "flight.(*Flight[...]).Wait(")
	})
	cancel()
	_, err := await(t, first, "P's Get#1")
	require.ErrorIs(t, err, context.Canceled)

	gate.free()
	v, err := await(t, held, "Q's Get")
	require.NoError(t, err)
	require.EqualValues(t, 7, v)
	v, err = await(t, second, "P's Get#2")
	require.NoError(t, err)
	assert.EqualValues(t, 7, v)
	assert.Zero(t, pg.loadsOf("k"), "P never loaded: Q's load was the only one")
}

// TestAdvSetThroughOneCacheDuringALoadOfAnother: caches X and Y of one
// namespace on one client. X's load of k parks under its lease; Y Sets k,
// overwriting the lease. From the moment Set returns both caches read Y's
// value (G3), X's load then discards its write (G1), and another process's
// later Set is seen by both once its push arrived (no echo left behind).
func TestAdvSetThroughOneCacheDuringALoadOfAnother(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := redistest.Start(t, redistest.Config{})
	ns := namespace(t)
	src, g := gatedSource()
	pc, pw := watchedClient(t, srv.ClientOption())
	x, y := versionCache(t, pc, ns, src), versionCache(t, pc, ns, src)
	qc := connect(t, srv)
	q := versionCache(t, qc, ns, src)

	src.set("k", 1)
	gate := g.park(t, "k", 1)
	old := inBackground(func(ctx context.Context) (int64, error) { return x.Get(ctx, "k") })
	gate.awaitParked(t, "X's load")
	src.set("k", 2)
	require.NoError(t, y.Set(ctx, "k", 2))
	for name, c := range map[string]*cache.Cache[string, int64]{"X": x, "Y": y} {
		v, err := c.Get(ctx, "k")
		require.NoError(t, err)
		assert.EqualValues(t, 2, v, "%s reads Y's Set at once", name)
	}
	gate.free()
	v, err := await(t, old, "X's parked Get")
	require.NoError(t, err)
	assert.EqualValues(t, 1, v)
	require.NoError(t, cache.AwaitWrites(ctx, x, "k"))
	assert.EqualValues(t, 1, x.Stats().DiscardedFills, "X's load did not write over Y's Set")
	for name, c := range map[string]*cache.Cache[string, int64]{"X": x, "Y": y} {
		assert.EqualValues(t, 2, warmCopy(t, c, "k"), "%s after X's load", name)
	}

	src.set("k", 3)
	m := pw.mark(x.Key("k"))
	require.NoError(t, q.Set(ctx, "k", 3))
	pw.awaitPushOf(t, m, "P hears of Q's Set")
	for name, c := range map[string]*cache.Cache[string, int64]{"X": x, "Y": y} {
		v, err := c.Get(ctx, "k")
		require.NoError(t, err)
		assert.EqualValues(t, 3, v, "%s after Q's Set reached P", name)
	}
}
