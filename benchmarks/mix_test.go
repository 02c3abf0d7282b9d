package benchmarks

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"
)

const (
	// mixRecords is the number of records, read with Zipf-distributed ids.
	mixRecords = 100_000
	// mixZipfS is the Zipf exponent (math/rand needs it above 1): about a
	// third of the reads go to the hundred hottest records.
	mixZipfS = 1.1
	// mixUpdatePercent of the operations update a record and invalidate
	// it; the others read.
	mixUpdatePercent = 5
	// mixInstances is the number of client instances sharing the work, as
	// processes of one service would.
	mixInstances = 4
	// mixParallelism is the number of goroutines per GOMAXPROCS.
	mixParallelism = 16
	// mixLoad is how long the loader takes after reading the record: a
	// query. A load that read the record before an update may finish after
	// it, which is how a cache can be handed an old value to store.
	mixLoad = time.Millisecond
	// invalidationDelay is how long after an update completed a read may
	// still return the old value without counting as stale: the time Redis
	// takes to push the invalidation to every instance, which is well
	// under a millisecond on loopback, with room for a loaded machine.
	invalidationDelay = 10 * time.Millisecond
)

// BenchmarkMix is scenario 6: mixInstances instances read Zipf-distributed
// records (95%) and update them (5%: the source changes, then the contender
// invalidates the record as its documentation says), from mixParallelism ×
// GOMAXPROCS goroutines, starting cold. It reports the throughput (ops/s),
// the share of reads served without a loader call (hit-%), the stale reads
// (see Stale and invalidationDelay) and how old the oldest of them was
// (max-stale-ms). Run it with a fixed count (-benchtime=200000x) so that
// every contender does the same work from the same cold start.
func BenchmarkMix(b *testing.B) {
	contenders := []contender{asideLocal, rueidisDoCache, rueidisAside, goRedisCache, goRedisCacheLFU, sturdy}
	run(b, contenders, benchMix)
}

func benchMix(b *testing.B, c contender) {
	src := NewSource(mixRecords)
	var loads atomic.Int64
	e, _ := loaders()
	e.load = func(_ context.Context, id int64) (User, error) {
		loads.Add(1)
		u := src.Load(id)
		time.Sleep(mixLoad)
		return u, nil
	}
	cls := c.instances(b, e, mixInstances)

	var (
		reads, stale, maxAge atomic.Int64
		goroutine            atomic.Uint64
		failed               atomic.Pointer[error]
	)
	fail := func(err error) { failed.CompareAndSwap(nil, &err) }
	ctx := context.Background()
	b.SetParallelism(mixParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		g := goroutine.Add(1)
		cl := cls[g%mixInstances]
		rng := rand.New(rand.NewPCG(g, 0x5eed))
		zipf := rand.NewZipf(rng, mixZipfS, 1, mixRecords-1)
		var myReads, myStale, myMaxAge int64
		defer func() {
			reads.Add(myReads)
			stale.Add(myStale)
			for {
				m := maxAge.Load()
				if myMaxAge <= m || maxAge.CompareAndSwap(m, myMaxAge) {
					break
				}
			}
		}()
		for pb.Next() {
			id := int64(zipf.Uint64())
			if rng.IntN(100) < mixUpdatePercent {
				v := src.Update(id)
				if err := cl.Invalidate(ctx, id); err != nil {
					fail(err)
					return
				}
				src.Complete(id, v, src.Now())
				continue
			}
			before := src.Completed(id)
			start := src.Now()
			u, err := cl.Get(ctx, id)
			if err == nil && u.ID != id {
				err = fmt.Errorf("read %d, got the value of %d", id, u.ID)
			}
			if err != nil {
				fail(err)
				return
			}
			myReads++
			if age, ok := Stale(u, before, start, invalidationDelay); ok {
				myStale++
				myMaxAge = max(myMaxAge, int64(age))
			}
		}
	})
	b.StopTimer()
	if p := failed.Load(); p != nil {
		b.Fatal(*p)
	}
	hit := 0.0
	if r := reads.Load(); r > 0 {
		hit = 100 * (1 - float64(loads.Load())/float64(r))
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	b.ReportMetric(hit, "hit-%")
	b.ReportMetric(float64(stale.Load()), "stale-reads")
	b.ReportMetric(float64(maxAge.Load())/float64(time.Millisecond), "max-stale-ms")
}
