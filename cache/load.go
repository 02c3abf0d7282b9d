package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/aside-go/aside/loader"
)

// heldLoad is a load this process runs for one key under the key's lease.
// The loads of one loader call share their channels, which they reach
// together.
type heldLoad[V any] struct {
	lease   []byte
	done    chan struct{} // closed once e and err are set
	written chan struct{} // closed once the write under the lease ended
	e       *entry[V]
	err     error
	// prev is the load of the key that this one replaced in Cache.held (its
	// lease was gone, and its write may still be running).
	prev atomic.Pointer[heldLoad[V]]
}

// running returns the first of h and the loads it replaced whose write has
// not ended, or nil.
func (h *heldLoad[V]) running() *heldLoad[V] {
	for ; h != nil; h = h.prev.Load() {
		select {
		case <-h.written:
		default:
			return h
		}
	}
	return nil
}

// failed reports whether the load has ended with an error other than the
// key's absence from the source.
func (h *heldLoad[V]) failed() bool {
	select {
	case <-h.done:
		return h.err != nil && !errors.Is(h.err, ErrNotFound)
	default:
		return false
	}
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
// call took, in one loader call detached from the caller's cancellation —
// the reads that joined those keys must not fail because this one went away,
// and the leases must be written or released whatever happens. The loader
// runs on a background goroutine, or on the caller's when its context can
// never end (the caller could not have left earlier anyway). It finishes the
// keys' flights (fls[i], when fls is not nil) as soon as the loader
// returned, then writes each result under its lease on a background
// goroutine. It returns one heldLoad per key, to wait on.
//
// The callers do not wait for the writes: a miss costs the caller one round
// trip and the loader. What the writes owe to the rest of the process, the
// held entries give until the writes end: a read that visits Redis and
// meets the lease of this load is answered with its result, and the
// operations that read Redis's state of a key (TTL, Exists, Expire, ...)
// first wait for its write (awaitWrites). Other processes meet the lease and
// wait for the write's invalidation, as they always do.
func (c *Cache[K, V]) loadHeld(ctx context.Context, ks []K, keys []string, idx []int, st []keyState, fls []*loader.Flight[*entry[V]]) []*heldLoad[V] {
	c.stats.misses.Add(uint64(len(idx)))
	r := &heldRun[K, V]{c: c, ctx: ctx, ks: ks, keys: keys, idx: idx, fls: fls,
		hs: make([]*heldLoad[V], len(idx)), leases: make([][]byte, len(idx)),
		done: make(chan struct{}), written: make(chan struct{})}
	loads := make([]heldLoad[V], len(idx))
	for j, i := range idx {
		r.leases[j] = st[i].lease
		loads[j].lease, loads[j].done, loads[j].written = r.leases[j], r.done, r.written
		r.hs[j] = &loads[j]
		if prev, ok := c.held.Swap(keys[i], r.hs[j]); ok {
			// Only the loads still writing: those that ended are not
			// waited for, and must not keep their batch in memory.
			r.hs[j].prev.Store(prev.(*heldLoad[V]).running())
		}
	}
	if ctx.Done() == nil {
		// The caller can never leave before the loader returns: it loads
		// on its own goroutine, which spares a hand-over of the load and of
		// its answer, and only the writes go to the background.
		r.loadOnly()
		if !c.spawn(r.write) {
			r.write() // the client is closing: no background work
		}
	} else if !c.spawn(r.run) {
		r.run()
	}
	return r.hs
}

// heldRun is one loadHeld: the load of keys under leases this process took,
// then their writes.
type heldRun[K comparable, V any] struct {
	c        *Cache[K, V]
	ctx      context.Context
	ks       []K
	keys     []string
	idx      []int
	fls      []*loader.Flight[*entry[V]]
	hs       []*heldLoad[V]
	leases   [][]byte
	res      []loaded[V]
	answered bool
	// done and written are the channels of every load of hs.
	done, written chan struct{}
}

// run loads, then writes.
func (r *heldRun[K, V]) run() {
	r.loadOnly()
	r.write()
}

// loadOnly loads and answers the waits; if the loader does not return (it
// panicked), it answers them with an error and ends the run.
func (r *heldRun[K, V]) loadOnly() {
	defer func() {
		if !r.answered {
			r.end()
		}
	}()
	c := r.c
	// Taken before the loader reads the source: a change the snapshots miss
	// was applied before that read.
	snaps := make([]uint64, len(r.idx))
	for j, i := range r.idx {
		snaps[j] = c.local.snapshot(r.keys[i])
	}
	lctx, cancel := c.detached(r.ctx, 0)
	r.res = c.loadKeys(lctx, r.ks, r.keys, r.idx, true)
	cancel()
	c.keepLoaded(r.ks, r.keys, r.idx, snaps, r.res)
	r.answer()
}

// answer gives each wait its result, and finishes the flights.
func (r *heldRun[K, V]) answer() {
	r.answered = true
	for j, i := range r.idx {
		h := r.hs[j]
		if r.res != nil {
			h.e, h.err = r.res[j].result()
		} else {
			h.err = fmt.Errorf("cache: load %s: did not complete", r.keys[i])
		}
	}
	close(r.done)
	if r.fls != nil {
		for j, i := range r.idx {
			r.fls[i].Finish(r.hs[j].e, r.hs[j].err)
		}
	}
}

// write writes the results under their leases, then ends the run.
func (r *heldRun[K, V]) write() {
	defer r.end()
	// The writes are bounded by LeaseTTL, not by the time budget: cut
	// short, they would leave the leases for LeaseTTL and every process
	// would wait (past it the leases are gone anyway).
	wctx, wcancel := r.c.detached(r.ctx, max(r.c.leaseTTL, r.c.budgetFor(len(r.idx))))
	defer wcancel()
	r.c.commit(wctx, r.ks, r.keys, r.idx, r.leases, r.res)
}

// end ends the loads, written or not: their writes are over.
func (r *heldRun[K, V]) end() {
	if !r.answered {
		r.answer() // the loader did not return
	}
	close(r.written)
	for j, i := range r.idx {
		h := r.hs[j]
		// A load this one replaced may still be writing: it takes the
		// key's place again, for awaitWrites.
		if p := h.prev.Load().running(); p != nil {
			r.c.held.CompareAndSwap(r.keys[i], h, p)
		} else {
			r.c.held.CompareAndDelete(r.keys[i], h)
		}
	}
}

// keepLoaded keeps a copy of each loaded result that is to be written, before
// the write, so that the caller's next Get finds it in memory. It is stored
// as a read stores what it read: only if no invalidation of the key was
// handled since the snapshots taken before the loader read the source (the
// visit that took the lease made Redis track the key, so any change after
// it is pushed and drops the copy, as it drops every copy). The write then
// leaves it in place, or replaces it with a copy of its own (keepWritten),
// or drops it if the write does not happen; until then it expires with the
// TTL being written.
func (c *Cache[K, V]) keepLoaded(ks []K, keys []string, idx []int, snaps []uint64, res []loaded[V]) {
	if !c.local.keeps() || !c.tracks() {
		return
	}
	now := c.now()
	for j, i := range idx {
		l := res[j]
		if l.e == nil || l.data == nil || l.ttl <= 0 {
			continue
		}
		// The whole milliseconds the write sets (PX): the key, written
		// after now, expires no earlier.
		l.e.expireAt = now.Add(time.Duration(ms(l.ttl)) * time.Millisecond).UnixNano()
		c.local.store(ks[i], l.e, snaps[j])
	}
}

// awaitWrites waits until the writes of this process's loads of the Redis
// keys, if any are running (the latest load of each key, and those it
// replaced), have ended — or for as long as the time budget,
// or until ctx ends: an operation that reads Redis's state of a key after a
// Get returned its loaded value sees that value, not the lease it replaces,
// unless Redis is too slow to take the write.
func (c *Cache[K, V]) awaitWrites(ctx context.Context, keys ...string) error {
	return c.awaitWritesFor(ctx, c.budgetFor(len(keys)), keys...)
}

// awaitWritesFor is awaitWrites bounded by d instead of the budget; 0: only
// by ctx.
func (c *Cache[K, V]) awaitWritesFor(ctx context.Context, d time.Duration, keys ...string) error {
	var t *time.Timer
	var expired <-chan time.Time
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for _, key := range keys {
		v, ok := c.held.Load(key)
		if !ok {
			continue
		}
		if t == nil && d > 0 {
			t = time.NewTimer(d)
			expired = t.C
		}
		for h := v.(*heldLoad[V]); h != nil; h = h.prev.Load() {
			select {
			case <-h.written:
			case <-expired:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// loadKeys calls the loader for the keys ks[i], i in idx — Loader itself for
// one key, BatchLoader (or Loader's batch adapter) for several — and returns
// each key's result, encoded for writing when encode is set. A panic in the
// loader fails every key with an error wrapping loader.ErrPanic.
func (c *Cache[K, V]) loadKeys(ctx context.Context, ks []K, keys []string, idx []int, encode bool) []loaded[V] {
	c.stats.loads.Add(1)
	out := make([]loaded[V], len(idx))
	if c.rec != nil {
		var end func(Result)
		ctx, end = c.start(ctx, OpLoad, len(idx), 0)
		defer func() { end(loadResult(out)) }()
	}
	var found map[K]V
	var err error
	var perKey map[K]error
	if len(idx) == 1 {
		k := ks[idx[0]]
		v, lerr := c.safeLoad(ctx, k)
		switch {
		case lerr == nil:
			found = map[K]V{k: v}
		case errors.Is(lerr, loader.NoCache):
			found, perKey = map[K]V{k: v}, map[K]error{k: lerr}
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
	// NoCache without a key: none of the batch's values is cached.
	noneCached := perKey == nil && errors.Is(err, loader.NoCache)
	for j, i := range idx {
		k, key := ks[i], keys[i]
		if v, ok := found[k]; ok {
			e := &entry[V]{v: v, key: key, src: SourceLoader}
			out[j].e = e
			if noneCached || errors.Is(perKey[k], loader.NoCache) {
				continue // returned, not written (the lease is released), not kept
			}
			if encode {
				eb := c.encodeValue(key, v)
				if eb.err != nil {
					c.stats.writeErrors.Add(1)
					c.logEvent(slog.LevelWarn, "cache: a loaded value could not be encoded: returned, not written to Redis", eb.err, []string{key})
					continue
				}
				out[j].data, out[j].ttl, e.softAt, e.size = eb.data, eb.ttl, eb.softAt, uint32(len(eb.data))
			}
			continue
		}
		kerr := perKey[k]
		if kerr == nil && perKey == nil && !noneCached {
			kerr = err // an error that names no key concerns them all
		}
		if kerr != nil && !errors.Is(kerr, ErrNotFound) {
			c.stats.loadErrors.Add(1)
			out[j].err = fmt.Errorf("cache: load %s: %w", key, kerr)
			continue
		}
		out[j].e = &entry[V]{key: key, notFound: true, src: SourceLoader}
		if encode && !noneCached {
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
	var err error
	for {
		todo, err = c.commitOnce(wctx, ks, keys, idx, leases, ls, todo)
		if len(todo) == 0 || !retry.wait(wctx) {
			break
		}
	}
	if len(todo) == 0 {
		return
	}
	failed := make([]string, len(todo))
	for t, j := range todo {
		c.stats.writeErrors.Add(1)
		c.client.wrote(keys[idx[j]])
		failed[t] = keys[idx[j]]
	}
	if err == nil {
		err = wctx.Err()
	}
	c.logEvent(slog.LevelWarn, "cache: write-back of loaded values failed: Redis unavailable until the write's deadline", err, failed)
}

// commitOnce sends the writes of commit at positions todo and returns those
// that found Redis unavailable, to be sent again.
func (c *Cache[K, V]) commitOnce(wctx context.Context, ks []K, keys []string, idx []int, leases [][]byte, ls []loaded[V], todo []int) (again []int, lastErr error) {
	execs := make([]rueidis.LuaExec, len(todo))
	arena := newExecArena(len(todo), writeExecStrings)
	snaps := make([]uint64, len(todo))
	keep := make([]bool, len(todo))
	for t, j := range todo {
		i := idx[j]
		if c.local.keeps() && c.tracks() && ls[j].data != nil {
			keep[t] = true
			c.expectEchoes(keys[i])
			snaps[t] = c.local.snapshot(keys[i])
		}
		execs[t] = c.underLease(arena, keys[i], leases[j], ls[j].data, ls[j].ttl)
	}
	var results []rueidis.RedisResult
	sent := c.now() // a copy's expiry counts from here (see expiryFrom)
	rc, err := c.redis()
	if err == nil {
		results = c.evalUnderLease(wctx, rc, execs)
	}
	var own ownMoves // of the counters of the keys kept, when there are several
	if len(todo) > 1 {
		own = make(ownMoves, len(todo))
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
				c.cancelEchoes(keys[i])
			}
			// Not in Redis (yet): no copy either, the one keepLoaded kept
			// included, until a retry writes it.
			c.client.wrote(keys[i])
			again, lastErr = append(again, j), err
			continue
		}
		switch {
		case err != nil:
			c.stats.writeErrors.Add(1)
			c.logEvent(slog.LevelWarn, "cache: write-back of a loaded value failed", err, []string{keys[i]})
		case !wrote && l.data != nil:
			c.stats.discardedFills.Add(1)
		}
		if !keep[t] {
			c.client.wrote(keys[i])
			continue
		}
		if err != nil || !wrote {
			c.cancelEchoes(keys[i])
			c.client.wrote(keys[i])
			continue
		}
		c.client.changed(keys[i], c)
		// The entry the callers were given stays, or a copy of it: they
		// may be reading it. The key expires no earlier than the early
		// copy does: the write set it for the whole milliseconds of l.ttl
		// after keepLoaded counted them from its now. The expiry read from
		// PTTL, whole milliseconds too, may fall a little short of that,
		// and would cost a new copy for nothing.
		c.local.keepWritten(ks[i], l.e, max(c.expiryFrom(sent, pttl), l.e.expireAt), snaps[t], own)
		c.forget(keys[i])
	}
	return again, lastErr
}

// expectEchoes announces the echoes of a load's write of key that keeps its
// copy: the key's, and in plain mode its lease key's (the visit that took
// the lease tracks it, so the write's deletion of it is pushed back).
func (c *Cache[K, V]) expectEchoes(key string) {
	c.client.expectEcho(key)
	if c.plain {
		c.client.expectEcho(leaseKey(c.ns, key))
	}
}

// cancelEchoes withdraws expectEchoes for a write that did not happen.
func (c *Cache[K, V]) cancelEchoes(key string) {
	c.client.cancelEcho(key)
	if c.plain {
		c.client.cancelEcho(leaseKey(c.ns, key))
	}
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
	arena := newExecArena(len(todo), writeExecStrings)
	for j, i := range todo {
		execs[j] = c.underLease(arena, keys[i], st[i].lease, nil, 0)
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
