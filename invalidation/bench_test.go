package invalidation_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/aside-go/aside/invalidation"
)

// BenchmarkPattern100k removes 100k keys with one Pattern per iteration,
// with the default options. The keys are written again, outside the timer,
// before each iteration.
func BenchmarkPattern100k(b *testing.B) {
	for _, top := range topologies() {
		b.Run(top.name, func(b *testing.B) {
			benchPattern(b, top.start(b), 100_000, invalidation.Options{})
		})
	}
}

// BenchmarkPatternOptions compares SCAN COUNT hints and UNLINK batch sizes
// on 100k keys.
func BenchmarkPatternOptions(b *testing.B) {
	for _, top := range topologies() {
		b.Run(top.name, func(b *testing.B) {
			d := top.start(b)
			for _, count := range []int{100, 1000, 5000} {
				for _, batch := range []int{100, 500, 2000} {
					name := "count=" + strconv.Itoa(count) + "/batch=" + strconv.Itoa(batch)
					b.Run(name, func(b *testing.B) {
						benchPattern(b, d, 100_000, invalidation.Options{Count: count, Batch: batch})
					})
				}
			}
		})
	}
}

func benchPattern(b *testing.B, d deployment, n int, opts invalidation.Options) {
	client := connect(b, d)
	ctx := context.Background()
	ns := uniquePrefix("bench")
	ks := keys(ns, n)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		fill(b, ctx, client, ks)
		b.StartTimer()
		removed, err := invalidation.Pattern(ctx, client, ns+"*", opts)
		if err != nil {
			b.Fatal(err)
		}
		if removed != int64(n) {
			b.Fatalf("removed %d keys, want %d", removed, n)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "keys/s")
}
