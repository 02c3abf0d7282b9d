package cache_test

import (
	"context"
	"errors"
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
	"github.com/aside-go/aside/ttlpolicy"
)

func TestGetLoadsOnceThenServesFromMemory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var calls atomic.Int64
	c := userCache(t, nil, namespace(t), &calls)

	for i := range 3 {
		u, err := c.Get(ctx, 7)
		require.NoError(t, err, "get %d", i)
		assert.Equal(t, sampleUser(7), u)
	}

	assert.EqualValues(t, 1, calls.Load(), "loader calls")
	s := c.Stats()
	assert.EqualValues(t, 1, s.Misses)
	assert.EqualValues(t, 1, s.Loads)
	assert.Zero(t, s.RedisHits, "the loaded value is in process memory at once")
	assert.EqualValues(t, 2, s.LocalHits, "the copy serves the Gets after the load")
	assert.Equal(t, 1, s.LocalEntries)
	assert.True(t, s.Tracking)
	assert.Greater(t, s.HitRatio(), 0.5)
}

func TestLocalHitAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	c := userCache(t, nil, namespace(t), nil)
	warm(t, c, 1)
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := c.Get(ctx, 1); err != nil {
			panic(err)
		}
	})
	assert.Zero(t, allocs)
}

func TestSetIsSeenByAnotherClientOnceInvalidated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	invalidated := make(chan string, 16)
	opt := shared.ClientOption()
	opt.OnInvalidations = func(msgs []rueidis.RedisMessage) {
		for _, m := range msgs {
			if k, err := m.ToString(); err == nil {
				invalidated <- k
			}
		}
	}
	reader := userCache(t, connectWith(t, opt), ns, nil)
	writer := userCache(t, nil, ns, nil)

	// The reader holds a copy in memory.
	require.NoError(t, writer.Set(ctx, 1, User{ID: 1, Name: "old"}))
	warm(t, reader, 1)
	u, err := reader.Get(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, "old", u.Name)

	require.NoError(t, writer.Set(ctx, 1, User{ID: 1, Name: "new"}))
	select {
	case k := <-invalidated:
		assert.Equal(t, reader.Key(1), k)
	case <-time.After(10 * time.Second):
		t.Fatal("no invalidation reached the reader within 10s")
	}
	u, err = reader.Get(ctx, 1)
	require.NoError(t, err)
	assert.Equal(t, "new", u.Name)
	assert.GreaterOrEqual(t, reader.Stats().Invalidations, uint64(1))
}

func TestSetReadYourWritesInProcess(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := userCache(t, nil, namespace(t), nil)
	for i := range 50 {
		want := User{ID: 3, Name: string(rune('a' + i%26))}
		require.NoError(t, c.Set(ctx, 3, want))
		got, err := c.Get(ctx, 3)
		require.NoError(t, err)
		require.Equal(t, want, got, "round %d", i)
		got, err = c.Get(ctx, 3)
		require.NoError(t, err)
		require.Equal(t, want, got, "round %d (copy)", i)
	}
}

func TestZeroValueIsAValue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var calls atomic.Int64
	c := userCache(t, nil, namespace(t), &calls)
	require.NoError(t, c.Set(ctx, 5, User{}))
	for range 2 {
		u, err := c.Get(ctx, 5)
		require.NoError(t, err)
		assert.Equal(t, User{}, u)
	}
	assert.Zero(t, calls.Load())
	n, err := c.Exists(ctx, 5)
	require.NoError(t, err)
	assert.Equal(t, 1, n)

	s, err := cache.New(connect(t, shared), cache.Options[string, string]{Namespace: namespace(t), Codec: codec.String()})
	require.NoError(t, err)
	require.NoError(t, s.Set(ctx, "empty", ""))
	got, err := s.Get(ctx, "empty")
	require.NoError(t, err)
	assert.Equal(t, "", got)
}

