package cache_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/internal/redistest"
)

// The benchmarks use the package's private redis-server on loopback and a
// User of about 150 bytes in MessagePack.

// BenchmarkGetLocalHit reads a value held in process memory. With
// ASIDE_BENCH_RECORDER=1 the cache has a Recorder, to compare the hit path
// with and without one (it must not differ).
func BenchmarkGetLocalHit(b *testing.B) {
	ctx := context.Background()
	c := userCache(b, nil, namespace(b), nil, func(o *cache.Options[int64, User]) {
		if os.Getenv("ASIDE_BENCH_RECORDER") == "1" {
			o.Recorder = &countingRecorder{}
		}
	})
	warm(b, c, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Get(ctx, 1); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetLocalHitParallel(b *testing.B) {
	ctx := context.Background()
	c := userCache(b, nil, namespace(b), nil)
	for id := int64(0); id < 64; id++ {
		warm(b, c, id)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var seq atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		id := seq.Add(1)
		for pb.Next() {
			if _, err := c.Get(ctx, id%64); err != nil {
				b.Fatal(err)
			}
			id++
		}
	})
}

// BenchmarkGetRedisHit reads a value that is in Redis but not in process
// memory: a client without client-side caching, so one round trip each.
func BenchmarkGetRedisHit(b *testing.B) {
	ctx := context.Background()
	opt := shared.ClientOption()
	opt.DisableCache = true
	c := userCache(b, connectWith(b, opt), namespace(b), nil)
	if err := c.Set(ctx, 1, sampleUser(1)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Get(ctx, 1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetMiss reads a key absent from Redis each time: GET, the loader
// (which returns at once) and the write-back.
func BenchmarkGetMiss(b *testing.B) {
	ctx := context.Background()
	c := userCache(b, nil, namespace(b), nil)
	b.ReportAllocs()
	b.ResetTimer()
	var id int64
	for b.Loop() {
		id++
		if _, err := c.Get(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHandWrittenGetSet is the miss that an application writes itself
// with rueidis: GET, decode on a hit, else load, encode and SET with PX.
func BenchmarkHandWrittenGetSet(b *testing.B) {
	ctx := context.Background()
	client := connect(b, shared)
	rc := client.Rueidis()
	ns := namespace(b) + ":"
	b.ReportAllocs()
	b.ResetTimer()
	var id int64
	for b.Loop() {
		id++
		key := ns + strconv.FormatInt(id, 10)
		raw, err := rc.Do(ctx, rc.B().Get().Key(key).Build()).AsBytes()
		if err == nil {
			var u User
			if err := msgpack.Unmarshal(raw, &u); err != nil {
				b.Fatal(err)
			}
			continue
		}
		u := sampleUser(id)
		data, err := msgpack.Marshal(u)
		if err != nil {
			b.Fatal(err)
		}
		if err := rc.Do(ctx, rc.B().Set().Key(key).Value(string(data)).PxMilliseconds(300_000).Build()).Error(); err != nil {
			b.Fatal(err)
		}
	}
}

var _ = cache.NoExpiry

func hundredKeys() []int64 {
	keys := make([]int64, 100)
	for i := range keys {
		keys[i] = int64(i)
	}
	return keys
}

func BenchmarkGetMany100Local(b *testing.B) {
	ctx := context.Background()
	c := userCache(b, nil, namespace(b), nil)
	keys := hundredKeys()
	for _, k := range keys {
		warm(b, c, k)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if got, err := c.GetMany(ctx, keys); err != nil || len(got) != 100 {
			b.Fatal(len(got), err)
		}
	}
}

// BenchmarkGetManyInto100Local is BenchmarkGetMany100Local into the
// caller's slices instead of a map.
func BenchmarkGetManyInto100Local(b *testing.B) {
	ctx := context.Background()
	c := userCache(b, nil, namespace(b), nil)
	keys := hundredKeys()
	for _, k := range keys {
		warm(b, c, k)
	}
	vals, found := make([]User, len(keys)), make([]bool, len(keys))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := c.GetManyInto(ctx, keys, vals, found); err != nil || !found[99] {
			b.Fatal(err)
		}
	}
}

func BenchmarkGet100SequentialLocal(b *testing.B) {
	ctx := context.Background()
	c := userCache(b, nil, namespace(b), nil)
	keys := hundredKeys()
	for _, k := range keys {
		warm(b, c, k)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for _, k := range keys {
			if _, err := c.Get(ctx, k); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkGet100SequentialLocalIntoMap is the loop an application writes to
// get what GetMany returns: 100 Gets collected in a map.
func BenchmarkGet100SequentialLocalIntoMap(b *testing.B) {
	ctx := context.Background()
	c := userCache(b, nil, namespace(b), nil)
	keys := hundredKeys()
	for _, k := range keys {
		warm(b, c, k)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		out := make(map[int64]User, len(keys))
		for _, k := range keys {
			v, err := c.Get(ctx, k)
			if err != nil {
				b.Fatal(err)
			}
			out[k] = v
		}
	}
}

// BenchmarkGetMany100Redis reads 100 keys that are in Redis but not in
// process memory (client-side caching off): one pipelined round.
func BenchmarkGetMany100Redis(b *testing.B) {
	ctx := context.Background()
	c, keys := inRedisOnly(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if got, err := c.GetMany(ctx, keys); err != nil || len(got) != 100 {
			b.Fatal(len(got), err)
		}
	}
}

func BenchmarkGet100SequentialRedis(b *testing.B) {
	ctx := context.Background()
	c, keys := inRedisOnly(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for _, k := range keys {
			if _, err := c.Get(ctx, k); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// inRedisOnly returns a cache without client-side caching, and 100 keys it
// holds in Redis.
func inRedisOnly(b *testing.B) (*cache.Cache[int64, User], []int64) {
	opt := shared.ClientOption()
	opt.DisableCache = true
	c := userCache(b, connectWith(b, opt), namespace(b), nil)
	keys := hundredKeys()
	m := map[int64]User{}
	for _, k := range keys {
		m[k] = sampleUser(k)
	}
	if err := c.SetMany(context.Background(), m); err != nil {
		b.Fatal(err)
	}
	return c, keys
}

// BenchmarkGetMany100Miss reads 100 absent keys: one read round, one lease
// round, one batch-loader call, one write round.
func BenchmarkGetMany100Miss(b *testing.B) {
	ctx := context.Background()
	var calls atomic.Int64
	c, err := cache.New(connect(b, shared), cache.Options[int64, User]{
		Namespace:   namespace(b),
		BatchLoader: sampleUsers(&calls),
	})
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]int64, 100)
	var next int64
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for i := range keys {
			next++
			keys[i] = next
		}
		if got, err := c.GetMany(ctx, keys); err != nil || len(got) != 100 {
			b.Fatal(len(got), err)
		}
	}
	b.ReportMetric(float64(calls.Load())/float64(b.N), "loads/op")
}

// sampleUsers is a batch loader of sampleUser values, whose calls it counts.
func sampleUsers(calls *atomic.Int64) func(context.Context, []int64) (map[int64]User, error) {
	return func(_ context.Context, ids []int64) (map[int64]User, error) {
		calls.Add(1)
		out := make(map[int64]User, len(ids))
		for _, id := range ids {
			out[id] = sampleUser(id)
		}
		return out, nil
	}
}

// BenchmarkHandWrittenGet is the Redis hit an application writes itself with
// rueidis: GET and decode, one round trip.
func BenchmarkHandWrittenGet(b *testing.B) {
	ctx := context.Background()
	client := connect(b, shared)
	rc := client.Rueidis()
	key := namespace(b) + ":1"
	data, err := msgpack.Marshal(sampleUser(1))
	if err != nil {
		b.Fatal(err)
	}
	if err := rc.Do(ctx, rc.B().Set().Key(key).Value(string(data)).Build()).Error(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		raw, err := rc.Do(ctx, rc.B().Get().Key(key).Build()).AsBytes()
		if err != nil {
			b.Fatal(err)
		}
		var u User
		if err := msgpack.Unmarshal(raw, &u); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVisitAlternatives measures, on a key that holds a value, the
// commands that could make a read's one Redis visit (read, take the lease
// when missing, and track): PTTL, SET NX GET and PTTL pipelined, which the
// read path sends; the script it sent before (SET NX GET and PTTL in one
// EVALSHA); a MULTI/EXEC of those; with a plain GET and a plain SET NX GET
// (neither tracks after a lease) for scale.
func BenchmarkVisitAlternatives(b *testing.B) {
	ctx := context.Background()
	rc := connect(b, shared).Rueidis()
	key := namespace(b) + ":1"
	if err := rc.Do(ctx, rc.B().Set().Key(key).Value("a value of some thirty bytes...").Build()).Error(); err != nil {
		b.Fatal(err)
	}
	script := rueidis.NewLuaScript(`
local v = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'GET', 'PX', ARGV[2])
return {v, redis.call('PTTL', KEYS[1])}`)
	run := func(b *testing.B, do func() error) {
		b.ReportAllocs()
		for b.Loop() {
			if err := do(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("pttl-set-nx-get-pttl", func(b *testing.B) {
		run(b, func() error {
			res := rc.DoMulti(ctx,
				rc.B().Pttl().Key(key).Build(),
				rc.B().Set().Key(key).Value("lease").Nx().Get().PxMilliseconds(5000).Build(),
				rc.B().Pttl().Key(key).Build())
			return res[1].Error()
		})
	})
	b.Run("script", func(b *testing.B) {
		run(b, func() error {
			return script.Exec(ctx, rc, []string{key}, []string{"lease", "5000"}).Error()
		})
	})
	b.Run("multi-exec", func(b *testing.B) {
		run(b, func() error {
			res := rc.DoMulti(ctx,
				rc.B().Multi().Build(),
				rc.B().Set().Key(key).Value("lease").Nx().Get().PxMilliseconds(5000).Build(),
				rc.B().Pttl().Key(key).Build(),
				rc.B().Exec().Build())
			return res[3].Error()
		})
	})
	b.Run("get", func(b *testing.B) {
		run(b, func() error { return rc.Do(ctx, rc.B().Get().Key(key).Build()).Error() })
	})
	b.Run("set-nx-get", func(b *testing.B) {
		run(b, func() error {
			return rc.Do(ctx, rc.B().Set().Key(key).Value("lease").Nx().Get().PxMilliseconds(5000).Build()).Error()
		})
	})
}

// BenchmarkWriteForms is BenchmarkGetMany100Miss (and a single miss) with
// the write under the lease as the script and as the compare-and-set
// transaction (on a server that has it: run with REDIS_SERVER naming a
// Valkey 9), with the Redis CPU each miss costs, visit and write, per key.
func BenchmarkWriteForms(b *testing.B) {
	forms := []string{"script"} // the forms the server has
	if setIfEq, _ := cache.CompareAndSet(connect(b, shared)); setIfEq {
		forms = append(forms, "cas")
	}
	for _, keys := range []int{1, 100} {
		for _, form := range forms {
			b.Run(fmt.Sprintf("keys=%d/%s", keys, form), func(b *testing.B) {
				ctx := context.Background()
				client := connect(b, shared)
				if form == "script" {
					cache.NoCompareAndSet(client)
				}
				c, err := cache.New(client, cache.Options[int64, User]{
					Namespace:   namespace(b),
					BatchLoader: sampleUsers(new(atomic.Int64)),
				})
				if err != nil {
					b.Fatal(err)
				}
				ids := make([]int64, keys)
				var next int64
				cpu0 := redisCPU(b, shared)
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					for i := range ids {
						next++
						ids[i] = next
					}
					if got, err := c.GetMany(ctx, ids); err != nil || len(got) != keys {
						b.Fatal(len(got), err)
					}
				}
				b.StopTimer()
				if err := cache.AwaitWrites(ctx, c, ids...); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric((redisCPU(b, shared)-cpu0).Seconds()*1e6/float64(b.N*keys), "redis-µs/key")
			})
		}
	}
}

// redisCPU is the CPU time srv has used, user and system.
func redisCPU(b *testing.B, srv *redistest.Server) time.Duration {
	b.Helper()
	text, err := srv.Do(context.Background(), "INFO", "cpu")
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for line := range strings.Lines(text) {
		name, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if name == "used_cpu_user" || name == "used_cpu_sys" {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}
