package cache

import (
	"context"
	"sync"
)

// Loads that write nothing (loadDirect).
//
// A read loads without writing when Redis is unavailable (FailOpen), when
// Redis refused the key's lease (out of memory, an ACL), when the key's
// invalidation is pending (see pending.go), when another process's load
// held the lease past LeaseWait, or when the key holds bytes of a newer
// aside. Its flight is shared like any other; but while Redis is
// unavailable or the key pending, the process does not track the key, and
// no push would tell it of a change made while the load runs: a read that
// joined the flight after the load began could get a value loaded before
// an invalidation that returned before the read began. Such a load is
// blind: its flight is detached before the loader is called (reads from
// then on start a flight of their own), and the loads of one key run one
// after the other (the next waits for the one running), so that the reads
// that arrive during a load share one load after it instead of each
// loading alone.

// direct says why a load writes nothing.
type direct int

const (
	// directTracked: Redis tracks the key for this process (the visit read
	// it), and pushes a change of it, which forgets the flight.
	directTracked direct = iota
	// directFallback: Redis is unavailable; at most FallbackConcurrency
	// such loads run at once in the cache. Blind.
	directFallback
	// directPending: the key's invalidation is pending. Blind.
	directPending
)

// blindLoads orders the blind loads of each key: one at a time.
type blindLoads struct {
	mu      sync.Mutex
	running map[string]chan struct{} // closed when the key's load ends; guarded by mu
}

// begin waits until no blind load of keys[i], i in idx, runs, then marks
// them all running (all at once, so that two batches that share keys never
// wait for each other), and returns the channel end closes.
func (b *blindLoads) begin(ctx context.Context, keys []string, idx []int) (chan struct{}, error) {
	b.mu.Lock()
	for {
		var busy chan struct{}
		for _, i := range idx {
			if ch, ok := b.running[keys[i]]; ok {
				busy = ch
				break
			}
		}
		if busy == nil {
			break
		}
		b.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		b.mu.Lock()
	}
	if b.running == nil {
		b.running = make(map[string]chan struct{})
	}
	done := make(chan struct{})
	for _, i := range idx {
		b.running[keys[i]] = done
	}
	b.mu.Unlock()
	return done, nil
}

// end ends the loads begin marked.
func (b *blindLoads) end(keys []string, idx []int, done chan struct{}) {
	b.mu.Lock()
	for _, i := range idx {
		if b.running[keys[i]] == done {
			delete(b.running, keys[i])
		}
	}
	b.mu.Unlock()
	close(done)
}

// loadDirect loads the keys ks[i], i in idx, and answers them through finish
// without writing anything (see the top of this file); detach(i) detaches
// the flight of ks[i] (blind loads).
func (c *Cache[K, V]) loadDirect(ctx context.Context, ks []K, keys []string, idx []int, why direct, finish func(int, *entry[V], error), detach func(int)) {
	if why != directTracked {
		done, err := c.blind.begin(ctx, keys, idx)
		if err != nil {
			for _, i := range idx {
				finish(i, nil, err)
			}
			return
		}
		defer c.blind.end(keys, idx, done)
		for _, i := range idx {
			detach(i)
		}
	}
	if why == directFallback {
		select {
		case c.fallbackSlots <- struct{}{}:
		case <-ctx.Done():
			for _, i := range idx {
				finish(i, nil, ctx.Err())
			}
			return
		}
		defer func() { <-c.fallbackSlots }()
		c.stats.fallbacks.Add(uint64(len(idx)))
	}
	for j, l := range c.loadKeys(ctx, ks, keys, idx, false) {
		e, err := l.result()
		finish(idx[j], e, err)
	}
}