func TestSetWithTTL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := userCache(t, nil, namespace(t), nil)

	require.NoError(t, c.Set(ctx, 1, sampleUser(1), cache.WithTTL(90*time.Second)))
	ttl, err := c.TTL(ctx, 1)
	require.NoError(t, err)
	assert.LessOrEqual(t, ttl, 90*time.Second)
	assert.Greater(t, ttl, 80*time.Second)

	require.NoError(t, c.Set(ctx, 2, sampleUser(2), cache.WithTTL(1500*time.Millisecond)))
	ttl, err = c.TTL(ctx, 2)
	require.NoError(t, err)
	assert.LessOrEqual(t, ttl, 1500*time.Millisecond)
	assert.Greater(t, ttl, 500*time.Millisecond)
	assert.Zero(t, ttl%time.Millisecond, "PTTL has millisecond precision")

	// The policy decides when no TTL is given: 5 minutes ± 10%.
	require.NoError(t, c.Set(ctx, 3, sampleUser(3)))
	ttl, err = c.TTL(ctx, 3)
	require.NoError(t, err)
	assert.LessOrEqual(t, ttl, 330*time.Second)
	assert.Greater(t, ttl, 260*time.Second)

	err = c.Set(ctx, 4, sampleUser(4), cache.WithTTL(time.Microsecond))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "WithTTL")
}

func TestExpiredValueIsNotServedFromMemory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	var calls atomic.Int64
	c := userCache(t, nil, namespace(t), &calls, func(o *cache.Options[int64, User]) { o.Now = clock })
	require.NoError(t, c.Set(ctx, 1, sampleUser(1), cache.WithTTL(time.Hour)))
	warm(t, c, 1)
	before := c.Stats()
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	// The copy is past its expiry: it is dropped and Redis is asked again.
	_, err := c.Get(ctx, 1)
	require.NoError(t, err)
	s := c.Stats()
	assert.Equal(t, before.LocalHits, s.LocalHits)
	assert.Equal(t, before.RedisHits+1, s.RedisHits)
}

func TestExistsAndDeleteCountLikeRedis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := userCache(t, nil, namespace(t), nil)
	for id := int64(1); id <= 3; id++ {
		require.NoError(t, c.Set(ctx, id, sampleUser(id)))
	}
	n, err := c.Exists(ctx, 1, 2, 3, 99)
	require.NoError(t, err)
	assert.Equal(t, 3, n)

	n, err = c.Exists(ctx, 1, 1, 99)
	require.NoError(t, err)
	assert.Equal(t, 2, n, "a key named twice counts twice")

	n, err = c.Exists(ctx)
	require.NoError(t, err)
	assert.Zero(t, n)

	n, err = c.Delete(ctx, 1, 2, 99)
	require.NoError(t, err)
	assert.Equal(t, 2, n)

	n, err = c.Exists(ctx, 1, 2, 3)
	require.NoError(t, err)
	assert.Equal(t, 1, n)

	n, err = c.Delete(ctx, 1)
	require.NoError(t, err)
	assert.Zero(t, n)
}

func TestExpiryOperations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := userCache(t, nil, namespace(t), nil)

	_, err := c.TTL(ctx, 1)
	assert.ErrorIs(t, err, cache.ErrKeyMissing)
	ok, err := c.Expire(ctx, 1, time.Minute)
	require.NoError(t, err)
	assert.False(t, ok, "EXPIRE of a missing key")
	ok, err = c.Persist(ctx, 1)
	require.NoError(t, err)
	assert.False(t, ok)

	require.NoError(t, c.Set(ctx, 1, sampleUser(1), cache.WithTTL(time.Minute)))
	ok, err = c.Persist(ctx, 1)
	require.NoError(t, err)
	assert.True(t, ok)
	ttl, err := c.TTL(ctx, 1)
	require.NoError(t, err)
	assert.Equal(t, cache.NoExpiry, ttl)
	ok, err = c.Persist(ctx, 1)
	require.NoError(t, err)
	assert.False(t, ok, "PERSIST of a key without expiry")

	ok, err = c.Expire(ctx, 1, 10*time.Second)
	require.NoError(t, err)
	assert.True(t, ok)
	ttl, err = c.TTL(ctx, 1)
	require.NoError(t, err)
	assert.LessOrEqual(t, ttl, 10*time.Second)
	assert.Greater(t, ttl, 5*time.Second)

	at := time.Now().Add(time.Hour)
	ok, err = c.ExpireAt(ctx, 1, at)
	require.NoError(t, err)
	assert.True(t, ok)
	ttl, err = c.TTL(ctx, 1)
	require.NoError(t, err)
	assert.InDelta(t, float64(time.Hour), float64(ttl), float64(5*time.Second))

	ok, err = c.ExpireAt(ctx, 1, time.Now().Add(-time.Second))
	require.NoError(t, err)
	assert.True(t, ok)
	_, err = c.TTL(ctx, 1)
	assert.ErrorIs(t, err, cache.ErrKeyMissing, "EXPIREAT in the past deletes")
}

