package cache_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
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
	"github.com/aside-go/aside/loader"
)

// A GetMany whose context ends while it loads does not cancel the load: the
// load writes for everyone, and a Get of the key after it neither fails nor
// loads again.
func TestGetManyCancellationDoesNotCancelItsLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	parked := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	var calls atomic.Int64
	c, err := cache.New(connect(t, shared), cache.Options[string, int64]{
		Namespace: namespace(t), Codec: codec.MsgPack[int64](),
		BatchLoader: func(ctx context.Context, keys []string) (map[string]int64, error) {
			calls.Add(1)
			once.Do(func() { close(parked) })
			select {
			case <-release:
				return map[string]int64{"k": 7}, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
	})
	require.NoError(t, err)
	mctx, cancel := context.WithCancel(ctx)
	manyDone := make(chan error, 1)
	go func() {
		_, err := c.GetMany(mctx, []string{"k"})
		manyDone <- err
	}()
	<-parked
	cancel()
	require.ErrorIs(t, <-manyDone, context.Canceled)

	getDone := make(chan error, 1)
	var got int64
	go func() {
		v, err := c.Get(ctx, "k")
		got = v
		getDone <- err
	}()
	close(release)
	require.NoError(t, <-getDone)
	assert.EqualValues(t, 7, got)
	assert.EqualValues(t, 1, calls.Load(), "the load went on without its first caller")
}

// A Get whose context ends while its SET NX GET is on the wire leaves no
// lease behind: the others do not wait LeaseTTL.
func TestLostLeaseReplyIsReleased(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Start(t, redistest.Config{})
	src := newSource()
	src.set("k", 1)
	a := versionCache(t, connect(t, srv), "lost", src, func(o *cache.Options[string, int64]) { o.LeaseTTL = time.Minute })
	require.NoError(t, srv.Pause())
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err := a.Get(short, "k")
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NoError(t, srv.Resume())
	// The lease (if the SET reached Redis) is released within the
	// release's own timeout, far below the minute of LeaseTTL.
	rc := connect(t, srv).Rueidis()
	assert.Eventually(t, func() bool {
		n, err := rc.Do(ctx, rc.B().Exists().Key(a.Key("k")).Build()).AsInt64()
		return err == nil && n == 0
	}, 10*time.Second, 5*time.Millisecond)
}

// A load's write that loses its connection is sent again on the next one:
// its lease does not stay in Redis for LeaseTTL, making every process wait
// for a value that was loaded. The write is held in Redis (CLIENT PAUSE
// WRITE postpones scripts), its connection killed, and Redis let go; another
// client then reads the loaded value instead of taking the lease over
// (LeaseTTL is a minute: a takeover would load a second time).
func TestLoadWriteSentAgainAfterItsConnectionDropped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Start(t, redistest.Config{})
	var calls atomic.Int64
	newCache := func(client *cache.Client) *cache.Cache[string, int64] {
		c, err := cache.New(client, cache.Options[string, int64]{
			Namespace: "resent",
			LeaseTTL:  time.Minute,
			Loader: func(ctx context.Context, key string) (int64, error) {
				if calls.Add(1) == 1 {
					if _, err := srv.Do(ctx, "CLIENT", "PAUSE", "60000", "WRITE"); err != nil {
						return 0, err
					}
				}
				return 7, nil
			},
		})
		require.NoError(t, err)
		return c
	}
	a, b := newCache(connect(t, srv)), newCache(connect(t, srv))
	unpaused := false
	defer func() {
		if !unpaused {
			_, _ = srv.Do(ctx, "CLIENT", "UNPAUSE")
		}
	}()

	v, err := a.Get(ctx, "k")
	require.NoError(t, err, "the value is returned once the write took its time budget")
	assert.EqualValues(t, 7, v)

	// The write waits in Redis, postponed: kill its connection.
	var id string
	require.Eventually(t, func() bool {
		list, err := srv.Do(ctx, "CLIENT", "LIST", "TYPE", "normal")
		require.NoError(t, err)
		for _, line := range strings.Split(list, "\n") {
			if f := clientFields(line); strings.Contains(f["flags"], "b") {
				id = f["id"]
				return true
			}
		}
		return false
	}, 10*time.Second, time.Millisecond, "the write postponed by the pause")
	_, err = srv.Do(ctx, "CLIENT", "KILL", "ID", id)
	require.NoError(t, err)
	_, err = srv.Do(ctx, "CLIENT", "UNPAUSE")
	require.NoError(t, err)
	unpaused = true

	v, err = b.Get(ctx, "k")
	require.NoError(t, err)
	assert.EqualValues(t, 7, v)
	assert.EqualValues(t, 1, calls.Load(), "the other client read the value written again, without a second load")
	assert.Zero(t, a.Stats().WriteErrors, "the write was sent again, not given up")
}

