package cache_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/asidetest"
	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/loader"
	"github.com/aside-go/aside/ttlpolicy"
)

// Load timeouts: every test parks the loader on a channel, so that the load
// is slower than any timeout whatever the machine's speed; the read must
// return without it, and the load, released afterwards, must still land in
// Redis for every process.

// blockingLoader returns a loader of version v that parks every call made
// while blocked is set until release is closed, signalling entered first;
// calls counts every call.
type blockingLoader struct {
	blocked atomic.Bool
	calls   atomic.Int64
	version atomic.Int64
	entered chan struct{}
	release chan struct{}
}

func newBlockingLoader(t testing.TB, v int64) *blockingLoader {
	b := &blockingLoader{entered: make(chan struct{}, 16), release: make(chan struct{})}
	b.version.Store(v)
	t.Cleanup(b.free)
	return b
}

func (b *blockingLoader) free() {
	select {
	case <-b.release:
	default:
		close(b.release)
	}
}

func (b *blockingLoader) load(ctx context.Context, _ string) (int64, error) {
	b.calls.Add(1)
	if b.blocked.Load() {
		b.entered <- struct{}{}
		select {
		case <-b.release:
		case <-ctx.Done(): // a load cancelled when its caller left
			return 0, ctx.Err()
		}
	}
	return b.version.Load(), nil
}

func (b *blockingLoader) awaitEntered(t testing.TB) {
	t.Helper()
	timer := time.NewTimer(patience)
	defer timer.Stop()
	select {
	case <-b.entered:
	case <-timer.C:
		t.Fatalf("the loader was not called within %v", patience)
	}
}

// TestSoftTimeoutServesTheValueAtHand: a synchronous refresh slower than
// the soft timeout leaves the Get with the value it had, flagged stale; the
// refresh goes on, and another process then reads its value from Redis.
func TestSoftTimeoutServesTheValueAtHand(t *testing.T) {
	t.Parallel()
	for name, perCall := range map[string]bool{"options": false, "LoadTimeouts": true} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			ns := namespace(t)
			clock := asidetest.NewClock(time.Now())
			b := newBlockingLoader(t, 1)
			opts := func(o *cache.Options[string, int64]) {
				o.TTL = ttlpolicy.Fixed(10 * time.Minute).WithSoft(0.5)
				o.Now = clock.Now
				o.Refresh = cache.RefreshSync
				o.Loader = b.load
				if !perCall {
					o.SoftTimeout = 20 * time.Millisecond
				}
			}
			a := versionCache(t, connect(t, shared), ns, nil, opts)
			other := versionCache(t, connect(t, shared), ns, nil, opts)
			warm(t, a, "k")

			b.version.Store(2)
			b.blocked.Store(true)
			clock.Add(6 * time.Minute) // past the soft TTL (5m)
			var read []cache.ReadOption
			if perCall {
				read = append(read, cache.LoadTimeouts(20*time.Millisecond, 0))
			}
			var src cache.Source
			v, err := within(t, "a Get with a soft timeout", func(context.Context) (int64, error) {
				return a.Get(ctx, "k", append(read, cache.SourceOf(&src))...)
			})
			require.NoError(t, err)
			assert.EqualValues(t, 1, v, "the value at hand")
			assert.Equal(t, cache.SourceStale, src)
			assert.EqualValues(t, 1, a.Stats().StaleServed)

			b.awaitEntered(t) // the refresh runs (detached from the Get), and AwaitWrites sees it
			b.free()
			require.NoError(t, a.AwaitWrites(ctx, "k"))
			assert.EqualValues(t, 1, a.Stats().Refreshes)
			v, err = other.Get(ctx, "k", cache.SourceOf(&src))
			require.NoError(t, err)
			assert.EqualValues(t, 2, v, "the refresh went on and wrote for every process")
			assert.Equal(t, cache.SourceRedis, src)
			assert.EqualValues(t, 2, b.calls.Load(), "the fill and the refresh")
		})
	}
}

// TestSourceStaleInBackgroundMode: a due value RefreshBackground serves is
// reported stale.
func TestSourceStaleInBackgroundMode(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	c, src, clock := warmRefreshCache(t, cache.RefreshBackground)
	src.set("k", 2)
	clock.Add(6 * time.Minute)
	var from cache.Source
	v, err := c.Get(ctx, "k", cache.SourceOf(&from))
	require.NoError(t, err)
	assert.EqualValues(t, 1, v)
	assert.Equal(t, cache.SourceStale, from)
	assert.Equal(t, "stale", from.String())
	require.NoError(t, c.AwaitWrites(ctx, "k"), "the background refresh")
	v, err = c.Get(ctx, "k", cache.SkipLocal(), cache.SourceOf(&from))
	require.NoError(t, err)
	assert.EqualValues(t, 2, v)
	assert.Equal(t, cache.SourceRedis, from)
}

