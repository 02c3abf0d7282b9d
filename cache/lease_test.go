package cache_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/codec"
	"github.com/aside-go/aside/internal/redistest"
)

func TestHerdAcrossClientsLoadsOnce(t *testing.T) {
	t.Parallel()
	for _, topo := range topologies() {
		t.Run(topo.name, func(t *testing.T) {
			t.Parallel()
			herd(t, topo, false)
		})
		t.Run(topo.name+"/plain", func(t *testing.T) {
			t.Parallel()
			herd(t, topo, true)
		})
	}
}

func herd(t *testing.T, topo topology, plain bool) {
	const clients, goroutines = 4, 1000
	ctx := context.Background()
	ns := namespace(t)
	var calls atomic.Int64
	caches := make([]*cache.Cache[string, string], clients)
	// The load does not finish before every other client waits on its
	// lease (bounded: without leases the other clients load instead, and
	// the count below fails), then takes 20 ms like a slow source.
	waiting := func() int {
		n := 0
		for _, c := range caches {
			if c.Stats().LeaseWaits > 0 {
				n++
			}
		}
		return n
	}
	load := func(_ context.Context, key string) (string, error) {
		calls.Add(1)
		deadline := time.Now().Add(10 * time.Second)
		for waiting() < clients-1 && time.Now().Before(deadline) {
			waitABit()
		}
		// The source's own latency, as the herd scenario specifies; the
		// waiting above, on the other clients' lease waits, is the
		// synchronisation.
		time.Sleep(20 * time.Millisecond)
		return "v:" + key, nil
	}
	for i := range caches {
		c, err := cache.New(connectWith(t, topo.opt(t)), cache.Options[string, string]{Namespace: ns, Codec: codec.String(), Loader: load, Plain: plain})
		require.NoError(t, err)
		caches[i] = c
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, clients*goroutines)
	for i := range clients {
		for range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				v, err := caches[i].Get(ctx, "cold")
				if err == nil && v != "v:cold" {
					err = fmt.Errorf("got %q", v)
				}
				if err != nil {
					errs <- err
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	var waits, fallbacks uint64
	for _, c := range caches {
		waits += c.Stats().LeaseWaits
		fallbacks += c.Stats().Fallbacks
	}
	// A client whose visit did not get an answer within RedisTimeout (a
	// starved machine) loads by itself under FailOpen, as documented, and
	// writes nothing; every other load is under the one lease.
	assert.EqualValues(t, 1, calls.Load()-int64(fallbacks), "one load under a lease for %d clients × %d goroutines", clients, goroutines)
	assert.GreaterOrEqual(t, waits+fallbacks, uint64(clients-1), "the other clients waited for the lease")
	t.Logf("loader calls: %d; fallback loads: %d; lease waits over all clients: %d", calls.Load(), fallbacks, waits)
}

// TestNoStaleSetInOneProcess forces the classic race inside one cache: a
// reader loads the old row; the row is updated and the key invalidated; the
// reader's write must not land, and reads after the invalidation must not
// join the reader's load.
func TestNoStaleSetInOneProcess(t *testing.T) {
	t.Parallel()
	for _, order := range []string{"old load finishes first", "new load finishes first"} {
		t.Run(order, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			src := newSource()
			src.set("k", 1)
			parked := make(chan struct{})
			release := make(chan struct{})
			var first atomic.Bool
			first.Store(true)
			src.hook = func(_ string, v int64) {
				if v == 1 && first.CompareAndSwap(true, false) {
					close(parked)
					<-release
				}
			}
			c := versionCache(t, connect(t, shared), namespace(t), src)

			old := make(chan int64, 1)
			go func() {
				v, err := c.Get(ctx, "k")
				if err != nil {
					t.Error(err)
				}
				old <- v
			}()
			<-parked // the reader has read version 1 and holds the lease

			src.set("k", 2)
			require.NoError(t, c.Invalidate(ctx, "k"))

			if order == "old load finishes first" {
				close(release)
				assert.EqualValues(t, 1, <-old, "the overlapping read may return the old row")
				v, err := c.Get(ctx, "k")
				require.NoError(t, err)
				assert.EqualValues(t, 2, v)
			} else {
				v, err := c.Get(ctx, "k")
				require.NoError(t, err)
				assert.EqualValues(t, 2, v, "a read after the invalidation does not join the old load")
				close(release)
				assert.EqualValues(t, 1, <-old)
			}
			// Whatever the order, the cache ends with version 2.
			for range 3 {
				v, err := c.Get(ctx, "k")
				require.NoError(t, err)
				assert.EqualValues(t, 2, v)
			}
			assert.EqualValues(t, 2, src.loads.Load())
			require.NoError(t, cache.AwaitWrites(ctx, c, "k"))
			assert.EqualValues(t, 1, c.Stats().DiscardedFills, "the old row was not written")
		})
	}
}

// TestNoStaleSetAcrossProcesses is the same race between two clients: the
// reader is one process, the writer another.
func TestNoStaleSetAcrossProcesses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	src := newSource()
	src.set("k", 1)
	parked := make(chan struct{})
	release := make(chan struct{})
	var first atomic.Bool
	first.Store(true)
	// Both processes read the same rows; only the reader's first load
	// parks, after it read the row.
	readerCache := versionCache(t, connect(t, shared), ns, src, func(o *cache.Options[string, int64]) {
		o.Loader = func(ctx context.Context, key string) (int64, error) {
			v := src.get(key)
			if first.CompareAndSwap(true, false) {
				close(parked)
				<-release
			}
			return v, nil
		}
	})
	writerCache := versionCache(t, connect(t, shared), ns, src)

	old := make(chan int64, 1)
	go func() {
		v, err := readerCache.Get(ctx, "k")
		if err != nil {
			t.Error(err)
		}
		old <- v
	}()
	<-parked
	src.set("k", 2)
	require.NoError(t, writerCache.Invalidate(ctx, "k"))
	v, err := writerCache.Get(ctx, "k")
	require.NoError(t, err)
	assert.EqualValues(t, 2, v)
	close(release)
	assert.EqualValues(t, 1, <-old)

	for _, c := range []*cache.Cache[string, int64]{readerCache, writerCache} {
		assert.Eventually(t, func() bool {
			v, err := c.Get(ctx, "k")
			return err == nil && v == 2
		}, 10*time.Second, time.Millisecond)
	}
	require.NoError(t, cache.AwaitWrites(ctx, readerCache, "k"))
	assert.EqualValues(t, 1, readerCache.Stats().DiscardedFills)
}

