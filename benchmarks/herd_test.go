package benchmarks

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	// herdLoad is how long the loader of the herd takes: a slow query.
	herdLoad = 20 * time.Millisecond
	// herdGoroutines is how many goroutines of each instance read the cold
	// key at once.
	herdGoroutines = 8
	// herdTimeout bounds one herd, so that a contender that never answers
	// fails the benchmark instead of hanging it.
	herdTimeout = 30 * time.Second
)

// herdInstances are the numbers of client instances (processes, as far as
// the cache can tell) of the herd.
var herdInstances = []int{1, 4, 16}

// BenchmarkHerd is scenario 5: N instances × herdGoroutines goroutines read
// one cold key at the same moment, and the loader takes herdLoad. Each op is
// one herd on a new key; ns/op is its wall time, loads/op the loader calls
// it cost (1 is the target), max-loads the most any one herd cost.
func BenchmarkHerd(b *testing.B) {
	contenders := []contender{asideLocal, rueidisDo, rueidisAside, goRedisCache, goRedisCacheLFU, sturdy}
	for _, n := range herdInstances {
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			run(b, contenders, func(b *testing.B, c contender) {
				benchHerd(b, c, n)
			})
		})
	}
}

func benchHerd(b *testing.B, c contender, instances int) {
	var calls atomic.Int64
	e, _ := loaders()
	e.load = func(ctx context.Context, id int64) (User, error) {
		calls.Add(1)
		t := time.NewTimer(herdLoad)
		defer t.Stop()
		select {
		case <-t.C:
			return NewUser(id, 0), nil
		case <-ctx.Done():
			return User{}, ctx.Err()
		}
	}
	cls := c.instances(b, e, instances)
	// One read per instance of an unrelated key first, so that connections
	// and any per-client state are set up before the first herd.
	for _, cl := range cls {
		if _, err := cl.Get(context.Background(), -1); err != nil {
			b.Fatal(err)
		}
	}
	calls.Store(0)

	var id, maxLoads int64
	var failed atomic.Pointer[error]
	b.ReportAllocs()
	for b.Loop() {
		id++
		before := calls.Load()
		ctx, cancel := context.WithTimeout(context.Background(), herdTimeout)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, cl := range cls {
			for range herdGoroutines {
				wg.Go(func() {
					<-start
					u, err := cl.Get(ctx, id)
					if err == nil && u.ID != id {
						err = fmt.Errorf("read %d, got the value of %d", id, u.ID)
					}
					if err != nil {
						failed.CompareAndSwap(nil, &err)
					}
				})
			}
		}
		close(start)
		wg.Wait()
		cancel()
		if p := failed.Load(); p != nil {
			b.Fatal(*p)
		}
		maxLoads = max(maxLoads, calls.Load()-before)
	}
	b.ReportMetric(float64(calls.Load())/float64(id), "loads/op")
	b.ReportMetric(float64(maxLoads), "max-loads")
}
