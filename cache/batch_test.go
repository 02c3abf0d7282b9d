package cache_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/internal/redistest"
	"github.com/aside-go/aside/loader"
)

func TestGetManyMixesHitsMissesAndNotFound(t *testing.T) {
	t.Parallel()
	for _, topo := range topologies() {
		t.Run(topo.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			client := connectWith(t, topo.opt(t))
			boom := errors.New("row locked")
			src := &batchSource{fail: map[int64]error{13: boom}}
			c, err := cache.New(client, cache.Options[int64, User]{Namespace: namespace(t), BatchLoader: src.load})
			require.NoError(t, err)

			// 1..20 cached in Redis, 5 and 6 in memory too.
			values := map[int64]User{}
			for id := int64(1); id <= 20; id++ {
				values[id] = sampleUser(id)
			}
			require.NoError(t, c.SetMany(ctx, values))
			warm(t, c, 5)
			warm(t, c, 6)

			keys := []int64{}
			for id := int64(1); id <= 40; id++ { // 21..40 miss
				keys = append(keys, id)
			}
			keys = append(keys, -1, -2, 13, 5, 5) // not found, failing, repeats
			// 13 is cached: delete it so that it misses and fails.
			_, err = c.Delete(ctx, 13)
			require.NoError(t, err)

			got, err := c.GetMany(ctx, keys)
			require.Error(t, err)
			assert.ErrorIs(t, err, boom)
			assert.Contains(t, err.Error(), c.Key(13), "the failed key is named")
			assert.Equal(t, 1, src.callCount(), "one batch-loader call for all misses")
			src.mu.Lock()
			loadedKeys := append([]int64(nil), src.calls[0]...)
			src.mu.Unlock()
			sort.Slice(loadedKeys, func(i, j int) bool { return loadedKeys[i] < loadedKeys[j] })
			want := []int64{-2, -1, 13}
			for id := int64(21); id <= 40; id++ {
				want = append(want, id)
			}
			assert.Equal(t, want, loadedKeys, "only the misses are loaded")

			assert.Len(t, got, 39, "1..40 without 13")
			for id := int64(1); id <= 40; id++ {
				if id == 13 {
					assert.NotContains(t, got, id)
					continue
				}
				assert.Equal(t, sampleUser(id), got[id], "key %d", id)
			}
			assert.NotContains(t, got, int64(-1))

			// Everything loaded was written back: the next round loads
			// only the key that failed, and the not-found keys are
			// remembered.
			got, err = c.GetMany(ctx, keys)
			require.ErrorIs(t, err, boom)
			assert.Len(t, got, 39)
			assert.Equal(t, 2, src.callCount())
			src.mu.Lock()
			assert.Equal(t, []int64{13}, src.calls[1])
			src.mu.Unlock()
		})
	}
}

func TestGetManyWithSingleLoaderIsBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var inFlight, maxInFlight, calls atomic.Int64
	c := userCache(t, nil, namespace(t), nil, func(o *cache.Options[int64, User]) {
		o.BatchConcurrency = 4
		o.Loader = func(_ context.Context, id int64) (User, error) {
			calls.Add(1)
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for {
				m := maxInFlight.Load()
				if n <= m || maxInFlight.CompareAndSwap(m, n) {
					break
				}
			}
			if id%10 == 0 {
				return User{}, loader.ErrNotFound
			}
			return sampleUser(id), nil
		}
	})
	keys := make([]int64, 50)
	for i := range keys {
		keys[i] = int64(i + 1)
	}
	got, err := c.GetMany(ctx, keys)
	require.NoError(t, err)
	assert.Len(t, got, 45)
	assert.EqualValues(t, 50, calls.Load())
	assert.LessOrEqual(t, maxInFlight.Load(), int64(4))
}

func TestGetManyJoinsLoadsInProgress(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	release := make(chan struct{})
	started := make(chan struct{})
	var batchKeys [][]int64
	var mu sync.Mutex
	c, err := cache.New(connect(t, shared), cache.Options[int64, User]{
		Namespace: namespace(t),
		BatchLoader: func(_ context.Context, ids []int64) (map[int64]User, error) {
			mu.Lock()
			batchKeys = append(batchKeys, append([]int64(nil), ids...))
			first := len(batchKeys) == 1
			mu.Unlock()
			if first {
				close(started)
				<-release
			}
			out := map[int64]User{}
			for _, id := range ids {
				out[id] = sampleUser(id)
			}
			return out, nil
		},
	})
	require.NoError(t, err)

	// A Get of key 1 is loading it...
	done := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx, 1)
		done <- err
	}()
	<-started
	// ...so a GetMany of 1, 2, 3 loads only 2 and 3 and waits for 1.
	result := make(chan map[int64]User, 1)
	go func() {
		got, err := c.GetMany(ctx, []int64{1, 2, 3})
		if err != nil {
			t.Error(err)
		}
		result <- got
	}()
	for {
		mu.Lock()
		n := len(batchKeys)
		mu.Unlock()
		if n == 2 {
			break
		}
		waitABit()
	}
	close(release)
	require.NoError(t, <-done)
	got := <-result
	assert.Len(t, got, 3)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []int64{1}, batchKeys[0])
	sort.Slice(batchKeys[1], func(i, j int) bool { return batchKeys[1][i] < batchKeys[1][j] })
	assert.Equal(t, []int64{2, 3}, batchKeys[1])
}

