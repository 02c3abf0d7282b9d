package cache_test

// Adversarial black-box tests of the guarantees G2, G3 and G4 of the design
// (and of the read path they rest on): every test forces its interleaving
// with channels and Redis' own invalidation pushes, never with sleeps, and
// every wait for an event gives up after [patience] with a message saying
// what did not happen.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/asidetest"
	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/codec"
	"github.com/aside-go/aside/internal/redistest"
	"github.com/aside-go/aside/loader"
	"github.com/aside-go/aside/ttlpolicy"
)

// TestG2ReadAfterAnotherProcessInvalidates attacks G2 across processes: a
// read in process R that reaches Redis after process W's Invalidate returned
// (and after R received Redis' push for it) never returns the value of R's
// load that began before the invalidation — whether that load is still
// running or finished first, through Get or GetMany.
func TestG2ReadAfterAnotherProcessInvalidates(t *testing.T) {
	t.Parallel()
	for _, read := range []struct {
		name string
		many bool
	}{{"Get", false}, {"GetMany", true}} {
		for _, order := range releaseOrders {
			t.Run(read.name+"/"+order.name, func(t *testing.T) {
				t.Parallel()
				ctx := testContext(t)
				ns := namespace(t)
				src, g := gatedSource()
				rc, rp := watchedClient(t, shared.ClientOption())
				r := versionCache(t, rc, ns, src)
				w := versionCache(t, connect(t, shared), ns, src)
				for round := range 20 {
					k := fmt.Sprintf("k%d", round)
					overtaken(t, round, r, src, g, k, order.releaseFirst, func() {
						src.set(k, 2)
						m := rp.mark(r.Key(k))
						require.NoError(t, w.Invalidate(ctx, k))
						rp.awaitKey(t, m, fmt.Sprintf("round %d: R hears of W's Invalidate(%s) (R's parked load holds the key's lease)", round, k))
					}, readVia(r, read.many))
					for name, c := range map[string]*cache.Cache[string, int64]{"R": r, "W": w} {
						v, err := c.Get(ctx, k)
						require.NoError(t, err, "round %d: %s.Get", round, name)
						require.EqualValues(t, 2, v, "round %d: %s.Get at the end", round, name)
					}
				}
			})
		}
	}
}

