package cache

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// local holds the decoded values of one cache in process memory.
//
// Reads are lock-free (a sync.Map keyed by the typed key, so a hit builds no
// key string and decodes nothing). Writes and invalidations go through one of
// stripeCount stripes chosen by the Redis key, each holding a mutex, an
// invalidation counter and the index from Redis key back to typed key that an
// invalidation (which names only the Redis key) needs.
//
// The order that keeps a stale copy out. A fill reads the stripe's counter
// (snapshot) BEFORE it sends GET to Redis, and stores the decoded value only
// if, under the stripe's mutex, the counter still equals the snapshot. An
// invalidation increments the counter and deletes the copy under that same
// mutex. So for an invalidation of the key that rueidis delivers at any moment
// after the snapshot — including between the GET's reply and the store — either
// the invalidation runs first and the fill sees a changed counter and does not
// store, or the fill stores first and the invalidation then deletes what it
// stored. An invalidation delivered before the snapshot concerns a write that
// Redis applied before our GET, so the GET already returns the new value.
// Invalidations of other keys of the same stripe also make a fill skip its
// store; that costs only a later re-read (served by rueidis' own local cache),
// never correctness, and with 256 stripes it is rare.
type local[K comparable, V any] struct {
	items   sync.Map // K -> *entry[V]
	size    atomic.Int64
	max     int64
	stripes [stripeCount]stripe[K]
	seed    maphash.Seed
}

const stripeCount = 256

type stripe[K comparable] struct {
	mu  sync.Mutex
	gen atomic.Uint64 // written under mu; read without it for snapshots
	rev map[string]K  // Redis key -> typed key of the stored copy
	_   [32]byte      // keep neighbouring stripes off one cache line
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

func newLocal[K comparable, V any](max int) *local[K, V] {
	l := &local[K, V]{max: int64(max), seed: maphash.MakeSeed()}
	for i := range l.stripes {
		l.stripes[i].rev = make(map[string]K)
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
// before the read from Redis whose result may be stored with store.
func (l *local[K, V]) snapshot(key string) uint64 {
	return l.stripe(key).gen.Load()
}

// store keeps e as the copy of k unless an invalidation touched its stripe
// since snap. It reports whether it stored.
func (l *local[K, V]) store(k K, e *entry[V], snap uint64) bool {
	st := l.stripe(e.key)
	st.mu.Lock()
	if st.gen.Load() != snap {
		st.mu.Unlock()
		return false
	}
	_, loaded := l.items.Swap(k, e)
	st.rev[e.key] = k
	st.mu.Unlock()
	if !loaded && l.size.Add(1) > l.max {
		l.shrink()
	}
	return true
}

// invalidate drops the copy stored under the Redis key and makes fills that
// snapshotted before it skip their store.
func (l *local[K, V]) invalidate(key string) {
	st := l.stripe(key)
	st.mu.Lock()
	st.gen.Add(1)
	if k, ok := st.rev[key]; ok {
		delete(st.rev, key)
		if _, loaded := l.items.LoadAndDelete(k); loaded {
			l.size.Add(-1)
		}
	}
	st.mu.Unlock()
}

// invalidateAll drops every copy, for a connection that dropped (rueidis
// flushes its own local cache then, and Redis forgets what it tracked).
func (l *local[K, V]) invalidateAll() {
	for i := range l.stripes {
		st := &l.stripes[i]
		st.mu.Lock()
		st.gen.Add(1)
		for key, k := range st.rev {
			delete(st.rev, key)
			if _, loaded := l.items.LoadAndDelete(k); loaded {
				l.size.Add(-1)
			}
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
		delete(st.rev, e.key)
		l.size.Add(-1)
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
