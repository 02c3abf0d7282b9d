package cache

import (
	"context"
	"errors"
	"fmt"
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
	// directBlind: the key's invalidation is pending, or Redis refused its
	// lease while it held nothing (a missing key pushes nothing when
	// another process deletes it). Blind.
	directBlind
)

// blindLoads orders the blind loads of each key: one at a time.
type blindLoads[K comparable, V any] struct {
	mu      sync.Mutex
	running map[string]chan struct{} // closed when the key's load ends; guarded by mu
}

// begin waits until no blind load of the keys of fs runs, then marks them
// all running (all at once, so that two batches that share keys never wait
// for each other), and returns the channel end closes.
func (b *blindLoads[K, V]) begin(ctx context.Context, fs []*fetch[K, V]) (chan struct{}, error) {
	b.mu.Lock()
	for {
		var busy chan struct{}
		for _, f := range fs {
			if ch, ok := b.running[f.key]; ok {
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
	for _, f := range fs {
		b.running[f.key] = done
	}
	b.mu.Unlock()
	return done, nil
}

// end ends the loads begin marked.
func (b *blindLoads[K, V]) end(fs []*fetch[K, V], done chan struct{}) {
	b.mu.Lock()
	for _, f := range fs {
		if b.running[f.key] == done {
			delete(b.running, f.key)
		}
	}
	b.mu.Unlock()
	close(done)
}

// loadDirect loads the keys of fs, and answers them, without writing
// anything (see the top of this file).
func (c *Cache[K, V]) loadDirect(ctx context.Context, fs []*fetch[K, V], why direct) {
	if why != directTracked {
		done, err := c.blind.begin(ctx, fs)
		if err != nil {
			c.finishAll(ctx, fs, err)
			return
		}
		defer c.blind.end(fs, done)
		for _, f := range fs {
			f.detach()
		}
	}
	if why == directFallback {
		select {
		case c.fallbackSlots <- struct{}{}:
		case <-ctx.Done():
			c.finishAll(ctx, fs, ctx.Err())
			return
		}
		defer func() { <-c.fallbackSlots }()
		c.stats.fallbacks.Add(uint64(len(fs)))
	}
	refs := make([]keyRef[K], len(fs))
	for j, f := range fs {
		refs[j] = f.keyRef
	}
	for j, l := range c.loadKeys(ctx, refs, false, 0) {
		e, err := l.result()
		c.finish(ctx, fs[j], e, err)
	}
}

// redisDown answers the fetches fs when Redis is unavailable (err says how):
// the loader's values, written nowhere, when the policy is FailOpen; the
// error otherwise. Copies OutageStaleness lets it serve go first.
func (c *Cache[K, V]) redisDown(ctx context.Context, fs []*fetch[K, V], err error) {
	if !errors.Is(err, errCircuitOpen) {
		c.stats.redisErrors.Add(uint64(len(fs)))
	}
	if c.outage > 0 {
		rest := fs[:0:0]
		for _, f := range fs {
			if e := c.outageCopy(f.k); e != nil {
				c.finish(ctx, f, e, nil)
				continue
			}
			rest = append(rest, f)
		}
		if fs = rest; len(fs) == 0 {
			return
		}
	}
	if c.onDown == FailFast || c.load == nil || errors.Is(err, ErrClosed) {
		for _, f := range fs {
			c.finish(ctx, f, nil, err)
		}
		return
	}
	c.loadDirect(ctx, fs, directFallback)
}

// skipPending answers the fetches of fs whose invalidation is pending (see
// pending.go) from the loader, without reading or writing Redis, and
// returns the others.
func (c *Cache[K, V]) skipPending(ctx context.Context, fs []*fetch[K, V]) []*fetch[K, V] {
	if c.client.pending.len() == 0 {
		return fs
	}
	var pend []*fetch[K, V]
	rest := fs[:0:0]
	for _, f := range fs {
		if c.client.pending.has(f.key) {
			pend = append(pend, f)
		} else {
			rest = append(rest, f)
		}
	}
	if len(pend) == 0 {
		return fs
	}
	if c.load == nil {
		for _, f := range pend {
			c.finish(ctx, f, nil, fmt.Errorf("%w (invalidated, and no loader)", ErrNotFound))
		}
		return rest
	}
	c.loadDirect(ctx, pend, directBlind)
	return rest
}
