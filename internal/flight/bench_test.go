package flight_test

import (
	"context"
	"testing"

	"github.com/aside-go/aside/internal/flight"
)

func BenchmarkGroupDo(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var g flight.Group[int]
	fn := func(context.Context) (int, error) { return 1, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := g.Do(ctx, "k", fn); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGroupDoParallel(b *testing.B) {
	var g flight.Group[int]
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