// TestG2ReadAfterFlushOrDroppedConnection attacks G2 for the invalidations
// that name no key: after FLUSHDB or FLUSHALL returned (through the reader's
// own client), or after the reader's connection dropped and another process
// then deleted the key, a read never returns the value of a load that began
// before. Each reader has one connection (Connect's default), so that its
// nil push is the whole client's news.
func TestG2ReadAfterFlushOrDroppedConnection(t *testing.T) {
	t.Parallel()
	events := []struct {
		name string
		// happen moves the source of k to 2 and makes the event happen:
		// it returns once r's client reported the nil push (and, for a
		// dropped connection, once another client deleted k).
		happen func(t *testing.T, ctx context.Context, srv *redistest.Server, rc *cache.Client, rp *pushWatch, ns string, src *source, k string)
	}{
		{"FLUSHDB", func(t *testing.T, ctx context.Context, _ *redistest.Server, rc *cache.Client, rp *pushWatch, _ string, src *source, k string) {
			src.set(k, 2)
			rr := rc.Rueidis()
			m := rp.mark("")
			require.NoError(t, rr.Do(ctx, rr.B().Flushdb().Build()).Error())
			rp.awaitFlush(t, m, "R hears of its own FLUSHDB")
		}},
		{"FLUSHALL", func(t *testing.T, ctx context.Context, _ *redistest.Server, rc *cache.Client, rp *pushWatch, _ string, src *source, k string) {
			src.set(k, 2)
			rr := rc.Rueidis()
			m := rp.mark("")
			require.NoError(t, rr.Do(ctx, rr.B().Flushall().Build()).Error())
			rp.awaitFlush(t, m, "R hears of its own FLUSHALL")
		}},
		{"connection drop", func(t *testing.T, ctx context.Context, srv *redistest.Server, _ *cache.Client, rp *pushWatch, ns string, src *source, k string) {
			m := rp.mark("")
			_, err := srv.Do(ctx, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
			require.NoError(t, err)
			rp.awaitFlush(t, m, "R hears that its connection dropped")
			// The key changes while R is not connected: Redis cannot push
			// this DEL to R, which must not need it.
			src.set(k, 2)
			w := versionCache(t, connect(t, srv), ns, src)
			require.NoError(t, w.Invalidate(ctx, k))
		}},
	}
	for _, ev := range events {
		for _, order := range releaseOrders {
			t.Run(ev.name+"/"+order.name, func(t *testing.T) {
				t.Parallel()
				ctx := testContext(t)
				srv := redistest.Start(t, redistest.Config{})
				ns := namespace(t)
				src, g := gatedSource()
				rc, rp := watchedClient(t, srv.ClientOption())
				r := versionCache(t, rc, ns, src)
				for round := range 10 {
					k := fmt.Sprintf("k%d", round)
					overtaken(t, round, r, src, g, k, order.releaseFirst, func() {
						ev.happen(t, ctx, srv, rc, rp, ns, src, k)
					}, func(ctx context.Context, k string) (int64, error) { return r.Get(ctx, k) })
					v, err := r.Get(ctx, k)
					require.NoError(t, err, "round %d", round)
					require.EqualValues(t, 2, v, "round %d: Get at the end", round)
				}
			})
		}
	}
}

// TestG4NonInjectiveKeyDropsEveryCopy attacks G3 and G4 with a Key function
// that maps two typed keys to one Redis key ("Bob3" and "bob3" are both
// "<ns>:bob3"): with a decoded copy of each in memory, an Invalidate or a Set
// in the same process, or a Set by another process (once its push arrived),
// leaves no copy of either serving the old value.
func TestG4NonInjectiveKeyDropsEveryCopy(t *testing.T) {
	t.Parallel()
	changes := []struct {
		name string
		// change writes or invalidates the key (named in lower case) and
		// returns the value every form must read afterwards.
		change func(t *testing.T, ctx context.Context, r, w *cache.Cache[string, int64], rp *pushWatch, src *source, key string) int64
	}{
		{"Invalidate in the same process", func(t *testing.T, ctx context.Context, r, _ *cache.Cache[string, int64], _ *pushWatch, src *source, key string) int64 {
			src.set(key, 2)
			require.NoError(t, r.Invalidate(ctx, key))
			return 2
		}},
		{"Set in the same process", func(t *testing.T, ctx context.Context, r, _ *cache.Cache[string, int64], _ *pushWatch, src *source, key string) int64 {
			src.set(key, 3)
			require.NoError(t, r.Set(ctx, key, 3))
			return 3
		}},
		{"Set by another process", func(t *testing.T, ctx context.Context, r, w *cache.Cache[string, int64], rp *pushWatch, src *source, key string) int64 {
			src.set(key, 4)
			m := rp.mark(r.Key(key))
			require.NoError(t, w.Set(ctx, key, 4))
			rp.awaitKey(t, m, fmt.Sprintf("R hears of W's Set(%s)", key))
			return 4
		}},
	}
	for _, ch := range changes {
		t.Run(ch.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			ns := namespace(t)
			src := newSource()
			rc, rp := watchedClient(t, shared.ClientOption())
			r := versionCache(t, rc, ns, src, folded(src))
			w := versionCache(t, connect(t, shared), ns, src, folded(src))
			for round := range 10 {
				name := fmt.Sprintf("Bob%d", round)
				lower, upper := strings.ToLower(name), strings.ToUpper(name)
				src.set(lower, 1)
				require.EqualValues(t, 1, warmCopy(t, r, name), "round %d", round)
				require.EqualValues(t, 1, warmCopy(t, r, lower), "round %d", round)
				// Both copies are in memory: the first is still a local hit.
				before := r.Stats()
				v, err := r.Get(ctx, name)
				require.NoError(t, err)
				require.EqualValues(t, 1, v)
				local, _ := hitsSince(before, r.Stats())
				require.EqualValues(t, 1, local, "round %d: %q and %q each have a copy in memory", round, name, lower)

				want := ch.change(t, ctx, r, w, rp, src, lower)
				for _, form := range []string{name, lower, upper} {
					v, err := r.Get(ctx, form)
					require.NoError(t, err, "round %d: Get(%q)", round, form)
					assert.EqualValues(t, want, v, "round %d: Get(%q) after the change of %q (same Redis key %s)", round, form, lower, r.Key(form))
				}
				if t.Failed() {
					return
				}
			}
		})
	}
}