func TestGetManyAllLocalAllocatesOnlyTheMap(t *testing.T) {
	ctx := context.Background()
	c := userCache(t, nil, namespace(t), nil)
	keys := make([]int64, 100)
	for i := range keys {
		keys[i] = int64(i)
		warm(t, c, keys[i])
	}
	allocs := testing.AllocsPerRun(100, func() {
		got, err := c.GetMany(ctx, keys)
		if err != nil || len(got) != 100 {
			panic(fmt.Sprint(len(got), err))
		}
	})
	// The result map: its header and buckets, nothing per key.
	assert.LessOrEqual(t, allocs, 12.0)
}

func TestSetManyWritesEachKeyWithItsTTL(t *testing.T) {
	t.Parallel()
	for _, topo := range topologies() {
		t.Run(topo.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			c, err := cache.New(connectWith(t, topo.opt(t)), cache.Options[string, User]{Namespace: namespace(t)})
			require.NoError(t, err)
			m := map[string]User{}
			for i := range 50 {
				m[fmt.Sprintf("k%d", i)] = sampleUser(int64(i))
			}
			require.NoError(t, c.SetMany(ctx, m))
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
				ttl, err := c.TTL(ctx, k)
				require.NoError(t, err)
				assert.Greater(t, ttl, 0*ttl)
				assert.NotEqual(t, cache.NoExpiry, ttl)
			}
			n, err := c.Exists(ctx, keys...)
			require.NoError(t, err)
			assert.Equal(t, 50, n)
			got, err := c.GetMany(ctx, keys)
			require.NoError(t, err)
			assert.Equal(t, m, got)
		})
	}
}

// TestBatchWritesKeepEveryCopy: the copies a batch keeps in process memory
// survive the batch's own writes, loaded (GetMany) or set (SetMany). Among
// 500 keys some share an invalidation counter, and the write of one moves
// it: before the writes of a batch discounted their own moves, such a pair
// lost a copy and the next read of it went to Redis.
func TestBatchWritesKeepEveryCopy(t *testing.T) {
	t.Parallel()
	const n = 500
	for _, topo := range topologies() {
		t.Run(topo.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			src := &batchSource{}
			c, err := cache.New(connectWith(t, topo.opt(t)), cache.Options[int64, User]{Namespace: namespace(t), BatchLoader: src.load})
			require.NoError(t, err)
			loaded := make([]int64, n)
			set := make(map[int64]User, n)
			for i := range loaded {
				loaded[i] = int64(i + 1)
				set[int64(n+i+1)] = sampleUser(int64(n + i + 1))
			}
			got, err := c.GetMany(ctx, loaded)
			require.NoError(t, err)
			require.Len(t, got, n)
			require.NoError(t, cache.AwaitWrites(ctx, c, loaded...))
			require.NoError(t, c.SetMany(ctx, set))

			// Counted, not read back: a read is served from memory only
			// while the heartbeat is fresh, which a loaded machine may
			// let lapse.
			assert.Equal(t, 2*n, c.Stats().LocalEntries, "every key has its copy in process memory")
			assert.Equal(t, 1, src.callCount(), "one batch-loader call")
		})
	}
}

// noscriptOnce is a client whose next pipeline of two EVALSHA writes has
// Redis apply the second, then answers the first with a real NOSCRIPT, as
// when a server restarted between them and another process's EVAL loaded
// the script again: aside sends the first again on its own, after the
// second.
type noscriptOnce struct {
	rueidis.Client
	armed atomic.Bool
}

func (r *noscriptOnce) DoMulti(ctx context.Context, cmds ...rueidis.Completed) []rueidis.RedisResult {
	if len(cmds) == 2 && cmds[0].Commands()[0] == "EVALSHA" && cmds[1].Commands()[0] == "EVALSHA" && r.armed.CompareAndSwap(true, false) {
		second := r.Client.Do(ctx, cmds[1])
		noscript := r.Client.Do(ctx, r.Client.B().Evalsha().Sha1("0000000000000000000000000000000000000000").Numkeys(0).Build())
		return []rueidis.RedisResult{noscript, second}
	}
	return r.Client.DoMulti(ctx, cmds...)
}

