package cache

import (
	"hash/maphash"
	"iter"
	"math"
	"sync"
	"sync/atomic"

	"github.com/maypok86/otter/v2"
)

// local holds the decoded values of one cache in process memory.
//
// Reads are lock-free (otter's map keyed by the typed key, so a hit builds no
// key string and decodes nothing). The copies are bounded by bytes: each
// weighs its stored size, its Redis key and copyOverhead, and past the budget
// otter's W-TinyLFU policy chooses what to evict (Redis still holds it).
// Stores and invalidations go through one of stripeCount stripes chosen by
// the Redis key, each holding a mutex and the index from a Redis key back to
// the typed keys whose copies it backs, and through one of genCount
// invalidation counters, also chosen by the Redis key, each guarded by the
// mutex of the stripe of the keys it counts for. The index keeps every typed
// key: a Key function that is not one-to-one (strings.ToLower, say) maps
// several typed keys to one Redis key, and an invalidation of that Redis key
// drops them all.
//
// The order that keeps a stale copy out. A read takes the key's counter
// (snapshot) BEFORE it sends its command to Redis, and stores the decoded
// value only if, under the stripe's mutex, the counter still equals the
// snapshot. An invalidation increments the counter and deletes the copies
// under that same mutex. So for an invalidation of the key that arrives at any
// moment after the snapshot — including between the reply and the store —
// either the invalidation runs first and the read sees a changed counter and
// does not store, or the read stores first and the invalidation then deletes
// what it stored. An invalidation that arrived before the snapshot concerns a
// change that Redis applied before the read, which therefore saw it.
// Invalidations of other keys of the same counter also make a read skip its
// store; that costs only a later re-read, never correctness, and with 4096
// counters it is rare: with one counter per stripe, the 100 leases a batch
// read takes, pushed back while the writes of the batch before it were in
// flight, made more than half of those writes drop their copy.
type local[K comparable, V any] struct {
	// items holds the copies, bounded by their weight (copyWeight) with
	// otter's W-TinyLFU admission and eviction; nil keeps no copies (the
	// counters still serve waits). Its maintenance runs on the goroutine
	// that calls it (a synchronous executor): no goroutine of its own, and
	// an eviction happens during a store or, now and then, a read.
	items   *otter.Cache[K, *entry[V]]
	stripes [stripeCount]stripe[K]
	gens    [genCount]atomic.Uint64 // written under their stripe's mu; read without it for snapshots
	seed    maphash.Seed

	// evicted queues the copies that otter evicted, whose index entries are
	// still to be removed. otter reports an eviction under its own locks,
	// where a stripe's mutex must not be taken (a store holds that mutex
	// while it calls otter): the queue's mutex is taken by nothing else, and
	// the next store empties the queue once it has released its stripe.
	evicted struct {
		mu sync.Mutex
		q  []evictedCopy[K]
	}
}

type evictedCopy[K comparable] struct {
	k   K
	key string
}

// copyOverhead estimates the bytes a copy costs beyond its stored size and
// its Redis key: the entry, otter's node and the index entry.
const copyOverhead = 160

// copyWeight is what a copy counts against Options.LocalBytes.
func copyWeight(key string, size uint32) int64 {
	return int64(size) + int64(len(key)) + copyOverhead
}

const stripeCount = 256

// genCount is the number of invalidation counters: a multiple of
// stripeCount, so that the keys of one counter are all of one stripe.
const genCount = 16 * stripeCount

type stripe[K comparable] struct {
	mu  sync.Mutex
	rev map[string][]K // Redis key -> typed keys with a stored copy; guarded by mu
	_   [48]byte       // keep neighbouring stripes off one cache line
}

// entry is one decoded value. It is immutable once stored, but for the
// refreshing flag.
type entry[V any] struct {
	refreshing atomic.Bool // a background refresh of this copy is running
	v          V
	notFound   bool
	stale      bool   // past its soft expiry, its refresh claimed (or failed)
	key        string // the Redis key
	size       uint32 // bytes of its encoded form in Redis (0 unknown)
	src        Source // where the value was found when the entry was made
	expireAt   int64  // Unix nanoseconds of the hard expiry; 0 = none known
	softAt     int64  // Unix nanoseconds after which a refresh is due; 0 = never
	// reloadBy is, for a copy kept after another process changed its key
	// (Options.StaleWhileReloading), the Unix nanoseconds until which it
	// may be served while one load reloads it; 0 for a current copy. Such
	// a copy is stale too, so that the hit path hands it to serve.
	reloadBy int64
}