// TestG3WriteThroughOneCacheIsReadThroughAnother attacks G3 with two Cache
// values of one namespace on one client: a Set (or an Invalidate) through
// one is seen by the very next Get through the other, whether the reader
// held a decoded copy of the key or not.
func TestG3WriteThroughOneCacheIsReadThroughAnother(t *testing.T) {
	t.Parallel()
	const iterations = 800
	for _, tc := range []struct {
		name                   string
		aWrites, warm, viaDrop bool
	}{
		{"A sets then B reads", true, false, false},
		{"A sets then B reads over its copy", true, true, false},
		{"B sets then A reads", false, false, false},
		{"B sets then A reads over its copy", false, true, false},
		{"A invalidates then B reloads over its copy", true, true, true},
		{"B invalidates then A reloads over its copy", false, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			ns := namespace(t)
			src := newSource()
			client, p := watchedClient(t, shared.ClientOption())
			writer, reader := versionCache(t, client, ns, src), versionCache(t, client, ns, src)
			if !tc.aWrites {
				writer, reader = reader, writer
			}
			const k = "k"
			src.set(k, 0)
			require.NoError(t, writer.Set(ctx, k, 0))
			stale, done := 0, int64(0)
			var first string
			for i := int64(1); i <= iterations && stale < 10; i++ {
				done = i
				if tc.warm {
					warmCopy(t, reader, k)
				}
				m := p.mark(reader.Key(k))
				src.set(k, i)
				if tc.viaDrop {
					require.NoError(t, writer.Invalidate(ctx, k))
				} else {
					require.NoError(t, writer.Set(ctx, k, i))
				}
				v, err := reader.Get(ctx, k)
				require.NoError(t, err, "iteration %d", i)
				if v != i {
					if stale == 0 {
						first = fmt.Sprintf("iteration %d read %d", i, v)
					}
					stale++
				}
				if tc.warm {
					// The reader's copy had the key tracked: the write's
					// push comes, and the next warm-up reads after it.
					p.awaitKey(t, m, fmt.Sprintf("iteration %d: the push of the write", i))
				}
			}
			// (The loop stops at the tenth stale read: the count says enough.)
			assert.Zero(t, stale, "%d of %d reads through the other Cache of the client missed the write just made (first: %s)", stale, done, first)
		})
	}
}

// TestGCopiesLandAtOnce attacks the read path the guarantees rest on: the
// value a Get found in Redis, or loaded, or that the process wrote itself, is
// in process memory for the very next Get (with default options), which
// neither reads Redis nor misses.
func TestGCopiesLandAtOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// prepare leaves k holding v, read (or written) once by r.
		prepare func(t *testing.T, ctx context.Context, r, w *cache.Cache[string, int64], src *source, k string, v int64)
	}{
		{"after a load", func(t *testing.T, ctx context.Context, r, _ *cache.Cache[string, int64], src *source, k string, v int64) {
			src.set(k, v)
			got, err := r.Get(ctx, k)
			require.NoError(t, err)
			require.Equal(t, v, got)
		}},
		{"after a Redis hit", func(t *testing.T, ctx context.Context, r, w *cache.Cache[string, int64], _ *source, k string, v int64) {
			require.NoError(t, w.Set(ctx, k, v))
			before := r.Stats()
			got, err := r.Get(ctx, k)
			require.NoError(t, err)
			require.Equal(t, v, got)
			_, redis := hitsSince(before, r.Stats())
			require.EqualValues(t, 1, redis, "the first Get finds the other process's value in Redis")
		}},
		{"after its own Set", func(t *testing.T, ctx context.Context, r, _ *cache.Cache[string, int64], _ *source, k string, v int64) {
			require.NoError(t, r.Set(ctx, k, v))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			ns := namespace(t)
			src := newSource()
			defaults := func(client *cache.Client) *cache.Cache[string, int64] {
				c, err := cache.New(client, cache.Options[string, int64]{Namespace: ns, Loader: src.load})
				require.NoError(t, err)
				return c
			}
			r, w := defaults(connect(t, shared)), defaults(connect(t, shared))
			for round := range 10 {
				k := fmt.Sprintf("k%d", round)
				v := int64(100 + round)
				tc.prepare(t, ctx, r, w, src, k, v)
				before := r.Stats()
				for range 2 {
					got, err := r.Get(ctx, k)
					require.NoError(t, err)
					require.Equal(t, v, got)
				}
				local, redis := hitsSince(before, r.Stats())
				assert.EqualValues(t, 2, local, "round %d: both Gets %s are served from process memory", round, tc.name)
				assert.Zero(t, redis, "round %d: no Get %s reads Redis", round, tc.name)
				if t.Failed() {
					return
				}
			}
		})
	}
}