// nilIsFine drops Redis' nil reply, which is an answer.
func nilIsFine(err error) error {
	if rueidis.IsRedisNil(err) {
		return nil
	}
	return err
}

// Closing the client while Gets run neither panics nor races.
func TestCloseWhileGetsRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for round := range 5 {
		client, err := cache.Connect(shared.ClientOption())
		require.NoError(t, err)
		// rueidis dials each of a client's multiplexed connections on its
		// first use, and a Close that races with that dial leaves the new
		// connection open (mux._pipe stores the dialled wire over the dead
		// one Close put there). Use every connection before the race this
		// test is about, so that what it checks is aside's own Close.
		// (A keyed command goes to a random connection; PING always to the
		// first.)
		rc := client.Rueidis()
		for i := range 64 {
			key := fmt.Sprint("warm:", i)
			require.NoError(t, nilIsFine(rc.Do(ctx, rc.B().Get().Key(key).Build()).Error()))
			require.NoError(t, nilIsFine(rc.DoCache(ctx, rc.B().Get().Key(key).Cache(), time.Minute).Error()))
		}
		c := versionCache(t, client, namespace(t), newSource())
		var wg sync.WaitGroup
		var started atomic.Int64
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 30 {
					started.Add(1)
					_, _ = c.Get(ctx, string(rune('a'+g))+string(rune('a'+i)))
				}
			}()
		}
		for started.Load() < int64(10*(round+1)) {
			waitABit()
		}
		client.Close()
		wg.Wait()
	}
}

// Against a Redis that hangs, requests with deadlines trip the breaker, and
// the rest fall back at once.
func TestBreakerTripsOnTimeouts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Start(t, redistest.Config{})
	c := userCache(t, connect(t, srv), "hang", nil, func(o *cache.Options[int64, User]) {
		o.BreakerThreshold = 3
		o.BreakerCooldown = time.Minute
	})
	require.NoError(t, srv.Pause())
	defer func() { _ = srv.Resume() }()
	for id := range int64(10) {
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		_, _ = c.Get(short, id)
		cancel()
	}
	s := c.Stats()
	assert.EqualValues(t, 1, s.BreakerTrips)
	assert.True(t, s.BreakerOpen)
	assert.Positive(t, s.ShortCircuits)
	assert.Positive(t, s.Fallbacks)
}

// A loader that panics on the lease path fails its Get with ErrPanic, the
// process survives, and the lease is released at once.
func TestLoaderPanicReleasesTheLease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := connect(t, shared)
	var calls atomic.Int64
	c := versionCache(t, client, namespace(t), newSource(), func(o *cache.Options[string, int64]) {
		o.Loader = func(context.Context, string) (int64, error) {
			if calls.Add(1) == 1 {
				panic("loader bug")
			}
			return 3, nil
		}
	})
	_, err := c.Get(ctx, "k")
	require.ErrorIs(t, err, loader.ErrPanic)
	require.NoError(t, cache.AwaitWrites(ctx, c, "k"), "the release of the lease")
	rc := client.Rueidis()
	n, err := rc.Do(ctx, rc.B().Exists().Key(c.Key("k")).Build()).AsInt64()
	require.NoError(t, err)
	assert.Zero(t, n, "no lease left behind")
	v, err := c.Get(ctx, "k")
	require.NoError(t, err)
	assert.EqualValues(t, 3, v)

	// The same on the batch path.
	b, err := cache.New(client, cache.Options[string, int64]{
		Namespace: namespace(t), Codec: codec.MsgPack[int64](),
		BatchLoader: func(context.Context, []string) (map[string]int64, error) { panic("batch bug") },
	})
	require.NoError(t, err)
	_, err = b.GetMany(ctx, []string{"x", "y"})
	require.ErrorIs(t, err, loader.ErrPanic)
	require.NoError(t, cache.AwaitWrites(ctx, b, "x", "y"))
	n, err = rc.Do(ctx, rc.B().Exists().Key(b.Key("x"), b.Key("y")).Build()).AsInt64()
	require.NoError(t, err)
	assert.Zero(t, n)
}

