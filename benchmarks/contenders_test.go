package benchmarks

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	gocache "github.com/go-redis/cache/v9"
	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
	"github.com/redis/rueidis/rueidisaside"
	"github.com/viccon/sturdyc"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/aside-go/aside/cache"
)

// Every contender is set up as its documentation recommends, with the same
// value (User), the same keys (Key), the same expiry in Redis and the same
// redis-server.
const (
	// valueTTL is the expiry of values in Redis: aside's default policy
	// (five minutes, with its ±10% jitter), the others exactly.
	valueTTL = 5 * time.Minute
	// localSize bounds the copies kept in process memory, where a
	// contender keeps any: aside's default, and the same for the others.
	localSize = 100_000
	// localTTL is how long go-redis/cache's TinyLFU keeps a copy (its
	// README's example uses a minute). Nothing invalidates that copy in other
	// processes before then.
	localTTL = time.Minute
	// swrBound is asideSWR's Options.StaleWhileReloading: how long after
	// another process's change reached it an instance may still serve the
	// previous value, to the reads that come before its background reload
	// stored the new one. The first read after the push is served stale
	// however late it comes within the bound, so the oldest stale read of a
	// run is about the bound plus the push's delay, whatever a reload takes.
	// Five times the mixes' invalidationDelay, so that those reads are
	// counted (a bound under 10 ms would hide every stale read it serves in
	// that allowance); above a reload under load (a 1 ms load, a few round
	// trips, a read p99.9 of several ms in the steady mix); and an order of
	// magnitude under the oldest stale reads of the contenders that serve
	// stale copies by design (go-redis-cache+LFU, sturdyc: hundreds of ms to
	// over a second).
	swrBound = 50 * time.Millisecond
)

// client is one instance of a contender (what one application process
// holds), reduced to what the scenarios do.
type client interface {
	// Get reads id through the cache, calling the loader on a miss.
	Get(ctx context.Context, id int64) (User, error)
	// GetMany reads ids through the cache, calling the batch loader for
	// the misses where the contender has one, and returns how many values
	// it got.
	GetMany(ctx context.Context, ids []int64) (int, error)
	// Invalidate makes every instance read id from the source again, as
	// far as the contender can: it is what its documentation says to do
	// after the source changed.
	Invalidate(ctx context.Context, id int64) error
}

// env is what a client is built with: its namespace (shared by every
// instance of one benchmark run) and its loaders.
type env struct {
	ns       string
	load     func(ctx context.Context, id int64) (User, error)
	loadMany func(ctx context.Context, ids []int64) (map[int64]User, error)
}

// contender builds instances of one library in one configuration. The
// instance is closed when the benchmark ends.
type contender struct {
	name string
	open func(tb testing.TB, e env) client
}

// instances opens n instances of c.
func (c contender) instances(tb testing.TB, e env, n int) []client {
	out := make([]client, n)
	for i := range out {
		out[i] = c.open(tb, e)
	}
	return out
}

var (
	// asideLocal is aside as its README shows it: decoded copies in process
	// memory, kept fresh by Redis' client-side caching.
	asideLocal = contender{"aside", openAside(false)}
	// asideRedis is aside on a client without client-side caching: every
	// Get is a round trip.
	asideRedis = contender{"aside", openAside(true)}
	// asideSWR is asideLocal with Options.StaleWhileReloading (swrBound):
	// after another instance's change it serves the previous value, counted
	// stale by the mixes, until its reload stored the new one or swrBound
	// passed. Its name keeps it out of the targets of aside's own row.
	asideSWR = contender{"aside+SWR-" + swrBound.String(), openAsideWith(false, func(o *cache.Options[int64, User]) {
		o.StaleWhileReloading = swrBound
	})}
	// rueidisDo is cache-aside written by hand on rueidis: GET (Do), decode;
	// on a miss load, encode, SET PX.
	rueidisDo = contender{"rueidis", openRueidis(false)}
	// rueidisDoCache is the same with DoCache: the GET is served from
	// rueidis' client-side cache when it holds the reply.
	rueidisDoCache = contender{"rueidis-DoCache", openRueidis(true)}
	// rueidisAside is rueidisaside's typed client.
	rueidisAside = contender{"rueidisaside", openRueidisAside(false)}
	// rueidisAsideRedis is rueidisaside on a client without client-side
	// caching.
	rueidisAsideRedis = contender{"rueidisaside", openRueidisAside(true)}
	// goRedisCache is go-redis/cache on Redis alone.
	goRedisCache = contender{"go-redis-cache", openGoRedisCache(false)}
	// goRedisCacheLFU is go-redis/cache with its local TinyLFU.
	goRedisCacheLFU = contender{"go-redis-cache+LFU", openGoRedisCache(true)}
	// sturdy is sturdyc's in-memory cache with its distributed storage on
	// Redis (implemented with rueidis, as its README asks).
	sturdy = contender{"sturdyc", openSturdyc}
)