// TestGGetAndGetManyAgree: GetMany answers each key as Get does — not found
// is an absence, not an error; a copy past its soft TTL is served from
// memory; a cold key costs one load and a bounded number of Redis visits
// however many callers want it; a loader's failure names its key with a
// *loader.KeyError; Redis being down follows the same policy.
func TestGGetAndGetManyAgree(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct {
		name string
		opts func(*cache.Options[string, int64])
	}{
		{"not found without a loader", func(o *cache.Options[string, int64]) { o.Loader = nil }},
		{"not found by the loader", func(*cache.Options[string, int64]) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			c := versionCache(t, connect(t, shared), namespace(t), newSource(), tc.opts)
			get := func(k string) {
				_, err := c.Get(ctx, k)
				assert.ErrorIs(t, err, cache.ErrNotFound, "Get(%q) of a missing key", k)
			}
			getMany := func(k string) {
				m, err := c.GetMany(ctx, []string{k})
				assert.NoError(t, err, "GetMany([%q]) of a missing key reports it by its absence, as Get's ErrNotFound", k)
				assert.NotContains(t, m, k)
			}
			get("get-first")
			getMany("get-first")
			getMany("getmany-first")
			get("getmany-first")
		})
	}

	t.Run("copy past its soft TTL", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		clock := asidetest.NewClock(time.Now())
		src, g := gatedSource()
		c := versionCache(t, connect(t, shared), namespace(t), src, func(o *cache.Options[string, int64]) {
			o.TTL = ttlpolicy.Fixed(10 * time.Minute).WithSoft(0.5)
			o.Now = clock.Now
		})
		keys := []string{"via-getmany", "via-get"}
		for _, k := range keys {
			src.set(k, 1)
			require.EqualValues(t, 1, warmCopy(t, c, k))
			// The refreshes these reads start park in the loader: nothing
			// but the reads below touches the counters.
			g.park(t, k, 1)
		}
		clock.Add(6 * time.Minute) // past the soft expiry (5 min), within the hard one (10 min)

		before := c.Stats()
		m, err := c.GetMany(ctx, keys[:1])
		require.NoError(t, err)
		assert.Equal(t, map[string]int64{keys[0]: 1}, m)
		local, redis := hitsSince(before, c.Stats())
		assert.EqualValues(t, 1, local, "GetMany serves a copy past its soft TTL from memory, as Get does")
		assert.Zero(t, redis, "GetMany does not read Redis for a copy past its soft TTL")

		before = c.Stats()
		v, err := c.Get(ctx, keys[1])
		require.NoError(t, err)
		assert.EqualValues(t, 1, v)
		local, redis = hitsSince(before, c.Stats())
		assert.EqualValues(t, 1, local, "Get serves a copy past its soft TTL from memory")
		assert.Zero(t, redis)
	})

	t.Run("50 Gets of a cold key", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		srv := redistest.Start(t, redistest.Config{})
		src := newSource()
		c := versionCache(t, connect(t, srv), namespace(t), src)
		// Connections up and scripts loaded, on another key.
		src.set("warm-up", 1)
		_, err := c.Get(ctx, "warm-up")
		require.NoError(t, err)
		// Its write runs after the Get returned: it is not one of those
		// counted.
		require.NoError(t, cache.AwaitWrites(ctx, c, "warm-up"))

		src.set("cold", 2)
		loadsBefore := src.loads.Load()
		statsBefore := commandCalls(t, srv)
		mon := startMonitor(t, srv)
		begin := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, 50)
		for range 50 {
			wg.Go(func() {
				<-begin
				v, err := c.Get(ctx, "cold")
				if err == nil && v != 2 {
					err = fmt.Errorf("got %d", v)
				}
				if err != nil {
					errs <- err
				}
			})
		}
		close(begin)
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		visits := mon.visits(t, srv)
		delta := map[string]int{}
		for name, n := range commandCalls(t, srv) {
			if d := n - statsBefore[name]; d > 0 && name != "info" && name != "echo" && name != "monitor" {
				delta[name] = d
			}
		}
		t.Logf("50 Gets of a cold key: %d visits (%s); INFO commandstats delta, script commands included: %v", len(visits), tally(visits), delta)
		assert.EqualValues(t, 1, src.loads.Load()-loadsBefore, "the loader runs once")
		// At most: the visit that takes the lease; one that finds it
		// (Redis pushes the taking of the lease back, which forgets the
		// first visit's flight), and once more after the write's echo if
		// it found the lease before the load was registered as this
		// process's own; one that finds the value, by a Get that comes
		// between the write's echo (which forgets the second flight) and
		// the copy's landing; and the write. Not one per Get.
		assert.LessOrEqual(t, len(visits), 5, "at most four visits and one write-back for 50 Gets of one key in one process; got %s", tally(visits))
	})

	t.Run("loader error for one key", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		boom := errors.New("the source failed for this key")
		c := versionCache(t, connect(t, shared), namespace(t), newSource(), func(o *cache.Options[string, int64]) {
			o.Loader = func(_ context.Context, k string) (int64, error) {
				if k == "bad" {
					return 0, boom
				}
				return 7, nil
			}
		})
		m, err := c.GetMany(ctx, []string{"good", "bad"})
		require.Error(t, err)
		assert.Equal(t, map[string]int64{"good": 7}, m)
		assert.ErrorIs(t, err, boom)
		var ke *loader.KeyError[string]
		if assert.True(t, errors.As(err, &ke), "GetMany's error names the failed key with a *loader.KeyError[string]: %v", err) {
			assert.Equal(t, "bad", ke.Key)
		}

		_, err = c.Get(ctx, "bad")
		require.Error(t, err)
		assert.ErrorIs(t, err, boom)
		ke = nil
		if assert.True(t, errors.As(err, &ke), "Get's error names the failed key with a *loader.KeyError[string], as GetMany's does: %v", err) {
			assert.Equal(t, "bad", ke.Key)
		}
	})

	for _, tc := range []struct {
		name   string
		policy cache.RedisDownPolicy
	}{{"FailOpen", cache.FailOpen}, {"FailFast", cache.FailFast}} {
		t.Run("Redis down/"+tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			srv := redistest.Start(t, redistest.Config{})
			src := newSource()
			c := versionCache(t, connect(t, srv), namespace(t), src, func(o *cache.Options[string, int64]) { o.OnRedisDown = tc.policy })
			src.set("up", 1)
			src.set("via-get", 2)
			src.set("via-getmany", 3)
			_, err := c.Get(ctx, "up") // the client is connected when Redis goes
			require.NoError(t, err)
			require.NoError(t, srv.Kill()) // the port stays this server's until Cleanup

			v, err := c.Get(ctx, "via-get")
			m, merr := c.GetMany(ctx, []string{"via-getmany"})
			if tc.policy == cache.FailOpen {
				require.NoError(t, err, "Get falls back to the loader")
				assert.EqualValues(t, 2, v)
				require.NoError(t, merr, "GetMany falls back to the loader")
				assert.Equal(t, map[string]int64{"via-getmany": 3}, m)
				return
			}
			assert.ErrorIs(t, err, cache.ErrUnavailable, "Get fails fast")
			assert.ErrorIs(t, merr, cache.ErrUnavailable, "GetMany fails fast")
		})
	}
}