func TestNegativeCaching(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var calls atomic.Int64
	c := userCache(t, nil, namespace(t), &calls, func(o *cache.Options[int64, User]) {
		o.TTL = ttlpolicy.Minutes(5).WithNegativeTTL(30 * time.Second)
	})
	for i := range 3 {
		_, err := c.Get(ctx, -1)
		require.ErrorIs(t, err, cache.ErrNotFound, "get %d", i)
		require.ErrorIs(t, err, loader.ErrNotFound)
	}
	assert.EqualValues(t, 1, calls.Load())
	s := c.Stats()
	assert.EqualValues(t, 2, s.NotFoundHits)

	// The marker lives for the negative TTL (read beside the cache: to
	// the cache's operations a marker is no key, see TestNotFoundIsNoKey).
	rc := connect(t, shared).Rueidis()
	pttl, err := rc.Do(ctx, rc.B().Pttl().Key(c.Key(-1)).Build()).AsInt64()
	require.NoError(t, err)
	ttl := time.Duration(pttl) * time.Millisecond
	assert.LessOrEqual(t, ttl, 33*time.Second, "30s ± 10%")
	assert.Greater(t, ttl, 20*time.Second)

	n, err := c.Exists(ctx, -1)
	require.NoError(t, err)
	assert.Zero(t, n, "a not-found marker is not a value")

	// A marker never collides with a real value written later.
	require.NoError(t, c.Set(ctx, -1, User{}))
	u, err := c.Get(ctx, -1)
	require.NoError(t, err)
	assert.Equal(t, User{}, u)
}

func TestGetWithoutLoader(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, err := cache.New(connect(t, shared), cache.Options[string, User]{Namespace: namespace(t)})
	require.NoError(t, err)
	_, err = c.Get(ctx, "nobody")
	require.ErrorIs(t, err, cache.ErrNotFound)
	require.NoError(t, c.Set(ctx, "somebody", sampleUser(1)))
	u, err := c.Get(ctx, "somebody")
	require.NoError(t, err)
	assert.Equal(t, sampleUser(1), u)
}

func TestLoaderErrorIsReturnedAndNotCached(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	boom := errors.New("database down")
	var calls atomic.Int64
	c := userCache(t, nil, namespace(t), nil, func(o *cache.Options[int64, User]) {
		o.Loader = func(context.Context, int64) (User, error) {
			calls.Add(1)
			return User{}, boom
		}
	})
	for range 2 {
		_, err := c.Get(ctx, 1)
		require.ErrorIs(t, err, boom)
	}
	assert.EqualValues(t, 2, calls.Load())
	assert.EqualValues(t, 2, c.Stats().LoadErrors)
	n, err := c.Exists(ctx, 1)
	require.NoError(t, err)
	assert.Zero(t, n)
}

