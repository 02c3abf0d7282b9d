package cache

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// local holds the decoded values of one cache in process memory.
//
// Reads are lock-free (a sync.Map keyed by the typed key, so a hit builds no
// key string and decodes nothing). Stores and invalidations go through one of
// stripeCount stripes chosen by the Redis key, each holding a mutex, an
// invalidation counter and the index from a Redis key back to the typed keys
// whose copies it backs. The index keeps every typed key: a Key function
// that is not one-to-one (strings.ToLower, say) maps several typed keys to
// one Redis key, and an invalidation of that Redis key drops them all.
//
// The order that keeps a stale copy out. A read takes the stripe's counter
// (snapshot) BEFORE it sends its command to Redis, and stores the decoded
// value only if, under the stripe's mutex, the counter still equals the
// snapshot. An invalidation increments the counter and deletes the copies
// under that same mutex. So for an invalidation of the key that arrives at any
// moment after the snapshot — including between the reply and the store —
// either the invalidation runs first and the read sees a changed counter and
// does not store, or the read stores first and the invalidation then deletes
// what it stored. An invalidation that arrived before the snapshot concerns a
// change that Redis applied before the read, which therefore saw it.
// Invalidations of other keys of the same stripe also make a read skip its
// store; that costs only a later re-read, never correctness, and with 256
// stripes it is rare.
type local[K comparable, V any] struct {
	items   sync.Map // K -> *entry[V]
	size    atomic.Int64
	max     int64 // 0: keep no copies (the counters still serve waits)
	stripes [stripeCount]stripe[K]
	seed    maphash.Seed
}

const stripeCount = 256

type stripe[K comparable] struct {
	mu  sync.Mutex
	gen atomic.Uint64  // written under mu; read without it for snapshots
	rev map[string][]K // Redis key -> typed keys with a stored copy; guarded by mu
	_   [24]byte       // keep neighbouring stripes off one cache line
}

// entry is one decoded value. It is immutable once stored, but for the
// refreshing flag.
type entry[V any] struct {
	refreshing atomic.Bool // a background refresh of this copy is running
	v          V
	notFound   bool
	stale      bool   // past its soft expiry, its refresh claimed (or failed)
	key        string // the Redis key
	expireAt   int64  // Unix nanoseconds of the hard expiry; 0 = none known
	softAt     int64  // Unix nanoseconds after which a refresh is due; 0 = never
}

// due reports whether e is past its soft expiry at now.
func (e *entry[V]) due(now int64) bool { return e.softAt != 0 && now >= e.softAt }

func newLocal[K comparable, V any](capacity int) *local[K, V] {
	l := &local[K, V]{max: int64(max(capacity, 0)), seed: maphash.MakeSeed()}
	for i := range l.stripes {
		l.stripes[i].rev = make(map[string][]K)
	}
	return l
}

func (l *local[K, V]) stripe(key string) *stripe[K] {
	return &l.stripes[maphash.String(l.seed, key)%stripeCount]
}

// get returns the fresh copy of k, if any. It is the hit path: no lock, no
// allocation.
func (l *local[K, V]) get(k K, nowNanos int64) (*entry[V], bool) {
	v, ok := l.items.Load(k)
	if !ok {
		return nil, false
	}
	e := v.(*entry[V])
	if e.expireAt != 0 && nowNanos >= e.expireAt {
		l.evict(k, e)
		return nil, false
	}
	return e, true
}

// snapshot returns the invalidation counter of key's stripe, to be taken
// before the Redis command whose result may be stored with store.
func (l *local[K, V]) snapshot(key string) uint64 {
	return l.stripe(key).gen.Load()
}

// store keeps e as the copy of k unless an invalidation touched its stripe
// since snap. It reports whether it stored.
func (l *local[K, V]) store(k K, e *entry[V], snap uint64) bool {
	st := l.stripe(e.key)
	st.mu.Lock()
	if st.gen.Load() != snap || l.max == 0 {
		st.mu.Unlock()
		return false
	}
	added := l.put(st, k, e)
	st.mu.Unlock()
	if added && l.size.Add(1) > l.max {
		l.shrink()
	}
	return true
}

// storeWritten is store for a value this process has just written: in one
// step under the stripe's mutex it drops every copy of the Redis key (as
// invalidate does, so that reads in flight do not store what they read
// before the write), then keeps e as the copy of k — unless an invalidation
// touched the stripe since snap, taken before the write was sent.
func (l *local[K, V]) storeWritten(k K, e *entry[V], snap uint64) bool {
	st := l.stripe(e.key)
	st.mu.Lock()
	ok := st.gen.Load() == snap && l.max > 0
	st.gen.Add(1)
	l.drop(st, e.key)
	added := ok && l.put(st, k, e)
	st.mu.Unlock()
	if added && l.size.Add(1) > l.max {
		l.shrink()
	}
	return ok
}

// put stores e for k in the map and the index; st.mu is held. It reports
// whether k had no copy before.
func (l *local[K, V]) put(st *stripe[K], k K, e *entry[V]) bool {
	_, loaded := l.items.Swap(k, e)
	ks := st.rev[e.key]
	for _, have := range ks {
		if have == k {
			return !loaded
		}
	}
	st.rev[e.key] = append(ks, k)
	return !loaded
}

// drop deletes every copy backed by key; st.mu is held. An index entry whose
// typed key now holds a copy of another Redis key is skipped.
func (l *local[K, V]) drop(st *stripe[K], key string) {
	ks, ok := st.rev[key]
	if !ok {
		return
	}
	delete(st.rev, key)
	for _, k := range ks {
		if v, loaded := l.items.Load(k); loaded && v.(*entry[V]).key == key {
			if l.items.CompareAndDelete(k, v) {
				l.size.Add(-1)
			}
		}
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
	st := l.stripe(key)
	st.mu.Lock()
	st.gen.Add(1)
	l.drop(st, key)
	st.mu.Unlock()
}

// invalidateAll drops every copy, for a connection that dropped or a flush
// (Redis forgot what it tracked).
func (l *local[K, V]) invalidateAll() {
	for i := range l.stripes {
		st := &l.stripes[i]
		st.mu.Lock()
		st.gen.Add(1)
		for key := range st.rev {
			l.drop(st, key)
		}
		st.mu.Unlock()
	}
}

// evict drops e if it is still the copy of k, without counting as an
// invalidation (the value expired or the map is over capacity).
func (l *local[K, V]) evict(k K, e *entry[V]) {
	st := l.stripe(e.key)
	st.mu.Lock()
	if l.items.CompareAndDelete(k, e) {
		l.size.Add(-1)
		st.unindex(e.key, k)
	}
	st.mu.Unlock()
}

// shrink evicts arbitrary copies until the map is back to 7/8 of its bound.
// Map iteration order is unspecified, which makes this a cheap random
// eviction; the entries are only copies, Redis still holds the values.
func (l *local[K, V]) shrink() {
	target := l.max - l.max/8
	l.items.Range(func(k, v any) bool {
		l.evict(k.(K), v.(*entry[V]))
		return l.size.Load() > target
	})
}

// len reports the number of copies held.
func (l *local[K, V]) len() int { return int(l.size.Load()) }