// TestGNoStaleValueUnderRandomLoadWithFoldedKeys is TestNoStaleKeysUnderRandomLoad
// with every sharing there is: two clients (processes), each with two Cache
// values of the namespace, and a case-folding Key function with readers and
// writers using mixed-case forms of each key. Writers move the source and
// then Invalidate or Set through a random cache. Afterwards Redis holds no
// stale value (G1), and once a final Set of each key's value through one
// cache has been pushed to every client, every cache reads the source's
// value under every form of the key (G2–G4).
//
// The clients use one connection each (Connect's default), so that the
// tracking read before the final Set and the push after it are on the
// connection that carries every other push of the key.
func TestGNoStaleValueUnderRandomLoadWithFoldedKeys(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ns := namespace(t)
	const keys, clients, perClient, readers, writers, rounds = 24, 2, 2, 6, 3, 200
	src := newSource()
	names := make([]string, keys)
	for i := range names {
		names[i] = fmt.Sprintf("key%d", i)
		src.set(names[i], 0)
	}
	forms := func(name string) []string {
		return []string{name, strings.ToUpper(name), "K" + name[1:], "k" + strings.ToUpper(name[1:])}
	}
	// Loads yield now and then, so that updates land while loads are
	// under way.
	src.hook = func(string, int64) {
		if rand.IntN(8) == 0 {
			for range 50 {
				runtime.Gosched()
			}
		}
	}
	type process struct {
		client *cache.Client
		pushes *pushWatch
	}
	procs := make([]process, clients)
	var caches []*cache.Cache[string, int64]
	for i := range procs {
		c, p := watchedClient(t, shared.ClientOption())
		procs[i] = process{c, p}
		for range perClient {
			caches = append(caches, versionCache(t, c, ns, src, folded(src)))
		}
	}
	pick := func(s []string) string { return s[rand.IntN(len(s))] }

	var keyLocks [keys]sync.Mutex
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range rounds {
				i := rand.IntN(keys)
				c, form := caches[rand.IntN(len(caches))], pick(forms(names[i]))
				keyLocks[i].Lock()
				v := src.get(names[i]) + 1
				src.set(names[i], v)
				var err error
				if rand.IntN(2) == 0 {
					err = c.Invalidate(ctx, form)
				} else {
					err = c.Set(ctx, form, v)
				}
				keyLocks[i].Unlock()
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for range readers {
		wg.Go(func() {
			for range rounds * 3 {
				c, form := caches[rand.IntN(len(caches))], pick(forms(names[rand.IntN(keys)]))
				if _, err := c.Get(ctx, form); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	// Redis itself holds no stale value: a fresh process without a loader
	// reads what Redis holds.
	auditor, err := cache.New(connect(t, shared), cache.Options[string, int64]{Namespace: ns, Codec: codec.MsgPack[int64]()})
	require.NoError(t, err)
	for _, name := range names {
		v, err := auditor.Get(ctx, name)
		if errors.Is(err, cache.ErrNotFound) {
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, src.get(name), v, "Redis holds a stale value of %s", name)
	}

	// Every cache reads the source, under every form, once a final Set of
	// each key has reached every client.
	stale := 0
	for _, name := range names {
		key := caches[0].Key(name)
		marks := make([]pushMark, len(procs))
		for i, p := range procs {
			// Redis tracks the key for this client now, so the final Set
			// pushes to it; the GET's reply comes after any push sent
			// before. (CLIENT CACHING YES is refused unless tracking is
			// in OPTIN mode; in OPTOUT mode the GET is tracked anyway.)
			rr := p.client.Rueidis()
			res := rr.DoMulti(ctx, rr.B().ClientCaching().Yes().Build(), rr.B().Get().Key(key).Build())
			if _, refused := rueidis.IsRedisErr(res[0].Error()); !refused {
				require.NoError(t, res[0].Error())
			}
			if err := res[1].Error(); !rueidis.IsRedisNil(err) {
				require.NoError(t, err)
			}
			marks[i] = p.pushes.mark(key)
		}
		want := src.get(name)
		require.NoError(t, caches[rand.IntN(len(caches))].Set(ctx, pick(forms(name)), want))
		for i, p := range procs {
			p.pushes.awaitKey(t, marks[i], fmt.Sprintf("client %d hears of the final Set of %s", i, key))
		}
		for ci, c := range caches {
			for _, form := range forms(name) {
				v, err := c.Get(ctx, form)
				require.NoError(t, err)
				if v != want {
					stale++
					if stale <= 10 {
						t.Logf("cache %d (client %d) Get(%q) = %d, source %d", ci, ci/perClient, form, v, want)
					}
				}
			}
		}
	}
	assert.Zero(t, stale, "stale reads after the final Set of every key reached every client")
}

// TestG2WithoutTracking attacks G2 and G5 when the server refuses client
// tracking: no push ever comes, so no flight can be forgotten by one. A read
// after another process's Invalidate must still load for itself, and a read
// while this process's own load runs (no invalidation) must wait for that
// load rather than run a second one.
func TestG2WithoutTracking(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Config{Users: []redistest.User{{
		Name: "app", Password: "secret", Rules: []string{"~*", "&*", "+@all", "-client|tracking"},
	}}})
	opt := srv.ClientOption()
	opt.Username, opt.Password = "app", "secret"
	rc, wc := connectWith(t, opt), connectWith(t, opt)
	require.False(t, rc.Tracking())
	ctx := testContext(t)
	ns := namespace(t)
	src, g := gatedSource()
	r := versionCache(t, rc, ns, src)
	w := versionCache(t, wc, ns, src)
	for round := range 10 {
		k := fmt.Sprintf("k%d", round)
		overtaken(t, round, r, src, g, k, round%2 == 0, func() {
			src.set(k, 2)
			require.NoError(t, w.Invalidate(ctx, k))
		}, readVia(r, round%4 < 2))
	}

	// No invalidation: the second read finds the first one's lease in
	// Redis, which proves nothing changed since that load began.
	src.set("shared", 1)
	gt := g.park(t, "shared", 1)
	first := inBackground(func(ctx context.Context) (int64, error) { return r.Get(ctx, "shared") })
	gt.awaitParked(t, "the first Get")
	second := inBackground(func(ctx context.Context) (int64, error) { return r.Get(ctx, "shared") })
	// The second Get is in flight (it may or may not have visited Redis
	// yet); either way it must end with the first load's value.
	gt.free()
	for name, ch := range map[string]<-chan outcome[int64]{"first": first, "second": second} {
		v, err := await(t, ch, name+" Get")
		require.NoError(t, err)
		assert.EqualValues(t, 1, v, name)
	}
	assert.Equal(t, 1, g.loadsOf("shared"), "one load for both")
}

// TestG2AcrossProcessesOnACluster is case 1 of G2 on a 3-primary cluster:
// the visit, the lease, the tracking and the push all happen on the key's
// own node.
func TestG2AcrossProcessesOnACluster(t *testing.T) {
	t.Parallel()
	topo := topologies()[1]
	ctx := testContext(t)
	ns := namespace(t)
	src, g := gatedSource()
	rc, rp := watchedClient(t, topo.opt(t))
	r := versionCache(t, rc, ns, src)
	w := versionCache(t, connectWith(t, topo.opt(t)), ns, src)
	for round := range 6 {
		k := fmt.Sprintf("k%d", round)
		overtaken(t, round, r, src, g, k, round%2 == 0, func() {
			src.set(k, 2)
			m := rp.mark(r.Key(k))
			require.NoError(t, w.Invalidate(ctx, k))
			rp.awaitKey(t, m, fmt.Sprintf("round %d: R hears of W's Invalidate(%s)", round, k))
		}, readVia(r, round%4 < 2))
	}
}