func TestManyGoroutinesOnAColdKeyLoadOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	release := make(chan struct{})
	var calls atomic.Int64
	c := userCache(t, nil, namespace(t), nil, func(o *cache.Options[int64, User]) {
		o.Loader = func(_ context.Context, id int64) (User, error) {
			calls.Add(1)
			<-release
			return sampleUser(id), nil
		}
	})
	const n = 200
	var started, done sync.WaitGroup
	errs := make(chan error, n)
	started.Add(n)
	done.Add(n)
	for range n {
		go func() {
			defer done.Done()
			started.Done()
			u, err := c.Get(ctx, 9)
			if err == nil && u.ID != 9 {
				err = errors.New("wrong value")
			}
			errs <- err
		}()
	}
	started.Wait()
	close(release)
	done.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	// Goroutines that arrived after the load finished read the value back
	// from Redis instead: the loader ran once either way.
	assert.EqualValues(t, 1, calls.Load())
}

func TestInvalidateMakesNextGetReload(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var calls atomic.Int64
	c := userCache(t, nil, namespace(t), &calls)
	for range 2 {
		_, err := c.Get(ctx, 1)
		require.NoError(t, err)
	}
	require.NoError(t, c.Invalidate(ctx, 1, 2))
	_, err := c.Get(ctx, 1)
	require.NoError(t, err)
	assert.EqualValues(t, 2, calls.Load())
}

func TestUnreadableValueIsReplacedWhenAllowed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := connect(t, shared)
	var calls atomic.Int64
	ns := namespace(t)
	// No copies in process memory: each Get must meet the bytes the test
	// wrote through Rueidis(), whose push would otherwise drop the copy
	// of the round before only a push delay later.
	c := userCache(t, client, ns, &calls, func(o *cache.Options[int64, User]) {
		o.LocalBytes = -1
		o.ReplaceUnreadable = true
	})
	garbage := []string{"*", "", "\xc1\x01\x01", "{\"ID\":1}", "\xc1\x09\x01\x00\x00\x00\x00\x00\x00\x00\x00", "\xae\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x81"}
	for _, g := range garbage {
		require.NoError(t, client.Rueidis().Do(ctx, client.Rueidis().B().Set().Key(c.Key(1)).Value(g).Build()).Error())
		u, err := c.Get(ctx, 1)
		require.NoError(t, err, "garbage %q", g)
		assert.Equal(t, sampleUser(1), u)
	}
	s := c.Stats()
	assert.EqualValues(t, len(garbage), s.DecodeErrors)

	// Without a loader the error says what happened.
	bare, err := cache.New(client, cache.Options[int64, User]{Namespace: ns + "-bare", ReplaceUnreadable: true})
	require.NoError(t, err)
	require.NoError(t, client.Rueidis().Do(ctx, client.Rueidis().B().Set().Key(bare.Key(1)).Value("*").Build()).Error())
	_, err = bare.Get(ctx, 1)
	assert.ErrorIs(t, err, cache.ErrCorrupt)
}

func TestKeysStayInsideTheNamespace(t *testing.T) {
	t.Parallel()
	type id struct{ a, b int }
	c, err := cache.New(connect(t, shared), cache.Options[id, string]{
		Namespace: "ns",
		Codec:     codec.String(),
		Key:       func(k id) string { return "x:*:" + string(rune('0'+k.a)) },
	})
	require.NoError(t, err)
	assert.Equal(t, "ns:x:*:1", c.Key(id{1, 2}))

	type name string
	named, err := cache.New(connect(t, shared), cache.Options[name, string]{Namespace: "n", Codec: codec.String()})
	require.NoError(t, err)
	assert.Equal(t, "n:bob", named.Key("bob"))
	ints, err := cache.New(connect(t, shared), cache.Options[int32, string]{Namespace: "i", Codec: codec.String()})
	require.NoError(t, err)
	assert.Equal(t, "i:-12", ints.Key(-12))
}

