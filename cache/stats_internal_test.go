package cache

import (
	"sync"
	"testing"
	"time"
)

// TestShardedCounterSums adds from many goroutines at once, each with a
// stack of its own (some grown, so moved, mid-way): the sum is exact, and
// more than one shard was written.
func TestShardedCounterSums(t *testing.T) {
	var c shardedCounter
	const goroutines, adds = 64, 1000
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range adds {
				if g%2 == 0 && i == adds/2 {
					growStack(64)
				}
				c.Add(uint64(g%3 + 1))
			}
		})
	}
	wg.Wait()
	var want uint64
	for g := range goroutines {
		want += uint64(g%3+1) * adds
	}
	if got := c.Load(); got != want {
		t.Fatalf("Load() = %d, want %d", got, want)
	}
	used := 0
	for i := range c.shards {
		if c.shards[i].n.Load() != 0 {
			used++
		}
	}
	if used < 2 {
		t.Fatalf("%d goroutines wrote %d shard(s)", goroutines, used)
	}
}

// growStack recurses with a large frame, so that the runtime grows (and
// moves) the calling goroutine's stack.
func growStack(depth int) byte {
	var pad [1024]byte
	pad[depth%len(pad)] = byte(depth)
	if depth == 0 {
		return pad[0]
	}
	return growStack(depth-1) + pad[depth%len(pad)]
}

// TestBudgetGrowsWithTheBytesSent: a write's budget is RedisTimeout per 100
// commands plus 1ms per 64 KiB sent.
func TestBudgetGrowsWithTheBytesSent(t *testing.T) {
	c := &Cache[string, string]{redisTimeout: 250 * time.Millisecond}
	if got := c.budgetForBytes(1, 100); got != 250*time.Millisecond {
		t.Errorf("a small write: %v", got)
	}
	if got, want := c.budgetForBytes(1, 100<<20), 250*time.Millisecond+1600*time.Millisecond; got != want {
		t.Errorf("100 MiB: %v, want %v", got, want)
	}
}
