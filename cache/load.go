package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/redis/rueidis"

	"github.com/aside-go/aside/loader"
)

// heldLoad is a load this process runs for one key under the key's lease.
type heldLoad[V any] struct {
	lease []byte
	done  chan struct{} // closed once e and err are set
	e     *entry[V]
	err   error
}

// result is what the callers of the load get: a key the source does not have
// is an error wrapping ErrNotFound, not a hit of a not-found marker.
func (l loaded[V]) result() (*entry[V], error) {
	if l.e != nil && l.e.notFound {
		return nil, fmt.Errorf("cache: %s: %w", l.e.key, ErrNotFound)
	}
	return l.e, l.err
}

// heldBy returns this process's load of key under exactly lease, if one is
// running.
func (c *Cache[K, V]) heldBy(key string, lease []byte) *heldLoad[V] {
	if v, ok := c.held.Load(key); ok {
		if h := v.(*heldLoad[V]); bytes.Equal(h.lease, lease) {
			return h
		}
	}
	return nil
}

// loaded is the result of loading one key: the entry to return (a value or a
// not-found marker) or an error, and what to write for it (nil data: delete
// the lease).
type loaded[V any] struct {
	e    *entry[V]
	err  error
	data []byte
	ttl  time.Duration
}

// loadHeld loads the keys ks[i], i in idx, whose leases (st[i].lease) this
// call took, in one loader call on a background goroutine detached from the
// caller's cancellation — the reads that joined those keys must not fail
// because this one went away, and the leases must be written or released
// whatever happens — then writes each result under its lease and finishes
// the keys' flights (fls[i], when fls is not nil). It returns one heldLoad
// per key, to wait on.
func (c *Cache[K, V]) loadHeld(ctx context.Context, ks []K, keys []string, idx []int, st []keyState, fls []*loader.Flight[*entry[V]]) []*heldLoad[V] {
	c.stats.misses.Add(uint64(len(idx)))
	hs := make([]*heldLoad[V], len(idx))
	leases := make([][]byte, len(idx))
	for j, i := range idx {
		leases[j] = st[i].lease
		hs[j] = &heldLoad[V]{lease: leases[j], done: make(chan struct{})}
		c.held.Store(keys[i], hs[j])
	}
	run := func() {
		lctx, cancel := c.detached(ctx, 0)
		defer cancel()
		var ls []loaded[V]
		defer func() {
			for j, i := range idx {
				h := hs[j]
				if ls != nil {
					h.e, h.err = ls[j].result()
				} else {
					h.err = fmt.Errorf("cache: load %s: did not complete", keys[i])
					c.held.CompareAndDelete(keys[i], h)
				}
				close(h.done)
				if fls != nil {
					fls[i].Finish(h.e, h.err)
				}
			}
		}()
		res := c.loadKeys(lctx, ks, keys, idx, true)
		// The flights finish after the writes, so that whoever reads a
		// key once its flight finished finds the value (or no lease) in
		// Redis and its copy in memory — but they wait for the writes
		// only as long as the time budget: a slow Redis must not hold
		// the callers, and must not cut the writes short either, or the
		// leases would stay for LeaseTTL and every process would wait.
		// The writes go on, bounded by LeaseTTL (past it the leases are
		// gone anyway); the held entries stay until they end, so a read
		// that meets a lease still there waits for this load's result.
		written := make(chan struct{})
		write := func() {
			defer close(written)
			wctx, cancel := c.detached(ctx, max(c.leaseTTL, c.budgetFor(len(idx))))
			defer cancel()
			c.commit(wctx, ks, keys, idx, leases, res)
			for j, i := range idx {
				c.held.CompareAndDelete(keys[i], hs[j])
			}
		}
		if !c.spawn(write) {
			write()
		}
		t := time.NewTimer(c.budgetFor(len(idx)))
		select {
		case <-written:
		case <-t.C:
		}
		t.Stop()
		ls = res
	}
	if !c.spawn(run) {
		run() // the client is closing: no background work
	}
	return hs
}