func TestInvalidOptionsNameTheField(t *testing.T) {
	t.Parallel()
	client := connect(t, shared)
	cases := []struct {
		field string
		opts  cache.Options[int64, User]
	}{
		{"Namespace", cache.Options[int64, User]{}},
		{"Namespace", cache.Options[int64, User]{Namespace: "a:b"}},
		{"Namespace", cache.Options[int64, User]{Namespace: "a*"}},
		{"TTL", cache.Options[int64, User]{Namespace: "a", TTL: ttlpolicy.Minutes(5).WithJitter(1.5)}},
		{"TTL", cache.Options[int64, User]{Namespace: "a", TTL: ttlpolicy.Fixed(-time.Second)}},
		{"LocalTTL", cache.Options[int64, User]{Namespace: "a", LocalTTL: time.Microsecond}},
		{"OnRedisDown", cache.Options[int64, User]{Namespace: "a", OnRedisDown: 7}},
	}
	for _, tc := range cases {
		_, err := cache.New(client, tc.opts)
		require.Error(t, err, tc.field)
		assert.ErrorIs(t, err, cache.ErrInvalidOptions)
		assert.Contains(t, err.Error(), tc.field)
	}
	type structKey struct{ A int }
	_, err := cache.New(client, cache.Options[structKey, User]{Namespace: "a"})
	require.ErrorIs(t, err, cache.ErrInvalidOptions)
	assert.Contains(t, err.Error(), "Key")
	_, err = cache.New[int64, User](nil, cache.Options[int64, User]{Namespace: "a"})
	require.ErrorIs(t, err, cache.ErrInvalidOptions)
	assert.Contains(t, err.Error(), "client")
}

func TestRedisDownFailOpenAndFailFast(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Config{})
	client := connect(t, srv)
	var calls atomic.Int64
	open := userCache(t, client, "open", &calls)
	fast := userCache(t, client, "fast", &calls, func(o *cache.Options[int64, User]) { o.OnRedisDown = cache.FailFast })

	ctx := context.Background()
	_, err := open.Get(ctx, 1)
	require.NoError(t, err)

	require.NoError(t, srv.Kill())

	u, err := open.Get(ctx, 2)
	require.NoError(t, err, "fail open answers from the loader")
	assert.Equal(t, sampleUser(2), u)
	assert.EqualValues(t, 1, open.Stats().Fallbacks)

	_, err = fast.Get(ctx, 2)
	require.ErrorIs(t, err, cache.ErrUnavailable)

	err = open.Set(ctx, 3, sampleUser(3))
	require.ErrorIs(t, err, cache.ErrUnavailable)

	// A context that ends stays a context error.
	short, cancel := context.WithCancel(ctx)
	cancel()
	_, err = fast.Get(short, 4)
	require.ErrorIs(t, err, context.Canceled)

	// Back up: everything works again.
	require.NoError(t, srv.Restart())
	require.NoError(t, open.Set(ctx, 3, sampleUser(3)))
	u, err = fast.Get(ctx, 5)
	require.NoError(t, err)
	assert.Equal(t, sampleUser(5), u)
}

func TestConnectionDropFlushesCopies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Start(t, redistest.Config{})
	flushed := make(chan struct{}, 4)
	opt := srv.ClientOption()
	opt.OnInvalidations = func(msgs []rueidis.RedisMessage) {
		if msgs == nil {
			flushed <- struct{}{}
		}
	}
	c := userCache(t, connectWith(t, opt), "drop", nil)
	warm(t, c, 1)
	require.Equal(t, 1, c.Stats().LocalEntries)

	_, err := srv.Do(ctx, "CLIENT", "KILL", "TYPE", "normal")
	require.NoError(t, err)
	select {
	case <-flushed:
	case <-time.After(10 * time.Second):
		t.Fatal("the dropped connection was not reported within 10s")
	}
	assert.Zero(t, c.Stats().LocalEntries)
	u, err := c.Get(ctx, 1)
	require.NoError(t, err)
	assert.Equal(t, sampleUser(1), u)
}