// ---- aside

type asideClient struct{ c *cache.Cache[int64, User] }

func openAside(noClientSideCaching bool) func(testing.TB, env) client {
	return openAsideWith(noClientSideCaching, nil)
}

// openAsideWith is openAside with the options changed by set (when not nil).
func openAsideWith(noClientSideCaching bool, set func(*cache.Options[int64, User])) func(testing.TB, env) client {
	return func(tb testing.TB, e env) client {
		tb.Helper()
		opt := redisOption()
		opt.DisableCache = noClientSideCaching
		cl, err := cache.Connect(opt)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(cl.Close)
		opts := cache.Options[int64, User]{
			Namespace:   e.ns,
			Loader:      e.load,
			BatchLoader: e.loadMany,
		}
		if set != nil {
			set(&opts)
		}
		c, err := cache.New(cl, opts)
		if err != nil {
			tb.Fatal(err)
		}
		return asideClient{c}
	}
}

func (a asideClient) Get(ctx context.Context, id int64) (User, error) { return a.c.Get(ctx, id) }

// GetMany reads into slices, with GetManyInto: the caller asks for how many
// values it got, not for a map of them.
func (a asideClient) GetMany(ctx context.Context, ids []int64) (int, error) {
	buf := manyBufs.Get().(*manyBuf)
	defer manyBufs.Put(buf)
	if len(buf.vals) < len(ids) {
		buf.vals, buf.found = make([]User, len(ids)), make([]bool, len(ids))
	}
	err := a.c.GetManyInto(ctx, ids, buf.vals, buf.found)
	n := 0
	for _, f := range buf.found[:len(ids)] {
		if f {
			n++
		}
	}
	clear(buf.vals[:len(ids)]) // nothing kept alive by the pool
	return n, err
}

// manyBuf is the slices of one GetMany of asideClient.
type manyBuf struct {
	vals  []User
	found []bool
}

var manyBufs = sync.Pool{New: func() any { return new(manyBuf) }}

func (a asideClient) Invalidate(ctx context.Context, id int64) error {
	return a.c.Invalidate(ctx, id)
}

// localReady reports whether n keys are served from process memory (or, on a
// client without client-side caching, that none ever will be), for the
// warm-up of the hit benchmarks.
func (a asideClient) localReady(n int) bool {
	s := a.c.Stats()
	return !s.Tracking || s.LocalEntries >= n
}

// ---- rueidis, by hand

type rueidisClient struct {
	rc       rueidis.Client
	e        env
	doCache  bool
	ttl      time.Duration
	ttlMilli int64
}

func openRueidis(doCache bool) func(testing.TB, env) client {
	return func(tb testing.TB, e env) client {
		tb.Helper()
		rc, err := rueidis.NewClient(redisOption())
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(rc.Close)
		return &rueidisClient{rc: rc, e: e, doCache: doCache, ttl: valueTTL, ttlMilli: valueTTL.Milliseconds()}
	}
}

func (r *rueidisClient) get(ctx context.Context, key string) rueidis.RedisResult {
	if r.doCache {
		return r.rc.DoCache(ctx, r.rc.B().Get().Key(key).Cache(), r.ttl)
	}
	return r.rc.Do(ctx, r.rc.B().Get().Key(key).Build())
}

func (r *rueidisClient) set(key string, u User) (rueidis.Completed, error) {
	data, err := msgpack.Marshal(&u)
	if err != nil {
		return rueidis.Completed{}, err
	}
	return r.rc.B().Set().Key(key).Value(rueidis.BinaryString(data)).PxMilliseconds(r.ttlMilli).Build(), nil
}

func (r *rueidisClient) Get(ctx context.Context, id int64) (User, error) {
	key := Key(r.e.ns, id)
	var u User
	raw, err := r.get(ctx, key).AsBytes()
	switch {
	case err == nil:
		err = msgpack.Unmarshal(raw, &u)
		return u, err
	case !rueidis.IsRedisNil(err):
		return u, err
	}
	if u, err = r.e.load(ctx, id); err != nil {
		return u, err
	}
	cmd, err := r.set(key, u)
	if err != nil {
		return u, err
	}
	return u, r.rc.Do(ctx, cmd).Error()
}