// TestNoStaleKeysUnderRandomLoad runs writers, readers and invalidations over
// a shared source through several clients, then compares every key in Redis
// and in every cache with the source: no key may be stale.
func TestNoStaleKeysUnderRandomLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	const keys, clients, readers, writers, rounds = 40, 3, 6, 3, 300
	src := newSource()
	for i := range keys {
		src.set(fmt.Sprint(i), 0)
	}
	// Loads are slow now and then (a source's latency, not a wait for
	// anything), so that updates land while loads are under way.
	src.hook = func(key string, _ int64) {
		if rand.IntN(8) == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	caches := make([]*cache.Cache[string, int64], clients)
	for i := range caches {
		caches[i] = versionCache(t, connect(t, shared), ns, src)
	}
	var keyLocks [keys]sync.Mutex
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := caches[w%clients]
			for range rounds {
				i := rand.IntN(keys)
				k := fmt.Sprint(i)
				keyLocks[i].Lock()
				src.set(k, src.get(k)+1)
				err := c.Invalidate(ctx, k)
				keyLocks[i].Unlock()
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := caches[r%clients]
			for range rounds * 3 {
				if _, err := c.Get(ctx, fmt.Sprint(rand.IntN(keys))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()

	// Redis itself holds no stale value.
	rc := connect(t, shared).Rueidis()
	stale := 0
	for i := range keys {
		k := fmt.Sprint(i)
		raw, err := rc.Do(ctx, rc.B().Get().Key(caches[0].Key(k)).Build()).AsBytes()
		if rueidis.IsRedisNil(err) {
			continue
		}
		require.NoError(t, err)
		var got int64
		if len(raw) > 11 {
			require.NoError(t, codec.MsgPack[int64]().Unmarshal(raw[11:], &got))
			if raw[2]&0x0f == 1 && got != src.get(k) {
				stale++
				t.Logf("key %s: redis holds version %d, source %d", k, got, src.get(k))
			}
		}
	}
	assert.Zero(t, stale, "stale keys in Redis")

	// Every cache converges on the source once the invalidations arrived.
	for ci, c := range caches {
		for i := range keys {
			k := fmt.Sprint(i)
			want := src.get(k)
			assert.Eventually(t, func() bool {
				v, err := c.Get(ctx, k)
				return err == nil && v == want
			}, 10*time.Second, time.Millisecond, "cache %d key %s", ci, k)
		}
	}
	var discarded uint64
	for _, c := range caches {
		discarded += c.Stats().DiscardedFills
	}
	t.Logf("loads %d, fills discarded because an invalidation overtook them: %d", src.loads.Load(), discarded)
}

func TestDeadLeaseHolderIsTakenOver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Start(t, redistest.Config{})
	src := newSource()
	src.set("k", 7)
	parked := make(chan struct{})
	thaw := make(chan struct{})
	holder := versionCache(t, connect(t, srv), "dead", src, func(o *cache.Options[string, int64]) {
		o.LeaseTTL = 300 * time.Millisecond
		o.Loader = func(context.Context, string) (int64, error) {
			close(parked)
			<-thaw // hangs like a dead process: neither writes nor releases
			return 1, nil
		}
	})
	holderDone := make(chan struct{})
	go func() {
		defer close(holderDone)
		_, _ = holder.Get(ctx, "k")
	}()
	<-parked
	// As far as Redis can tell the holder is gone: its connections are
	// cut, and its lease stays until it expires.
	_, err := srv.Do(ctx, "CLIENT", "KILL", "TYPE", "normal")
	require.NoError(t, err)

	waiter := versionCache(t, connect(t, srv), "dead", src, func(o *cache.Options[string, int64]) {
		o.LeaseTTL = 300 * time.Millisecond
	})
	start := time.Now()
	v, err := waiter.Get(ctx, "k")
	took := time.Since(start)
	require.NoError(t, err)
	assert.EqualValues(t, 7, v)
	assert.Positive(t, waiter.Stats().LeaseWaits, "the waiter waited for the dead holder's lease")
	t.Logf("takeover after %v (lease TTL 300ms)", took)

	// No placeholder is left: the key holds the value.
	require.NoError(t, cache.AwaitWrites(ctx, waiter, "k"))
	rc := connect(t, srv).Rueidis()
	raw, err := rc.Do(ctx, rc.B().Get().Key(waiter.Key("k")).Build()).AsBytes()
	require.NoError(t, err)
	assert.EqualValues(t, 1, raw[2]&0x0f, "the key holds a value, not a lease")

	// The holder comes back to life: its value, loaded under a lease that
	// expired, must not overwrite the one written after it.
	close(thaw)
	<-holderDone
	require.NoError(t, cache.AwaitWrites(ctx, holder, "k"))
	assert.EqualValues(t, 1, holder.Stats().DiscardedFills)
	v, err = waiter.Get(ctx, "k")
	require.NoError(t, err)
	assert.EqualValues(t, 7, v)
}

func TestWaiterContextEndsWhileLeaseHeld(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	src := newSource()
	release, done := holdLease(t, ns, "k", 1)
	waiter := versionCache(t, connect(t, shared), ns, src)
	short, cancel := context.WithCancel(ctx)
	go func() {
		for waiter.Stats().LeaseWaits == 0 {
			waitABit()
		}
		cancel()
	}()
	_, err := waiter.Get(short, "k")
	require.ErrorIs(t, err, context.Canceled)
	assert.Zero(t, src.loads.Load(), "the waiter did not load")
	close(release)
	<-done
}

func TestLeaseWaitLoadsWithoutWriting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	src := newSource()
	src.set("k", 5)
	release, done := holdLease(t, ns, "k", 6)
	impatient := versionCache(t, connect(t, shared), ns, src, func(o *cache.Options[string, int64]) {
		o.LeaseWait = 50 * time.Millisecond
	})
	v, err := impatient.Get(ctx, "k")
	require.NoError(t, err)
	assert.EqualValues(t, 5, v, "loaded by itself")
	assert.EqualValues(t, 1, impatient.Stats().LeaseTimeouts)
	close(release)
	<-done
	v, err = impatient.Get(ctx, "k")
	require.NoError(t, err)
	assert.EqualValues(t, 6, v, "the holder's value is the one cached")
}

func TestRedisRestartDuringLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Start(t, redistest.Config{})
	src := newSource()
	src.set("k", 1)
	parked := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	src.hook = func(string, int64) {
		once.Do(func() {
			close(parked)
			<-release
		})
	}
	c := versionCache(t, connect(t, srv), "restart", src)
	got := make(chan error, 1)
	go func() {
		v, err := c.Get(ctx, "k")
		if err == nil && v != 1 {
			err = fmt.Errorf("got %d", v)
		}
		got <- err
	}()
	<-parked
	require.NoError(t, srv.Kill())
	src.set("k", 2)
	close(release)
	require.NoError(t, <-got, "the loaded value is returned although it could not be written")

	_, err := c.Exists(ctx, "other")
	require.ErrorIs(t, err, cache.ErrUnavailable, "Redis being down is surfaced")

	require.NoError(t, srv.Restart())
	assert.Eventually(t, func() bool {
		v, err := c.Get(ctx, "k")
		return err == nil && v == 2
	}, 10*time.Second, 5*time.Millisecond, "recovers, and nothing stale is served")
	assert.EqualValues(t, 2, src.get("k"))
}