func TestServerWithoutTrackingFallsBackToPlainReads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Start(t, redistest.Config{Users: []redistest.User{{
		Name: "app", Password: "secret", Rules: []string{"~*", "&*", "+@all", "-client|tracking"},
	}}})
	opt := srv.ClientOption()
	opt.Username, opt.Password = "app", "secret"
	client := connectWith(t, opt)
	assert.False(t, client.Tracking())

	var calls atomic.Int64
	c := userCache(t, client, "plain", &calls)
	for range 3 {
		u, err := c.Get(ctx, 1)
		require.NoError(t, err)
		assert.Equal(t, sampleUser(1), u)
		require.NoError(t, cache.AwaitWrites(ctx, c, 1))
	}
	s := c.Stats()
	assert.False(t, s.Tracking)
	assert.Zero(t, s.LocalHits, "no copies without invalidations to keep them fresh")
	assert.EqualValues(t, 2, s.RedisHits)
	assert.EqualValues(t, 1, calls.Load())
}

func TestLocalBytesBoundsCopies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const budget = 16 << 10
	c := userCache(t, nil, namespace(t), nil, func(o *cache.Options[int64, User]) { o.LocalBytes = budget })
	for id := range int64(200) {
		for range 3 {
			u, err := c.Get(ctx, id)
			require.NoError(t, err)
			require.Equal(t, sampleUser(id), u)
		}
	}
	s := c.Stats()
	assert.LessOrEqual(t, s.LocalBytes, int64(budget))
	assert.Positive(t, s.LocalEntries)
	assert.Less(t, s.LocalEntries, 200, "not every copy fits")
}

func TestCloneIsAppliedToEveryHit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var clones atomic.Int64
	c := userCache(t, nil, namespace(t), nil, func(o *cache.Options[int64, User]) {
		o.Clone = func(u User) User {
			clones.Add(1)
			u.Roles = append([]string(nil), u.Roles...)
			return u
		}
	})
	warm(t, c, 1)
	u, err := c.Get(ctx, 1)
	require.NoError(t, err)
	u.Roles[0] = "mutated"
	again, err := c.Get(ctx, 1)
	require.NoError(t, err)
	assert.Equal(t, "reader", again.Roles[0], "the shared copy was not touched")
	assert.Positive(t, clones.Load())
}

// TestReadOnlyUserStillReads runs as a user that may not write: the first
// read of a Get (SET NX GET, which also takes the lease) is refused, and the
// Get reads with GET instead.
func TestReadOnlyUserStillReads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Start(t, redistest.Config{Users: []redistest.User{{
		Name: "reader", Password: "r", Rules: []string{"~*", "&*", "+@all", "-@write"},
	}}})
	writer := userCache(t, connect(t, srv), "ro", nil)
	require.NoError(t, writer.Set(ctx, 1, sampleUser(1)))

	opt := srv.ClientOption()
	opt.Username, opt.Password = "reader", "r"
	var calls atomic.Int64
	reader := userCache(t, connectWith(t, opt), "ro", &calls)
	u, err := reader.Get(ctx, 1)
	require.NoError(t, err)
	assert.Equal(t, sampleUser(1), u)
	warm(t, reader, 1)
	assert.Zero(t, calls.Load())

	// A miss needs a lease, which this user may not take: Redis refusing
	// it is not an answer for the read, which goes as OnRedisDown says —
	// FailOpen, the default: the loader answers, and nothing is written.
	u, err = reader.Get(ctx, 2)
	require.NoError(t, err)
	assert.Equal(t, sampleUser(2), u)
	assert.EqualValues(t, 1, calls.Load())
	assert.EqualValues(t, 1, reader.Stats().Refusals)
	n, err := writer.Exists(ctx, 2)
	require.NoError(t, err)
	assert.Zero(t, n, "nothing written")

	// FailFast: the read fails as Redis in trouble, with Redis' refusal.
	strict := userCache(t, connectWith(t, opt), "ro", &calls, func(o *cache.Options[int64, User]) {
		o.OnRedisDown = cache.FailFast
	})
	_, err = strict.Get(ctx, 3)
	require.Error(t, err)
	assert.ErrorIs(t, err, cache.ErrUnavailable)
	var re *rueidis.RedisError
	assert.True(t, errors.As(err, &re), "Redis' own refusal: %v", err)
	assert.Contains(t, err.Error(), "NOPERM")
}