// TestHardTimeoutOnAMiss: a miss whose load is slower than the hard timeout
// fails with ErrLoadTimeout; the load goes on under its lease and its value
// lands in Redis. With a context that can never end, the load would run on
// the caller's goroutine: the hard timeout must move it off.
func TestHardTimeoutOnAMiss(t *testing.T) {
	t.Parallel()
	for name, ctxOf := range map[string]func(testing.TB) context.Context{
		"cancelable": func(t testing.TB) context.Context { return testContext(t) },
		"background": func(testing.TB) context.Context { return context.Background() },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ns := namespace(t)
			b := newBlockingLoader(t, 7)
			b.blocked.Store(true)
			a := versionCache(t, connect(t, shared), ns, nil, func(o *cache.Options[string, int64]) {
				o.Loader = b.load
				o.HardTimeout = 20 * time.Millisecond
			})
			var otherCalls atomic.Int64
			other := versionCache(t, connect(t, shared), ns, nil, func(o *cache.Options[string, int64]) {
				o.Loader = func(context.Context, string) (int64, error) { otherCalls.Add(1); return 0, errors.New("not this one") }
			})
			ctx := ctxOf(t)
			v, err := within(t, "a Get with a hard timeout", func(context.Context) (int64, error) {
				return a.Get(ctx, "k")
			})
			require.ErrorIs(t, err, cache.ErrLoadTimeout)
			var ke *loader.KeyError[string]
			require.ErrorAs(t, err, &ke)
			assert.Equal(t, "k", ke.Key)
			assert.Zero(t, v)
			assert.EqualValues(t, 1, a.Stats().LoadTimeouts)

			b.awaitEntered(t)
			b.free()
			require.NoError(t, a.AwaitWrites(testContext(t), "k"))
			var src cache.Source
			v, err = other.Get(testContext(t), "k", cache.SourceOf(&src))
			require.NoError(t, err)
			assert.EqualValues(t, 7, v, "the load went on under its lease, and wrote")
			assert.Equal(t, cache.SourceRedis, src)
			assert.Zero(t, otherCalls.Load())
			assert.EqualValues(t, 1, b.calls.Load())
		})
	}
}

// TestHardTimeoutWaitingForAnotherProcess: a read that finds another
// process's lease waits at most the hard timeout; once that load wrote,
// reads find its value.
func TestHardTimeoutWaitingForAnotherProcess(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	release, done := holdLongLease(t, ns, "k", 9)
	var calls atomic.Int64
	a := versionCache(t, connect(t, shared), ns, nil, func(o *cache.Options[string, int64]) {
		o.Loader = func(context.Context, string) (int64, error) { calls.Add(1); return 0, errors.New("not this one") }
		o.LeaseTTL = time.Minute // the wait is not cut by a lease's expiry
	})
	_, err := within(t, "a Get waiting on a lease", func(ctx context.Context) (int64, error) {
		return a.Get(ctx, "k", cache.LoadTimeouts(0, 20*time.Millisecond))
	})
	require.ErrorIs(t, err, cache.ErrLoadTimeout)
	assert.EqualValues(t, 1, a.Stats().LoadTimeouts)
	close(release)
	<-done
	// Without a timeout, the read waits for the holder's write (its push).
	v, err := within(t, "a Get after the holder's load", func(ctx context.Context) (int64, error) {
		return a.Get(ctx, "k")
	})
	require.NoError(t, err)
	assert.EqualValues(t, 9, v)
	assert.Zero(t, calls.Load(), "the holder's value, not a load of this process")
}

// holdLongLease is holdLease with a lease of a minute, longer than the
// test's patience: a wait that only the lease's expiry ends fails the test.
func holdLongLease(t *testing.T, ns, key string, v int64) (release, done chan struct{}) {
	t.Helper()
	b := newBlockingLoader(t, v)
	b.blocked.Store(true)
	holder := versionCache(t, connect(t, shared), ns, nil, func(o *cache.Options[string, int64]) {
		o.Loader = b.load
		o.LeaseTTL = time.Minute
	})
	release, done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		_, _ = holder.Get(context.Background(), key)
		// The write behind the Get, before the test reads.
		_ = holder.AwaitWrites(context.Background(), key)
	}()
	go func() {
		<-release
		b.free()
	}()
	b.awaitEntered(t)
	return release, done
}

// TestHardTimeoutOfAJoiner: a read of a key that another read of the
// process resolves without a timeout — loading it, or waiting on another
// process's lease — waits for it at most its own hard timeout; the other
// read gets the value.
func TestHardTimeoutOfAJoiner(t *testing.T) {
	t.Parallel()
	for name, byLease := range map[string]bool{"own load": false, "another process's lease": true} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ns := namespace(t)
			b := newBlockingLoader(t, 3)
			b.blocked.Store(!byLease)
			a := versionCache(t, connect(t, shared), ns, nil, func(o *cache.Options[string, int64]) {
				o.Loader = b.load
				o.LeaseTTL = time.Minute
			})
			var release, done chan struct{}
			if byLease {
				release, done = holdLongLease(t, ns, "k", 3)
			}
			first := inBackground(func(ctx context.Context) (int64, error) { return a.Get(ctx, "k") })
			if byLease {
				// Waiting on the lease, its flight stays open (no push
				// comes before the holder writes): the next read joins it.
				for a.Stats().LeaseWaits == 0 {
					waitABit()
				}
			} else {
				// Loading under its lease; the lease's own push made the
				// next read start a flight of its own, which finds the
				// process's lease and waits for that load.
				b.awaitEntered(t)
			}
			_, err := within(t, "the read with a timeout", func(ctx context.Context) (int64, error) {
				return a.Get(ctx, "k", cache.LoadTimeouts(0, 20*time.Millisecond))
			})
			require.ErrorIs(t, err, cache.ErrLoadTimeout)
			if byLease {
				close(release)
				<-done
			} else {
				b.free()
			}
			v, err := await(t, first, "the read without one")
			require.NoError(t, err)
			assert.EqualValues(t, 3, v)
			assert.EqualValues(t, map[bool]int64{false: 1, true: 0}[byLease], b.calls.Load())
		})
	}
}