// TestGetManyWaitsForLeasesTogether: keys another process is loading are
// waited for, and all come back.
func TestGetManyWaitsForLeasesTogether(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	releaseA, doneA := holdLease(t, ns, "a", 1)
	releaseB, doneB := holdLease(t, ns, "b", 2)
	c, err := cache.New(connect(t, shared), cache.Options[string, int64]{
		Namespace: ns, Codec: codec.MsgPack[int64](),
		BatchLoader: func(context.Context, []string) (map[string]int64, error) {
			return map[string]int64{"c": 3}, nil
		},
	})
	require.NoError(t, err)
	got := make(chan map[string]int64, 1)
	go func() {
		m, err := c.GetMany(ctx, []string{"a", "b", "c"})
		if err != nil {
			t.Error(err)
		}
		got <- m
	}()
	// Both waits are under way together (bounded: waits that ran one
	// after the other would never reach 2 before the releases).
	deadline := time.Now().Add(10 * time.Second)
	for c.Stats().LeaseWaits < 2 && time.Now().Before(deadline) {
		waitABit()
	}
	waits := c.Stats().LeaseWaits
	close(releaseA)
	close(releaseB)
	<-doneA
	<-doneB
	assert.Equal(t, map[string]int64{"a": 1, "b": 2, "c": 3}, <-got)
	assert.GreaterOrEqual(t, waits, uint64(2), "the two waits overlapped")
}