// copied returns a new entry with e's value and fields, not yet refreshing.
func (e *entry[V]) copied() *entry[V] {
	return &entry[V]{v: e.v, notFound: e.notFound, stale: e.stale, key: e.key, size: e.size, src: e.src, expireAt: e.expireAt, softAt: e.softAt}
}

// due reports whether e is past its soft expiry at now.
func (e *entry[V]) due(now int64) bool { return e.softAt != 0 && now >= e.softAt }

// newLocal returns a store of copies that weigh at most budget bytes in all;
// with a budget of 0 or less it keeps none.
func newLocal[K comparable, V any](budget int64) *local[K, V] {
	l := &local[K, V]{seed: maphash.MakeSeed()}
	for i := range l.stripes {
		l.stripes[i].rev = make(map[string][]K)
	}
	if budget > 0 {
		l.items = otter.Must(&otter.Options[K, *entry[V]]{
			MaximumWeight: uint64(budget),
			Weigher: func(_ K, e *entry[V]) uint32 {
				return uint32(min(copyWeight(e.key, e.size), math.MaxUint32))
			},
			OnAtomicDeletion: func(ev otter.DeletionEvent[K, *entry[V]]) {
				if ev.Cause == otter.CauseOverflow || ev.Cause == otter.CauseExpiration {
					l.evicted.mu.Lock()
					l.evicted.q = append(l.evicted.q, evictedCopy[K]{ev.Key, ev.Value.key})
					l.evicted.mu.Unlock()
				}
			},
			Executor: func(fn func()) { fn() },
		})
	}
	return l
}

// keeps reports whether the store keeps copies at all.
func (l *local[K, V]) keeps() bool { return l.items != nil }

func (l *local[K, V]) stripe(key string) *stripe[K] {
	return &l.stripes[l.hash(key)%stripeCount]
}

// hash returns the index of key's invalidation counter; its stripe's is
// the same modulo stripeCount.
func (l *local[K, V]) hash(key string) uint32 {
	return uint32(maphash.String(l.seed, key) % genCount)
}

// slot returns key's stripe and invalidation counter.
func (l *local[K, V]) slot(key string) (*stripe[K], *atomic.Uint64) {
	h := l.hash(key)
	return &l.stripes[h%stripeCount], &l.gens[h]
}

// get returns the fresh copy of k, if any. It is the hit path: no lock, no
// allocation.
func (l *local[K, V]) get(k K, nowNanos int64) (*entry[V], bool) {
	if l.items == nil {
		return nil, false
	}
	e, ok := l.items.GetIfPresent(k)
	if !ok {
		return nil, false
	}
	if e.expireAt != 0 && nowNanos >= e.expireAt {
		l.evict(k, e)
		return nil, false
	}
	return e, true
}

// peek returns the copy of k, expired or not, without counting a use of it.
func (l *local[K, V]) peek(k K) (*entry[V], bool) {
	if l.items == nil {
		return nil, false
	}
	en, ok := l.items.GetEntryQuietly(k)
	return en.Value, ok
}

// all yields every copy, expired or not.
func (l *local[K, V]) all() iter.Seq2[K, *entry[V]] {
	if l.items == nil {
		return func(func(K, *entry[V]) bool) {}
	}
	return l.items.All()
}

// snapshot returns the invalidation counter of key's stripe, to be taken
// before the Redis command whose result may be stored with store.
func (l *local[K, V]) snapshot(key string) uint64 {
	return l.gens[l.hash(key)].Load()
}

// store keeps e as the copy of k unless an invalidation touched its counter
// since snap. It reports whether it stored.
func (l *local[K, V]) store(k K, e *entry[V], snap uint64) bool {
	st, gen := l.slot(e.key)
	st.mu.Lock()
	if gen.Load() != snap || l.items == nil {
		st.mu.Unlock()
		return false
	}
	l.put(st, k, e)
	st.mu.Unlock()
	l.reap()
	return true
}

// put stores e for k in the map and the index; st.mu is held.
func (l *local[K, V]) put(st *stripe[K], k K, e *entry[V]) {
	l.items.Set(k, e)
	ks := st.rev[e.key]
	for _, have := range ks {
		if have == k {
			return
		}
	}
	st.rev[e.key] = append(ks, k)
}

// deleteIf deletes the copy of k if drop reports true of it, and reports
// whether it did.
func (l *local[K, V]) deleteIf(k K, drop func(*entry[V]) bool) bool {
	deleted := false
	l.items.ComputeIfPresent(k, func(old *entry[V]) (*entry[V], otter.ComputeOp) {
		if drop(old) {
			deleted = true
			return nil, otter.InvalidateOp
		}
		return old, otter.CancelOp
	})
	return deleted
}

