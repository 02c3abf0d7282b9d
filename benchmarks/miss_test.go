package benchmarks

import (
	"context"
	"testing"
)

// BenchmarkMiss is scenario 3: every read is of a key absent from process
// memory and from Redis, and the loader returns at once. rueidis is the
// hand-written baseline of the target (GET, then SET PX); rueidis-DoCache
// does the GET through client-side caching, as aside does. sturdyc writes to
// Redis in a goroutine of its own, after its Get has returned.
func BenchmarkMiss(b *testing.B) {
	run(b, []contender{asideLocal, rueidisDo, rueidisDoCache, rueidisAside, goRedisCache, goRedisCacheLFU, sturdy}, func(b *testing.B, c contender) {
		e, calls := loaders()
		cl := c.open(b, e)
		ctx := context.Background()
		var id int64
		b.ReportAllocs()
		for b.Loop() {
			id++
			if _, err := cl.Get(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
		if got := calls.Load(); got != id {
			b.Fatalf("%d loader calls for %d misses", got, id)
		}
	})
}