// loadDirect loads the keys ks[i], i in idx, and answers them through finish
// without writing anything: Redis is unavailable (fallback is true: at most
// FallbackConcurrency such loads run at once in the cache), or a key held
// bytes of a newer aside, or another process's load took longer than
// LeaseWait.
func (c *Cache[K, V]) loadDirect(ctx context.Context, ks []K, keys []string, idx []int, fallback bool, finish func(int, *entry[V], error)) {
	if fallback {
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

// loadKeys calls the loader for the keys ks[i], i in idx — Loader itself for
// one key, BatchLoader (or Loader's batch adapter) for several — and returns
// each key's result, encoded for writing when encode is set. A panic in the
// loader fails every key with an error wrapping loader.ErrPanic.
func (c *Cache[K, V]) loadKeys(ctx context.Context, ks []K, keys []string, idx []int, encode bool) []loaded[V] {
	c.stats.loads.Add(1)
	out := make([]loaded[V], len(idx))
	var found map[K]V
	var err error
	var perKey map[K]error
	if len(idx) == 1 {
		k := ks[idx[0]]
		v, lerr := c.safeLoad(ctx, k)
		switch {
		case lerr == nil:
			found = map[K]V{k: v}
		case errors.Is(lerr, ErrNotFound):
		default:
			perKey = map[K]error{k: lerr}
		}
	} else {
		found, err = c.safeBatch(ctx, pick(ks, idx))
		if err != nil {
			perKey = loader.KeyErrors[K](err)
		}
	}
	for j, i := range idx {
		k, key := ks[i], keys[i]
		if v, ok := found[k]; ok {
			e := &entry[V]{v: v, key: key}
			out[j].e = e
			if encode {
				eb := c.encodeValue(key, v)
				if eb.err != nil {
					c.stats.writeErrors.Add(1)
					continue
				}
				out[j].data, out[j].ttl, e.softAt, e.size = eb.data, eb.ttl, eb.softAt, uint32(len(eb.data))
			}
			continue
		}
		kerr := perKey[k]
		if kerr == nil && perKey == nil {
			kerr = err // an error that names no key concerns them all
		}
		if kerr != nil && !errors.Is(kerr, ErrNotFound) {
			c.stats.loadErrors.Add(1)
			out[j].err = fmt.Errorf("cache: load %s: %w", key, kerr)
			continue
		}
		out[j].e = &entry[V]{key: key, notFound: true}
		if encode {
			out[j].data, out[j].ttl = c.notFoundBytes(key)
			out[j].e.size = uint32(len(out[j].data))
		}
	}
	return out
}

// commit writes each result ls[j] of key keys[idx[j]] in place of its lease
// (leases[j]), or deletes the lease when there is nothing to write, in one
// pipeline, each only if the key still holds the lease: an invalidation
// during the load deleted it, and the value, read before that invalidation,
// must not be cached. A value written is kept in process memory (see
// Client.expectEcho for why Redis' push of this very write does not drop it).
//
// Writes that find Redis unavailable (a connection dropped, or Redis said it
// cannot serve now) are sent again until wctx ends: left alone, their leases
// would make every process wait LeaseTTL for a value that was loaded. Sending
// one again is safe: it still writes only in place of the lease.
func (c *Cache[K, V]) commit(wctx context.Context, ks []K, keys []string, idx []int, leases [][]byte, ls []loaded[V]) {
	todo := make([]int, len(idx))
	for j := range todo {
		todo[j] = j
	}
	retry := backoff{next: writeRetryMin, max: writeRetryMax}
	for {
		todo = c.commitOnce(wctx, ks, keys, idx, leases, ls, todo)
		if len(todo) == 0 || !retry.wait(wctx) {
			break
		}
	}
	for _, j := range todo {
		c.stats.writeErrors.Add(1)
		c.client.wrote(keys[idx[j]])
	}
}

// commitOnce sends the writes of commit at positions todo and returns those
// that found Redis unavailable, to be sent again.
func (c *Cache[K, V]) commitOnce(wctx context.Context, ks []K, keys []string, idx []int, leases [][]byte, ls []loaded[V], todo []int) (again []int) {
	execs := make([]rueidis.LuaExec, len(todo))
	snaps := make([]uint64, len(todo))
	keep := make([]bool, len(todo))
	for t, j := range todo {
		i := idx[j]
		if c.local.keeps() && c.tracks() && ls[j].data != nil {
			keep[t] = true
			c.client.expectEcho(keys[i])
			snaps[t] = c.local.snapshot(keys[i])
		}
		execs[t] = c.underLease(keys[i], leases[j], ls[j].data, ls[j].ttl)
	}
	var results []rueidis.RedisResult
	rc, err := c.redis()
	if err == nil {
		results = c.evalUnderLease(wctx, rc, execs)
	}
	for t, j := range todo {
		i, l := idx[j], ls[j]
		var wrote bool
		var pttl int64
		if results != nil {
			wrote, pttl, err = writeReply(results[t])
		}
		if err != nil && wctx.Err() == nil && retryable(err) {
			if keep[t] {
				c.client.cancelEcho(keys[i])
			}
			again = append(again, j)
			continue
		}
		switch {
		case err != nil:
			c.stats.writeErrors.Add(1)
		case !wrote && l.data != nil:
			c.stats.discardedFills.Add(1)
		}
		if !keep[t] {
			c.client.wrote(keys[i])
			continue
		}
		if err != nil || !wrote {
			c.client.cancelEcho(keys[i])
			c.client.wrote(keys[i])
			continue
		}
		c.client.wroteBy(keys[i], c)
		c.flights.Forget(keys[i])
		c.expireIn(l.e, pttl)
		c.local.storeWritten(ks[i], l.e, snaps[t])
	}
	return again
}

// safeLoad calls the loader with a panic turned into an error wrapping
// loader.ErrPanic, so that whoever holds a lease for the load releases it
// and the load's waiters get an answer.
func (c *Cache[K, V]) safeLoad(ctx context.Context, k K) (v V, err error) {
	defer func() {
		if r := recover(); r != nil {
			var zero V
			v, err = zero, &loader.PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return c.load(ctx, k)
}

// safeBatch is the batch loader with a panic turned into an error for every
// key (wrapping loader.ErrPanic).
func (c *Cache[K, V]) safeBatch(ctx context.Context, ks []K) (m map[K]V, err error) {
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, &loader.PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return c.batch(ctx, ks)
}

// releaseLater deletes, in the background, the leases (st[i].lease) of keys
// keys[i], i in idx, whose visit may or may not have reached Redis (its reply
// was lost: the caller's context ended, or the connection broke). Left alone,
// such a lease would make every process wait LeaseTTL for a load that never
// comes; so releases that find Redis unavailable are sent again, as commit's
// writes are, until the lease would have expired anyway.
func (c *Cache[K, V]) releaseLater(ctx context.Context, keys []string, idx []int, st []keyState) {
	todo := make([]int, len(idx))
	copy(todo, idx)
	release := func() {
		rctx, cancel := c.detached(ctx, c.leaseTTL)
		defer cancel()
		retry := backoff{next: writeRetryMin, max: writeRetryMax}
		for {
			todo = c.releaseOnce(rctx, keys, st, todo)
			if len(todo) == 0 || !retry.wait(rctx) {
				return
			}
		}
	}
	if !c.spawn(release) {
		release()
	}
}

// releaseOnce sends the releases of releaseLater for keys[i], i in todo,
// each within the time budget, and returns those that found Redis
// unavailable.
func (c *Cache[K, V]) releaseOnce(ctx context.Context, keys []string, st []keyState, todo []int) (again []int) {
	rc, err := c.redis()
	if err != nil {
		return todo
	}
	execs := make([]rueidis.LuaExec, len(todo))
	for j, i := range todo {
		execs[j] = c.underLease(keys[i], st[i].lease, nil, 0)
	}
	bctx, cancel := context.WithTimeout(ctx, c.budgetFor(len(execs)))
	defer cancel()
	for j, res := range c.evalUnderLease(bctx, rc, execs) {
		deleted, _, err := writeReply(res)
		switch {
		case err != nil && ctx.Err() == nil && (retryable(err) || bctx.Err() != nil):
			again = append(again, todo[j])
		case err == nil && deleted:
			// Only a lease deleted is a write; a release that did not
			// happen changed nothing (and the copies a stash keeps for
			// an outage must not go for it).
			c.client.wrote(keys[todo[j]])
		}
	}
	return again
}
