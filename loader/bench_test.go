package loader_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/aside-go/aside/loader"
)

func BenchmarkGroupDo(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var g loader.Group[int]
	fn := func(context.Context) (int, error) { return 1, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := g.Do(ctx, "k", fn); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGroupDoParallel(b *testing.B) {
	var g loader.Group[int]
	fn := func(context.Context) (int, error) { return 1, nil }
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if _, _, err := g.Do(ctx, "k", fn); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkBatch(b *testing.B) {
	ks := keys(100)
	load := loader.Func[int, string](func(_ context.Context, k int) (string, error) {
		return strconv.Itoa(k), nil
	}).Batch(0)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := load(ctx, ks); err != nil {
			b.Fatal(err)
		}
	}
}