// Expire with a TTL of zero deletes the key: a Get right after it never
// returns the deleted value from process memory.
func TestExpireIsAWriteForReadYourWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := newSource()
	c := versionCache(t, connect(t, shared), namespace(t), src)
	for round := range 30 {
		src.set("k", 1)
		warm(t, c, "k")
		existed, err := c.Expire(ctx, "k", 0)
		require.NoError(t, err)
		require.True(t, existed)
		src.set("k", 2)
		v, err := c.Get(ctx, "k")
		require.NoError(t, err)
		require.EqualValues(t, 2, v, "round %d", round)
		_, err = c.Delete(ctx, "k")
		require.NoError(t, err)
	}
}

// goroutineID is the number the runtime gives the calling goroutine.
func goroutineID() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	id, _, _ := strings.Cut(strings.TrimPrefix(string(buf), "goroutine "), " ")
	return id
}

// A Get whose context can never end runs the loader on its own goroutine (it
// could not have left earlier), and everything else holds as when the load
// runs in the background: a read that joined it gets its value, the value is
// written under the lease, and another process finds it without loading. A
// Get whose context can end does not wait for the loader once it ends: the
// load runs elsewhere, and still writes.
func TestLoadOnTheCallersGoroutine(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src, g := gatedSource()
	src.set("k", 1)
	src.set("c", 2)
	ns := namespace(t)
	var loadedOn sync.Map // key -> goroutine
	track := func(o *cache.Options[string, int64]) {
		load := o.Loader
		o.Loader = func(ctx context.Context, key string) (int64, error) {
			loadedOn.Store(key, goroutineID())
			return load(ctx, key)
		}
	}
	a := versionCache(t, connect(t, shared), ns, src, track)

	gt := g.park(t, "k", 1)
	first := make(chan string, 1)
	firstDone := make(chan error, 1)
	go func() {
		first <- goroutineID()
		v, err := a.Get(ctx, "k")
		if err == nil && v != 1 {
			err = fmt.Errorf("got %d", v)
		}
		firstDone <- err
	}()
	gt.awaitParked(t, "the first read's load")
	joined := inBackground(func(ctx context.Context) (int64, error) { return a.Get(ctx, "k") })
	gt.free()
	require.NoError(t, <-firstDone)
	v, err := await(t, joined, "the joined read")
	require.NoError(t, err)
	assert.EqualValues(t, 1, v)
	on, _ := loadedOn.Load("k")
	assert.Equal(t, <-first, on, "loaded on the caller's goroutine")
	assert.Equal(t, 1, g.loadsOf("k"), "the second read joined the first one's load")

	require.NoError(t, cache.AwaitWrites(ctx, a, "k"))
	other := versionCache(t, connect(t, shared), ns, src)
	v, err = other.Get(ctx, "k")
	require.NoError(t, err)
	assert.EqualValues(t, 1, v)
	assert.Equal(t, 1, g.loadsOf("k"), "another process found the written value")

	// A caller whose context can end leaves when it ends; the load goes on.
	gt = g.park(t, "c", 2)
	cctx, cancel := context.WithCancel(ctx)
	left := make(chan error, 1)
	go func() {
		_, err := a.Get(cctx, "c")
		left <- err
	}()
	gt.awaitParked(t, "the cancelable read's load")
	cancel()
	require.ErrorIs(t, <-left, context.Canceled, "left while its load was parked")
	gt.free()
	v, err = within(t, "a read after the load", func(ctx context.Context) (int64, error) { return a.Get(ctx, "c") })
	require.NoError(t, err)
	assert.EqualValues(t, 2, v)
	assert.Equal(t, 1, g.loadsOf("c"), "the load went on without its caller")
}