// TestSetManyResentWriteKeepsWhatRedisHolds: two typed keys of one Redis key
// (Key = strings.ToLower) set in one SetMany, the first of the two writes
// sent again after NOSCRIPT, so that Redis applies it last: the copies kept
// are of the value Redis holds, whichever it is. Found by review: the
// second write, stored before the first one's re-send, discounted the
// first's move of their counter and kept its value, which Redis no longer
// held, and both pushes of the key were taken for echoes.
func TestSetManyResentWriteKeepsWhatRedisHolds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	opt := shared.ClientOption()
	pw := &pushWatch{keys: map[string]int{}, changed: make(chan struct{})}
	opt.OnInvalidations = pw.hook
	client, rc := connectThrough(t, opt, func(c rueidis.Client) *noscriptOnce { return &noscriptOnce{Client: c} })
	require.True(t, client.Tracking())
	src := newSource()
	c := versionCache(t, client, namespace(t), src, folded(src))
	require.NoError(t, c.Set(ctx, "warm", 0)) // the script is loaded

	rc.armed.Store(true)
	m := pw.mark(c.Key("a"))
	require.NoError(t, c.SetMany(ctx, map[string]int64{"A": 1, "a": 2}))
	require.False(t, rc.armed.Load(), "the two writes went in one pipeline")
	raw, err := rc.Client.Do(ctx, rc.Client.B().Get().Key(c.Key("a")).Build()).AsBytes()
	require.NoError(t, err)
	inRedis := int64(raw[len(raw)-1]) // a MessagePack positive fixint
	pw.await(t, "the pushes of both writes", func() bool { return pw.keys[m.key] >= m.keys+2 })
	for _, k := range []string{"A", "a"} {
		v, err := c.Get(ctx, k)
		require.NoError(t, err)
		assert.Equal(t, inRedis, v, "Get(%q) gives what Redis holds", k)
	}
}

// scriptTrips is a client that counts the round trips that carry a script
// (EVALSHA or EVAL).
type scriptTrips struct {
	rueidis.Client
	n atomic.Int64
}

func (s *scriptTrips) count(cmds ...rueidis.Completed) {
	for _, c := range cmds {
		if name := c.Commands()[0]; name == "EVALSHA" || name == "EVAL" {
			s.n.Add(1)
			return
		}
	}
}

func (s *scriptTrips) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	s.count(cmd)
	return s.Client.Do(ctx, cmd)
}

func (s *scriptTrips) DoMulti(ctx context.Context, cmds ...rueidis.Completed) []rueidis.RedisResult {
	s.count(cmds...)
	return s.Client.DoMulti(ctx, cmds...)
}