func (r *rueidisClient) GetMany(ctx context.Context, ids []int64) (int, error) {
	keys := make([]string, len(ids))
	var res []rueidis.RedisResult
	if r.doCache {
		cmds := make([]rueidis.CacheableTTL, len(ids))
		for i, id := range ids {
			keys[i] = Key(r.e.ns, id)
			cmds[i] = rueidis.CT(r.rc.B().Get().Key(keys[i]).Cache(), r.ttl)
		}
		res = r.rc.DoMultiCache(ctx, cmds...)
	} else {
		cmds := make(rueidis.Commands, len(ids))
		for i, id := range ids {
			keys[i] = Key(r.e.ns, id)
			cmds[i] = r.rc.B().Get().Key(keys[i]).Build()
		}
		res = r.rc.DoMulti(ctx, cmds...)
	}
	n := 0
	var missing []int64
	var missingKeys []string
	for i, rr := range res {
		raw, err := rr.AsBytes()
		switch {
		case err == nil:
			var u User
			if err := msgpack.Unmarshal(raw, &u); err != nil {
				return n, err
			}
			n++
		case rueidis.IsRedisNil(err):
			missing = append(missing, ids[i])
			missingKeys = append(missingKeys, keys[i])
		default:
			return n, err
		}
	}
	if len(missing) == 0 {
		return n, nil
	}
	loaded, err := r.e.loadMany(ctx, missing)
	if err != nil {
		return n, err
	}
	sets := make(rueidis.Commands, 0, len(missing))
	for i, id := range missing {
		u, ok := loaded[id]
		if !ok {
			continue
		}
		cmd, err := r.set(missingKeys[i], u)
		if err != nil {
			return n, err
		}
		sets = append(sets, cmd)
		n++
	}
	for _, rr := range r.rc.DoMulti(ctx, sets...) {
		if err := rr.Error(); err != nil {
			return n, err
		}
	}
	return n, nil
}

func (r *rueidisClient) Invalidate(ctx context.Context, id int64) error {
	return r.rc.Do(ctx, r.rc.B().Del().Key(Key(r.e.ns, id)).Build()).Error()
}

// ---- rueidisaside

type rueidisAsideClient struct {
	c rueidisaside.TypedCacheAsideClient[User]
	e env
}

func openRueidisAside(noClientSideCaching bool) func(testing.TB, env) client {
	return func(tb testing.TB, e env) client {
		tb.Helper()
		opt := redisOption()
		opt.DisableCache = noClientSideCaching
		ca, err := rueidisaside.NewClient(rueidisaside.ClientOption{ClientOption: opt})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(ca.Close)
		serialize := func(u *User) (string, error) {
			b, err := msgpack.Marshal(u)
			return string(b), err
		}
		deserialize := func(s string) (*User, error) {
			u := new(User)
			if err := msgpack.Unmarshal([]byte(s), u); err != nil {
				return nil, err
			}
			return u, nil
		}
		return &rueidisAsideClient{c: rueidisaside.NewTypedCacheAsideClient(ca, serialize, deserialize), e: e}
	}
}

func (r *rueidisAsideClient) Get(ctx context.Context, id int64) (User, error) {
	u, err := r.c.Get(ctx, valueTTL, Key(r.e.ns, id), func(ctx context.Context, _ string) (*User, error) {
		u, err := r.e.load(ctx, id)
		return &u, err
	})
	if err != nil {
		return User{}, err
	}
	return *u, nil
}

// GetMany is one Get per key: rueidisaside has no batch call.
func (r *rueidisAsideClient) GetMany(ctx context.Context, ids []int64) (int, error) {
	return getEach(ctx, r, ids)
}

func (r *rueidisAsideClient) Invalidate(ctx context.Context, id int64) error {
	return r.c.Del(ctx, Key(r.e.ns, id))
}

// ---- go-redis/cache

type goRedisCacheClient struct {
	c *gocache.Cache
	e env
}

func openGoRedisCache(local bool) func(testing.TB, env) client {
	return func(tb testing.TB, e env) client {
		tb.Helper()
		rdb := redis.NewClient(&redis.Options{Addr: redisAddr()})
		tb.Cleanup(func() { _ = rdb.Close() })
		opt := &gocache.Options{Redis: rdb}
		if local {
			opt.LocalCache = gocache.NewTinyLFU(localSize, localTTL)
		}
		return &goRedisCacheClient{c: gocache.New(opt), e: e}
	}
}

func (g *goRedisCacheClient) Get(ctx context.Context, id int64) (User, error) {
	var u User
	err := g.c.Once(&gocache.Item{
		Ctx:   ctx,
		Key:   Key(g.e.ns, id),
		Value: &u,
		TTL:   valueTTL,
		Do: func(*gocache.Item) (any, error) {
			return g.e.load(ctx, id)
		},
	})
	return u, err
}

