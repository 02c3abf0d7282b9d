package benchmarks

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
)

// loaders returns a loader and a batch loader that return at once, and the
// counter of their calls.
func loaders() (env, *atomic.Int64) {
	calls := new(atomic.Int64)
	return env{
		ns: namespace(),
		load: func(_ context.Context, id int64) (User, error) {
			calls.Add(1)
			return NewUser(id, 0), nil
		},
		loadMany: func(_ context.Context, ids []int64) (map[int64]User, error) {
			calls.Add(1)
			m := make(map[int64]User, len(ids))
			for _, id := range ids {
				m[id] = NewUser(id, 0)
			}
			return m, nil
		},
	}, calls
}

// run runs bench once per contender, as sub-benchmarks named lib=<name>, on
// an empty Redis.
func run(b *testing.B, contenders []contender, bench func(b *testing.B, c contender)) {
	for _, c := range contenders {
		b.Run("lib="+c.name, func(b *testing.B) {
			flush(b)
			bench(b, c)
		})
	}
}

// warm reads ids through cl until each is served from where a hit is served:
// process memory for the contenders that keep copies there. aside keeps a
// copy only once Redis confirmed it tracks the key, that is once the
// invalidation of its own write-back has arrived, so it is read until its
// stats show the copies, a bounded number of times.
func warm(b *testing.B, cl client, ids ...int64) {
	b.Helper()
	ctx := context.Background()
	for range 3 {
		for _, id := range ids {
			if _, err := cl.Get(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
	}
	ready, ok := cl.(interface{ localReady(n int) bool })
	if !ok {
		return
	}
	for range 10_000 {
		if ready.localReady(len(ids)) {
			return
		}
		runtime.Gosched()
		for _, id := range ids {
			if _, err := cl.Get(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Fatalf("fewer than %d copies in process memory after warming", len(ids))
}

// BenchmarkHitLocal is scenario 1: the value is in process memory, for the
// contenders that keep one there (rueidis-DoCache keeps the reply in rueidis'
// client-side cache and decodes it on each read).
func BenchmarkHitLocal(b *testing.B) {
	run(b, []contender{asideLocal, rueidisDoCache, rueidisAside, goRedisCacheLFU, sturdy}, func(b *testing.B, c contender) {
		e, _ := loaders()
		// Another instance (another process) puts the value in Redis, so
		// that the one measured has only ever read it.
		warm(b, c.open(b, e), 1)
		cl := c.open(b, e)
		ctx := context.Background()
		if _, err := cl.Get(ctx, 1); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cl.Get(ctx, 1); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// parallelKeys is how many keys the parallel hit benchmark spreads its reads
// over.
const parallelKeys = 64

// BenchmarkHitLocalParallel is scenario 1 from GOMAXPROCS goroutines.
func BenchmarkHitLocalParallel(b *testing.B) {
	run(b, []contender{asideLocal, rueidisDoCache, rueidisAside, goRedisCacheLFU, sturdy}, func(b *testing.B, c contender) {
		e, _ := loaders()
		cl := c.open(b, e)
		ids := make([]int64, parallelKeys)
		for i := range ids {
			ids[i] = int64(i)
		}
		warm(b, cl, ids...)
		ctx := context.Background()
		var seq atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			id := seq.Add(1)
			for pb.Next() {
				if _, err := cl.Get(ctx, id%parallelKeys); err != nil {
					b.Error(err)
					return
				}
				id++
			}
		})
	})
}

// BenchmarkHitRedis is scenario 2: the value is in Redis and nowhere else,
// because the contender keeps no copy (rueidis with Do, go-redis/cache
// without its TinyLFU) or its client does no client-side caching (aside,
// rueidisaside). Another instance wrote it, as another process would have.
// sturdyc always keeps its copy in memory, so it is absent.
func BenchmarkHitRedis(b *testing.B) {
	run(b, []contender{asideRedis, rueidisDo, rueidisAsideRedis, goRedisCache}, func(b *testing.B, c contender) {
		e, _ := loaders()
		warm(b, c.open(b, e), 1)
		cl := c.open(b, e)
		ctx := context.Background()
		if _, err := cl.Get(ctx, 1); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cl.Get(ctx, 1); err != nil {
				b.Fatal(err)
			}
		}
	})
}