// reap removes the index entries of the copies otter evicted. It must not
// be called with a stripe's mutex held.
func (l *local[K, V]) reap() {
	l.evicted.mu.Lock()
	q := l.evicted.q
	l.evicted.q = nil
	l.evicted.mu.Unlock()
	for _, ev := range q {
		st := l.stripe(ev.key)
		st.mu.Lock()
		// k may hold a copy of the same key again, stored after the
		// eviction: then its index entry stays.
		if e, ok := l.peek(ev.k); !ok || e.key != ev.key {
			st.unindex(ev.key, ev.k)
		}
		st.mu.Unlock()
	}
}

// drop deletes every copy backed by key; st.mu is held. An index entry whose
// typed key now holds a copy of another Redis key is skipped.
func (l *local[K, V]) drop(st *stripe[K], key string) {
	ks, ok := st.rev[key]
	if !ok {
		return
	}
	delete(st.rev, key)
	if l.items == nil {
		return
	}
	for _, k := range ks {
		l.deleteIf(k, func(e *entry[V]) bool { return e.key == key })
	}
}

// unindex removes k from key's index entry; st.mu is held.
func (st *stripe[K]) unindex(key string, k K) {
	ks := st.rev[key]
	for i, have := range ks {
		if have == k {
			ks[i] = ks[len(ks)-1]
			ks = ks[:len(ks)-1]
			break
		}
	}
	if len(ks) == 0 {
		delete(st.rev, key)
	} else {
		st.rev[key] = ks
	}
}

// invalidate drops the copies stored under the Redis key and makes reads
// that snapshotted before it skip their store.
func (l *local[K, V]) invalidate(key string) {
	st, gen := l.slot(key)
	st.mu.Lock()
	gen.Add(1)
	l.drop(st, key)
	st.mu.Unlock()
}

// invalidateKeepStale is invalidate for a cache that serves copies while
// they reload (Options.StaleWhileReloading): a value's copy stays, marked
// stale until until, unless it was marked already (its bound counts from
// the first change it missed); other copies (not-found markers) go.
func (l *local[K, V]) invalidateKeepStale(key string, until int64) {
	st, gen := l.slot(key)
	st.mu.Lock()
	defer st.mu.Unlock()
	gen.Add(1)
	ks, ok := st.rev[key]
	if !ok || l.items == nil {
		return
	}
	kept := ks[:0:0]
	for _, k := range ks {
		l.items.ComputeIfPresent(k, func(old *entry[V]) (*entry[V], otter.ComputeOp) {
			switch {
			case old.key != key:
				return old, otter.CancelOp
			case old.notFound:
				return nil, otter.InvalidateOp
			case old.reloadBy != 0:
				kept = append(kept, k)
				return old, otter.CancelOp
			}
			e := old.copied()
			e.stale, e.reloadBy = true, until
			kept = append(kept, k)
			return e, otter.WriteOp
		})
	}
	if len(kept) == 0 {
		delete(st.rev, key)
	} else {
		st.rev[key] = kept
	}
}

// invalidateWhere drops the copies stored under every Redis key that match
// reports true of, and moves every counter: a read under way of such a key
// does not store what it read before.
func (l *local[K, V]) invalidateWhere(match func(key string) bool) {
	for i := range l.stripes {
		st := &l.stripes[i]
		st.mu.Lock()
		for g := i; g < genCount; g += stripeCount {
			l.gens[g].Add(1)
		}
		for key := range st.rev {
			if match(key) {
				l.drop(st, key)
			}
		}
		st.mu.Unlock()
	}
}

// invalidateAll drops every copy, for a connection that dropped or a flush
// (Redis forgot what it tracked).
func (l *local[K, V]) invalidateAll() {
	l.invalidateWhere(func(string) bool { return true })
}

// evict drops e if it is still the copy of k, without counting as an
// invalidation (the value expired).
func (l *local[K, V]) evict(k K, e *entry[V]) {
	st := l.stripe(e.key)
	st.mu.Lock()
	if l.deleteIf(k, func(have *entry[V]) bool { return have == e }) {
		st.unindex(e.key, k)
	}
	st.mu.Unlock()
}

// len reports the number of copies held.
func (l *local[K, V]) len() int {
	if l.items == nil {
		return 0
	}
	return l.items.EstimatedSize()
}

// weight reports the bytes the copies count against the budget.
func (l *local[K, V]) weight() int64 {
	if l.items == nil {
		return 0
	}
	return int64(l.items.WeightedSize())
}