// TestBatchWritesAfterScriptFlush: when Redis has lost its scripts (it
// restarted, failed over, or SCRIPT FLUSH), the writes of a batch read and
// of a SetMany meet NOSCRIPT; they are sent again in a few round trips, not
// one each, and every value is kept.
//
// The bounds, in round trips that carry a script (rueidis' cluster DoMulti
// splits a pipeline per node itself: one trip counted). A pipeline of
// script executions that meets NOSCRIPT on every node takes 1 (the
// pipeline) + per node: 2 (Lua.Exec of the first still NOSCRIPT: EVALSHA,
// then EVAL, which loads the script on its node) + 1 (the others in one
// pipeline): 4 on one server, 10 on 3 primaries. A SetMany is one such
// pipeline; a GetMany of missing keys is one on a standalone server (its
// visit is plain commands) and two on a cluster (the visit is a script
// too). Sent one by one, as before, a batch took 1 + 2 per key.
func TestBatchWritesAfterScriptFlush(t *testing.T) {
	t.Parallel()
	const n = 100
	for _, tc := range []struct {
		name             string
		start            func(t *testing.T) (rueidis.ClientOption, []*redistest.Server)
		getMany, setMany int64
	}{
		{"standalone", func(t *testing.T) (rueidis.ClientOption, []*redistest.Server) {
			srv := redistest.Start(t, redistest.Config{})
			return srv.ClientOption(), []*redistest.Server{srv}
		}, 4, 4},
		{"cluster", func(t *testing.T) (rueidis.ClientOption, []*redistest.Server) {
			cl := redistest.StartCluster(t, redistest.ClusterConfig{Primaries: 3})
			return cl.ClientOption(), cl.Primaries()
		}, 20, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			opt, primaries := tc.start(t)
			client, trips := connectThrough(t, opt, func(c rueidis.Client) *scriptTrips { return &scriptTrips{Client: c} })
			src := &batchSource{}
			c, err := cache.New(client, cache.Options[int64, User]{Namespace: namespace(t), BatchLoader: src.load})
			require.NoError(t, err)
			ids := func(from int) []int64 {
				out := make([]int64, n)
				for i := range out {
					out[i] = int64(from + i)
				}
				return out
			}
			getMany := func(ids []int64) {
				t.Helper()
				got, err := c.GetMany(ctx, ids)
				require.NoError(t, err)
				require.Len(t, got, len(ids))
				for _, id := range ids {
					require.Equal(t, sampleUser(id), got[id], "GetMany value of %d", id)
				}
				require.NoError(t, cache.AwaitWrites(ctx, c, ids...))
			}
			flush := func() {
				for _, p := range primaries {
					_, err := p.Do(ctx, "SCRIPT", "FLUSH")
					require.NoError(t, err)
				}
			}

			// The scripts loaded on every node by a first batch, then
			// flushed.
			getMany(ids(1))
			require.Equal(t, n, c.Stats().LocalEntries)
			flush()
			before := trips.n.Load()
			getMany(ids(n + 1))
			assert.LessOrEqual(t, trips.n.Load()-before, tc.getMany, "script round trips of a GetMany of %d after SCRIPT FLUSH", n)
			assert.Equal(t, 2*n, c.Stats().LocalEntries, "every loaded value is kept")

			set := make(map[int64]User, n)
			for _, k := range ids(2*n + 1) {
				set[k] = sampleUser(k)
			}
			flush()
			before = trips.n.Load()
			require.NoError(t, c.SetMany(ctx, set))
			assert.LessOrEqual(t, trips.n.Load()-before, tc.setMany, "script round trips of a SetMany of %d after SCRIPT FLUSH", n)
			assert.Equal(t, 3*n, c.Stats().LocalEntries, "every value written is kept too")
			for k, want := range set {
				got, err := c.Get(ctx, k)
				require.NoError(t, err)
				require.Equal(t, want, got)
			}
		})
	}
}

// GetManyInto: every place of a key gets its value, whether it came from
// process memory, Redis or the loader; a key not found and a key that
// failed are not found, the failure named in the error; slices shorter
// than the keys are refused; what a reused slice held before is cleared.
func TestGetManyInto(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	src, g := gatedSource()
	boom := errors.New("boom")
	ns := namespace(t)
	c := versionCache(t, connect(t, shared), ns, src, func(o *cache.Options[string, int64]) {
		load := o.Loader
		o.Loader = func(ctx context.Context, k string) (int64, error) {
			if k == "bad" {
				return 0, boom
			}
			return load(ctx, k)
		}
	})
	src.set("local", 1)
	src.set("redis", 2)
	src.set("loaded", 3)
	warmCopy(t, c, "local")
	other := versionCache(t, connect(t, shared), ns, src)
	_, err := other.Get(ctx, "redis") // in Redis, not in c's memory
	require.NoError(t, err)
	require.NoError(t, cache.AwaitWrites(ctx, other, "redis"))

	keys := []string{"loaded", "local", "absent", "redis", "bad", "local", "loaded"}
	vals := []int64{9, 9, 9, 9, 9, 9, 9, 9}
	found := []bool{true, true, true, true, true, true, true, true}
	err = c.GetManyInto(ctx, keys, vals, found)
	require.ErrorIs(t, err, boom)
	assert.NotErrorIs(t, err, cache.ErrNotFound, "a key not found is no error")
	assert.Equal(t, []int64{3, 1, 0, 2, 0, 1, 3, 9}, vals)
	assert.Equal(t, []bool{true, true, false, true, false, true, true, true}, found, "the place past the keys is left alone")
	assert.Equal(t, 1, g.loadsOf("loaded"), "a key named twice is loaded once")

	// Without process memory (SkipLocal): the same, from Redis.
	err = c.GetManyInto(ctx, keys[:4], vals, found, cache.SkipLocal())
	require.NoError(t, err)
	assert.Equal(t, []int64{3, 1, 0, 2}, vals[:4])
	assert.Equal(t, []bool{true, true, false, true}, found[:4])

	err = c.GetManyInto(ctx, keys, vals[:3], found)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "7 keys, but 3 vals")
}

func TestGetManyIntoAllLocalAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	c := userCache(t, nil, namespace(t), nil)
	keys := make([]int64, 100)
	for i := range keys {
		keys[i] = int64(i)
		warm(t, c, keys[i])
	}
	vals, found := make([]User, len(keys)), make([]bool, len(keys))
	allocs := testing.AllocsPerRun(100, func() {
		if err := c.GetManyInto(ctx, keys, vals, found); err != nil || !found[99] {
			panic(err)
		}
	})
	assert.Zero(t, allocs)
}
