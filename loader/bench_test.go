package loader_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/aside-go/aside/loader"
)

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