// TestHardTimeoutOfALeaderAbandonsItsFlight: when the read that leads a
// key's flight times out, the reads of the process that joined it, without a
// timeout of their own, do not fail with its timeout: they get the value.
func TestHardTimeoutOfALeaderAbandonsItsFlight(t *testing.T) {
	t.Parallel()
	for name, byLease := range map[string]bool{"own load": false, "another process's lease": true} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ns := namespace(t)
			b := newBlockingLoader(t, 5)
			b.blocked.Store(!byLease)
			a := versionCache(t, connect(t, shared), ns, nil, func(o *cache.Options[string, int64]) {
				o.Loader = b.load
			})
			var release, done chan struct{}
			if byLease {
				release, done = holdLongLease(t, ns, "k", 5)
			}
			leader := inBackground(func(ctx context.Context) (int64, error) {
				return a.Get(ctx, "k", cache.LoadTimeouts(0, time.Second))
			})
			// The leader leads the key's flight before the joiner starts.
			if byLease {
				for a.Stats().LeaseWaits == 0 {
					waitABit() // it waits on the other process's lease
				}
			} else {
				b.awaitEntered(t) // it holds the lease and loads
			}
			joiner := inBackground(func(ctx context.Context) (int64, error) {
				return a.Get(ctx, "k")
			})
			_, err := await(t, leader, "the leader")
			require.ErrorIs(t, err, cache.ErrLoadTimeout)
			if byLease {
				close(release)
				<-done
			} else {
				b.free()
			}
			v, err := await(t, joiner, "the joiner")
			require.NoError(t, err, "the joiner has no timeout")
			assert.EqualValues(t, 5, v)
		})
	}
}

// TestLoadTimeoutsValidated: New and LoadTimeouts refuse bad timeouts,
// naming them.
func TestLoadTimeoutsValidated(t *testing.T) {
	t.Parallel()
	client := connect(t, shared)
	for field, set := range map[string]func(*cache.Options[string, int64]){
		"SoftTimeout":      func(o *cache.Options[string, int64]) { o.SoftTimeout = -time.Second },
		"HardTimeout":      func(o *cache.Options[string, int64]) { o.HardTimeout = time.Microsecond },
		"FailSafeThrottle": func(o *cache.Options[string, int64]) { o.FailSafeThrottle = -1 },
		"FailSafeMaxAge":   func(o *cache.Options[string, int64]) { o.FailSafeMaxAge = time.Nanosecond },
	} {
		o := cache.Options[string, int64]{Namespace: namespace(t)}
		set(&o)
		_, err := cache.New(client, o)
		require.ErrorIs(t, err, cache.ErrInvalidOptions, field)
		assert.Contains(t, err.Error(), field)
	}
	for field, set := range map[string]func(*cache.Options[string, int64]){
		"SoftTimeout":      func(o *cache.Options[string, int64]) { o.SoftTimeout = time.Second },
		"FailSafe":         func(o *cache.Options[string, int64]) { o.FailSafe = true },
		"FailSafeThrottle": func(o *cache.Options[string, int64]) { o.FailSafeThrottle = time.Second },
		"FailSafeMaxAge":   func(o *cache.Options[string, int64]) { o.FailSafeMaxAge = time.Second },
	} {
		o := cache.Options[string, int64]{Namespace: namespace(t), Plain: true}
		set(&o)
		_, err := cache.New(client, o)
		require.ErrorIs(t, err, cache.ErrInvalidOptions, "plain mode refuses %s", field)
		assert.Contains(t, err.Error(), field)
	}
	_, err := cache.New(client, cache.Options[string, int64]{Namespace: namespace(t), Plain: true, HardTimeout: time.Second})
	require.NoError(t, err, "a hard timeout needs no soft TTL")

	c := versionCache(t, client, namespace(t), newSource())
	_, err = c.Get(testContext(t), "k", cache.LoadTimeouts(-1, 0))
	require.ErrorIs(t, err, cache.ErrInvalidOptions)
	assert.Contains(t, err.Error(), "LoadTimeouts")
	_, err = c.GetMany(testContext(t), []string{"a", "b"}, cache.LoadTimeouts(0, -1))
	require.ErrorIs(t, err, cache.ErrInvalidOptions)
}
