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

	"github.com/aside-go/aside/internal/flight"
	"github.com/aside-go/aside/loader"
)

// heldLoad is a load this process runs for one key under the key's lease.
// The loads of one loader call share their channels, which they reach
// together.
type heldLoad[V any] struct {
	lease   []byte
	gen     uint64        // the namespace's generation its lease was taken in
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
		return nil, ErrNotFound
	}
	return l.e, l.err
}

// heldBy returns this process's load of key under exactly lease, if one is
// running.
func (c *Cache[K, V]) heldBy(key string, lease []byte) *heldLoad[V] {
	if h, ok := c.held.load(key); ok && bytes.Equal(h.lease, lease) {
		return h
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
	tags []string // to index the key under before it is written (Adapt)
	// notModified: the loader of a refresh said the value it replaces
	// (Previous) is current (ErrNotModified); nothing else is set.
	notModified bool
}

// loadHeld loads the keys of fs, whose leases (f.lease) their visit took,
// in one loader call detached from the caller's cancellation — the reads
// that joined those keys must not fail because this one went away, and the
// leases must be written or released whatever happens. The loader runs on a
// background goroutine, or on the caller's when its context can never end
// and the read has no hard timeout (the caller could not have left earlier
// anyway). It finishes the keys'
// flights as soon as the loader returned, then writes each result under its
// lease on a background goroutine. It returns one heldLoad per key, to wait
// on.
//
// The callers do not wait for the writes: a miss costs the caller one round
// trip and the loader. What the writes owe to the rest of the process, the
// held entries give until the writes end: a read that visits Redis and
// meets the lease of this load is answered with its result, and the
// operations that read Redis's state of a key (TTL, Exists, Expire, ...)
// first wait for its write (awaitWrites). Other processes meet the lease and
// wait for the write's invalidation, as they always do.
func (c *Cache[K, V]) loadHeld(ctx context.Context, fs []*fetch[K, V]) []*heldLoad[V] {
	c.stats.misses.Add(uint64(len(fs)))
	var r *heldRun[K, V]
	var loads []heldLoad[V]
	if len(fs) == 1 {
		// A single miss, the most common: one allocation for the run and
		// its slices.
		one := &heldOne[K, V]{}
		one.run.refs, one.run.fls, one.run.hs, one.run.snaps = one.ref[:], one.fl[:], one.h[:], one.snap[:]
		r, loads = &one.run, one.load[:]
	} else {
		r = &heldRun[K, V]{refs: make([]keyRef[K], len(fs)), fls: make([]*flight.Flight[*entry[V]], len(fs)),
			hs: make([]*heldLoad[V], len(fs)), snaps: make([]uint64, len(fs))}
		loads = make([]heldLoad[V], len(fs))
	}
	r.c, r.ctx, r.done, r.written = c, ctx, make(chan struct{}), make(chan struct{})
	r.gen, r.clears = fs[0].gen, fs[0].clears // one round's
	for j, f := range fs {
		r.refs[j], r.fls[j] = f.keyRef, f.fl
		loads[j].lease, loads[j].gen, loads[j].done, loads[j].written = f.lease, f.gen, r.done, r.written
		r.hs[j] = &loads[j]
		if prev, ok := c.held.swap(f.key, r.hs[j]); ok {
			// Only the loads still writing: those that ended are not
			// waited for, and must not keep their batch in memory.
			r.hs[j].prev.Store(prev.running())
		}
	}
	if ctx.Done() == nil && !anyBound(fs) {
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
// then their writes. Its slices are parallel: one position per key.
type heldRun[K comparable, V any] struct {
	c        *Cache[K, V]
	ctx      context.Context
	refs     []keyRef[K]
	fls      []*flight.Flight[*entry[V]] // nil entries when flights are not shared
	hs       []*heldLoad[V]              // each holding its key's lease
	gen      uint64                      // the generation the leases were taken in
	clears   uint64                      // the cache's count of Clears before their visit
	snaps    []uint64                    // of the keys' invalidation counters, before the load
	res      []loaded[V]
	answered bool
	// done and written are the channels of every load of hs.
	done, written chan struct{}
}

// heldOne is the heldRun of one key, with its slices' arrays.
type heldOne[K comparable, V any] struct {
	run  heldRun[K, V]
	ref  [1]keyRef[K]
	fl   [1]*flight.Flight[*entry[V]]
	h    [1]*heldLoad[V]
	load [1]heldLoad[V]
	snap [1]uint64
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
	snaps := r.snaps
	for j, ref := range r.refs {
		snaps[j] = c.local.snapshot(ref.key)
	}
	lctx, cancel := c.detached(r.ctx, 0)
	r.res = c.loadKeys(lctx, r.refs, true, r.gen)
	cancel()
	if c.gen.clears.Load() == r.clears {
		// (After a Clear since the visit, what was loaded is cleared.)
		c.keepLoaded(r.refs, snaps, r.res)
	}
	r.answer()
}

// answer gives each wait its result, and finishes the flights.
func (r *heldRun[K, V]) answer() {
	r.answered = true
	for j, h := range r.hs {
		if r.res != nil {
			h.e, h.err = r.res[j].result()
		} else {
			h.err = errors.New("load: did not complete")
		}
	}
	close(r.done)
	for j, fl := range r.fls {
		if fl != nil {
			fl.Finish(r.hs[j].e, r.hs[j].err)
		}
	}
}

// write writes the results under their leases, then ends the run.
func (r *heldRun[K, V]) write() {
	defer r.end()
	// The writes are bounded by LeaseTTL, not by the time budget: cut
	// short, they would leave the leases for LeaseTTL and every process
	// would wait (past it the leases are gone anyway).
	wctx, wcancel := r.c.detached(r.ctx, max(r.c.leaseTTL, r.c.budgetFor(len(r.refs))))
	defer wcancel()
	r.commit(wctx)
}

// end ends the loads, written or not: their writes are over.
func (r *heldRun[K, V]) end() {
	if !r.answered {
		r.answer() // the loader did not return
	}
	close(r.written)
	for j, h := range r.hs {
		// A load this one replaced may still be writing: it takes the
		// key's place again, for awaitWrites.
		key := r.refs[j].key
		r.c.held.end(key, h, h.prev.Load().running())
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
func (c *Cache[K, V]) keepLoaded(refs []keyRef[K], snaps []uint64, res []loaded[V]) {
	if !c.local.keeps() || !c.tracks() {
		return
	}
	now := c.now()
	for j, l := range res {
		if l.e == nil || l.data == nil || l.ttl <= 0 {
			continue
		}
		// The whole milliseconds the write sets (PX): the key, written
		// after now, expires no earlier.
		l.e.expireAt = now.Add(time.Duration(ms(l.ttl)) * time.Millisecond).UnixNano()
		c.local.store(refs[j].k, l.e, snaps[j])
	}
}

// loadKeys calls the loader for the keys refs — Loader itself for one key,
// BatchLoader (or Loader's batch adapter) for several — and returns each
// key's result, encoded for writing when encode is set, with the namespace's
// generation gen (see clear.go). A panic in the
// loader fails every key with an error wrapping loader.ErrPanic.
func (c *Cache[K, V]) loadKeys(ctx context.Context, refs []keyRef[K], encode bool, gen uint64) []loaded[V] {
	c.stats.keysLoaded.Add(uint64(len(refs)))
	if c.loaderPerKey {
		c.stats.loads.Add(uint64(len(refs)))
	} else {
		c.stats.loads.Add(1)
	}
	out := make([]loaded[V], len(refs))
	if c.rec != nil {
		var end func(Result)
		ctx, end = c.start(ctx, OpLoad, len(refs), 0)
		defer func() { end(loadResult(out)) }()
	}
	ctx, refresh := c.scopePrevious(ctx, refs)
	ad := &adaptation{}
	ctx = context.WithValue(ctx, adaptKey{}, ad)
	if len(refs) == 1 {
		v, err := c.safeLoad(ctx, refs[0].k)
		if errors.Is(err, ErrNotModified) && refresh {
			out[0].notModified = true
			return out
		}
		found := err == nil || errors.Is(err, loader.NoCache)
		c.keyResult(&out[0], refs[0].key, v, found, err, true, encode, gen, ad.of(refs[0].k))
		return out
	}
	ks := make([]K, len(refs))
	for j, ref := range refs {
		ks[j] = ref.k
	}
	found, err := c.safeBatch(ctx, ks)
	var perKey map[K]error
	if err != nil {
		perKey = loader.KeyErrors[K](err)
	}
	// NoCache without a key: none of the batch's values is cached.
	noneCached := perKey == nil && errors.Is(err, loader.NoCache)
	for j, ref := range refs {
		v, ok := found[ref.k]
		kerr := perKey[ref.k]
		if kerr == nil && perKey == nil && !noneCached {
			kerr = err // an error that names no key concerns them all
		}
		c.keyResult(&out[j], ref.key, v, ok, kerr, !noneCached, encode, gen, ad.of(ref.k))
	}
	return out
}

// keyResult sets l to what the loader said of key: found with v (err nil,
// or loader.NoCache: returned, not written), not found, or failed with err.
// cache false: nothing of it is written (the batch said NoCache). adapted
// is what the loader said with Adapt of how to cache it.
func (c *Cache[K, V]) keyResult(l *loaded[V], key string, v V, found bool, err error, cache, encode bool, gen uint64, adapted callOptions) {
	if found {
		l.e = &entry[V]{v: v, key: key, src: SourceLoader}
		if !cache || errors.Is(err, loader.NoCache) || !encode {
			return // returned, not written (the lease is released), not kept
		}
		eb := adapted.apply(c.encodeValue(key, v, gen), c.plain)
		l.tags = adapted.tags
		switch {
		case errors.Is(eb.err, ErrTooLarge):
			c.logEvent(slog.LevelWarn, "cache: a loaded value is larger than Options.MaxValueBytes: returned, not written to Redis", eb.err, []string{key})
			return
		case eb.err != nil:
			c.stats.writeErrors.Add(1)
			c.logEvent(slog.LevelWarn, "cache: a loaded value could not be encoded: returned, not written to Redis", eb.err, []string{key})
			return
		}
		l.data, l.ttl, l.e.softAt, l.e.size = eb.data, eb.ttl, eb.softAt, uint32(len(eb.data))
		return
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		c.stats.loadErrors.Add(1)
		l.err = fmt.Errorf("load: %w", err)
		return
	}
	l.e = &entry[V]{key: key, notFound: true, src: SourceLoader}
	if encode && cache {
		l.data, l.ttl = c.notFoundBytes(key, gen)
		l.e.size = uint32(len(l.data))
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
