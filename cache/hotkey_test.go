package cache_test

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/cache"
)

// TestHotKeyInvalidatedEvery10ms hammers one key from two clients while a
// writer invalidates it every 10 ms: each invalidation costs at most one load
// across both clients. ASIDE_SOAK=1 runs it for 10 s instead of 2 s.
func TestHotKeyInvalidatedEvery10ms(t *testing.T) {
	t.Parallel()
	duration := 2 * time.Second
	if os.Getenv("ASIDE_SOAK") != "" {
		duration = 10 * time.Second
	}
	ctx := context.Background()
	ns := namespace(t)
	src := newSource()
	src.set("hot", 0)
	a := versionCache(t, connect(t, shared), ns, src)
	b := versionCache(t, connect(t, shared), ns, src)

	stop := make(chan struct{})
	var reads atomic.Int64
	var wg sync.WaitGroup
	for _, c := range []*cache.Cache[string, int64]{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := c.Get(ctx, "hot"); err != nil {
					t.Error(err)
					return
				}
				reads.Add(1)
			}
		}()
	}
	invalidations := 0
	tick := time.NewTicker(10 * time.Millisecond)
	deadline := time.After(duration)
loop:
	for {
		select {
		case <-deadline:
			break loop
		case <-tick.C:
			src.set("hot", src.get("hot")+1)
			// On a busy machine a call may outlast RedisTimeout; the
			// application sends it again. Every attempt counts, since one
			// that timed out may have reached Redis all the same.
			for {
				invalidations++
				err := a.Invalidate(ctx, "hot")
				if !errors.Is(err, cache.ErrUnavailable) {
					require.NoError(t, err)
					break
				}
			}
		}
	}
	tick.Stop()
	close(stop)
	wg.Wait()

	loads := src.loads.Load()
	assert.LessOrEqual(t, loads, int64(invalidations+1), "at most one load per invalidation")
	assert.Eventually(t, func() bool {
		va, erra := a.Get(ctx, "hot")
		vb, errb := b.Get(ctx, "hot")
		return erra == nil && errb == nil && va == src.get("hot") && vb == src.get("hot")
	}, 10*time.Second, time.Millisecond, "both clients end on the last version")
	t.Logf("%v: %d invalidations, %d loads (%.2f per invalidation), %d reads, discarded fills a=%d b=%d",
		duration, invalidations, loads, float64(loads)/float64(invalidations), reads.Load(),
		a.Stats().DiscardedFills, b.Stats().DiscardedFills)
}
