package cache

import (
	"hash/maphash"
	"sync"
)

// heldTable maps a Redis key to the load this process runs under its lease
// (see Cache.held): maps under striped mutexes, whose buckets stay after a
// deletion, so that a miss adds no allocation to the table once it has
// held as many keys (sync.Map allocates a node per key stored).
type heldTable[V any] struct {
	seed    maphash.Seed
	stripes [heldStripes]heldStripe[V]
}

const heldStripes = 64

type heldStripe[V any] struct {
	mu sync.Mutex
	m  map[string]*heldLoad[V]
	_  [48]byte // a cache line each: 8 bytes of mutex, 8 of map
}

func newHeldTable[V any]() *heldTable[V] {
	return &heldTable[V]{seed: maphash.MakeSeed()}
}

func (t *heldTable[V]) stripe(key string) *heldStripe[V] {
	return &t.stripes[maphash.String(t.seed, key)%heldStripes]
}

// load returns the load of key, if any.
func (t *heldTable[V]) load(key string) (*heldLoad[V], bool) {
	s := t.stripe(key)
	s.mu.Lock()
	h, ok := s.m[key]
	s.mu.Unlock()
	return h, ok
}

// swap makes h the load of key, and returns the one it replaced.
func (t *heldTable[V]) swap(key string, h *heldLoad[V]) (prev *heldLoad[V], ok bool) {
	s := t.stripe(key)
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[string]*heldLoad[V])
	}
	prev, ok = s.m[key]
	s.m[key] = h
	s.mu.Unlock()
	return prev, ok
}

// end takes h out of key's place: puts p there instead when p is not nil,
// or removes the key; and does nothing when key's load is no longer h.
func (t *heldTable[V]) end(key string, h, p *heldLoad[V]) {
	s := t.stripe(key)
	s.mu.Lock()
	if cur, ok := s.m[key]; ok && cur == h {
		if p != nil {
			s.m[key] = p
		} else {
			delete(s.m, key)
		}
	}
	s.mu.Unlock()
}