// GetMany is one Once per key: go-redis/cache has no batch call.
func (g *goRedisCacheClient) GetMany(ctx context.Context, ids []int64) (int, error) {
	return getEach(ctx, g, ids)
}

func (g *goRedisCacheClient) Invalidate(ctx context.Context, id int64) error {
	return g.c.Delete(ctx, Key(g.e.ns, id))
}

// ---- sturdyc

type sturdycClient struct {
	c     *sturdyc.Client[User]
	store *sturdyStorage
	e     env
	keyFn sturdyc.KeyFn
}

func openSturdyc(tb testing.TB, e env) client {
	tb.Helper()
	rc, err := rueidis.NewClient(redisOption())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(rc.Close)
	store := &sturdyStorage{rc: rc, ttlMilli: valueTTL.Milliseconds()}
	// The configuration of sturdyc's distributed-storage example, less the
	// early refreshes and the coalescing, which the scenarios do not use.
	c := sturdyc.New[User](localSize, 100, valueTTL, 25, sturdyc.WithDistributedStorage(store))
	return &sturdycClient{
		c:     c,
		store: store,
		e:     e,
		keyFn: func(id string) string { return e.ns + ":" + id },
	}
}

func (s *sturdycClient) Get(ctx context.Context, id int64) (User, error) {
	return s.c.GetOrFetch(ctx, Key(s.e.ns, id), func(ctx context.Context) (User, error) {
		return s.e.load(ctx, id)
	})
}

func (s *sturdycClient) GetMany(ctx context.Context, ids []int64) (int, error) {
	sids := make([]string, len(ids))
	for i, id := range ids {
		sids[i] = strconv.FormatInt(id, 10)
	}
	m, err := s.c.GetOrFetchBatch(ctx, sids, s.keyFn, func(ctx context.Context, sids []string) (map[string]User, error) {
		ids := make([]int64, len(sids))
		for i, sid := range sids {
			id, err := strconv.ParseInt(sid, 10, 64)
			if err != nil {
				return nil, err
			}
			ids[i] = id
		}
		loaded, err := s.e.loadMany(ctx, ids)
		out := make(map[string]User, len(loaded))
		for id, u := range loaded {
			out[strconv.FormatInt(id, 10)] = u
		}
		return out, err
	})
	return len(m), err
}

// Invalidate deletes the key from Redis and from this instance's memory:
// sturdyc has no way to reach the memory of other instances.
func (s *sturdycClient) Invalidate(ctx context.Context, id int64) error {
	key := Key(s.e.ns, id)
	err := s.store.rc.Do(ctx, s.store.rc.B().Del().Key(key).Build()).Error()
	s.c.Delete(key)
	return err
}

// sturdyStorage is sturdyc's DistributedStorage on rueidis. The TTL of the
// records is ours to set, as sturdyc's README says.
type sturdyStorage struct {
	rc       rueidis.Client
	ttlMilli int64
}

func (s *sturdyStorage) Get(ctx context.Context, key string) ([]byte, bool) {
	b, err := s.rc.Do(ctx, s.rc.B().Get().Key(key).Build()).AsBytes()
	return b, err == nil
}

func (s *sturdyStorage) Set(ctx context.Context, key string, value []byte) {
	s.rc.Do(ctx, s.rc.B().Set().Key(key).Value(rueidis.BinaryString(value)).PxMilliseconds(s.ttlMilli).Build())
}

func (s *sturdyStorage) GetBatch(ctx context.Context, keys []string) map[string][]byte {
	cmds := make(rueidis.Commands, len(keys))
	for i, k := range keys {
		cmds[i] = s.rc.B().Get().Key(k).Build()
	}
	out := make(map[string][]byte, len(keys))
	for i, res := range s.rc.DoMulti(ctx, cmds...) {
		if b, err := res.AsBytes(); err == nil {
			out[keys[i]] = b
		}
	}
	return out
}

func (s *sturdyStorage) SetBatch(ctx context.Context, records map[string][]byte) {
	cmds := make(rueidis.Commands, 0, len(records))
	for k, v := range records {
		cmds = append(cmds, s.rc.B().Set().Key(k).Value(rueidis.BinaryString(v)).PxMilliseconds(s.ttlMilli).Build())
	}
	s.rc.DoMulti(ctx, cmds...)
}

// getEach is GetMany for contenders without a batch call: one Get per key,
// as their users write it.
func getEach(ctx context.Context, c client, ids []int64) (int, error) {
	n := 0
	var errs []error
	for _, id := range ids {
		if _, err := c.Get(ctx, id); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
