package benchmarks

import (
	"context"
	"testing"
)

// batchSize is the number of keys of one batch read.
const batchSize = 100

// batchContenders are the contenders of scenario 4. rueidisaside and
// go-redis/cache have no batch call: their users read the keys one by one.
var batchContenders = []contender{asideLocal, rueidisDo, rueidisDoCache, rueidisAside, goRedisCache, goRedisCacheLFU, sturdy}

// BenchmarkBatchCached is scenario 4 with every key cached: each contender
// reads the same 100 keys again and again, served from wherever it keeps
// them once warm (process memory for aside, rueidis-DoCache, rueidisaside,
// go-redis-cache+LFU and sturdyc; Redis for rueidis and go-redis-cache).
func BenchmarkBatchCached(b *testing.B) {
	run(b, batchContenders, func(b *testing.B, c contender) {
		e, _ := loaders()
		cl := c.open(b, e)
		ids := make([]int64, batchSize)
		for i := range ids {
			ids[i] = int64(i)
		}
		ctx := context.Background()
		if _, err := cl.GetMany(ctx, ids); err != nil {
			b.Fatal(err)
		}
		warm(b, cl, ids...)
		b.ReportAllocs()
		for b.Loop() {
			n, err := cl.GetMany(ctx, ids)
			if err != nil {
				b.Fatal(err)
			}
			if n != batchSize {
				b.Fatalf("got %d values of %d", n, batchSize)
			}
		}
	})
}

// BenchmarkBatchMissing is scenario 4 with every key missing: each read is of
// 100 keys absent from memory and Redis, loaded by the batch loader where
// the contender has one, and written back.
func BenchmarkBatchMissing(b *testing.B) {
	run(b, batchContenders, func(b *testing.B, c contender) {
		e, _ := loaders()
		cl := c.open(b, e)
		ids := make([]int64, batchSize)
		var next int64
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			for i := range ids {
				next++
				ids[i] = next
			}
			n, err := cl.GetMany(ctx, ids)
			if err != nil {
				b.Fatal(err)
			}
			if n != batchSize {
				b.Fatalf("got %d values of %d", n, batchSize)
			}
		}
	})
}
