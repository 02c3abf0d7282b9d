package cache

import (
	"sync"
	"sync/atomic"
	"time"
)

// stash is the copies a flush took out of local, kept for outageCopy.
type stash[K comparable, V any] struct {
	mu    sync.Mutex
	since int64           // when Redis was last heard from before the flush (client clock); guarded by mu
	made  int64           // when the first flush filled it (Unix nanoseconds); guarded by mu
	items map[K]*entry[V] // guarded by mu; nil when empty
	index map[string][]K  // Redis key -> typed keys in items; guarded by mu
	any   atomic.Bool     // items is not empty: lets unstash skip the mutex
}

// stashCopies keeps the copies of local aside for outageCopy, before a
// flush drops them: Redis may be going away, and they are the last values it
// confirmed — as of when it was last heard from.
func (c *Cache[K, V]) stashCopies() {
	s := &c.stash
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.items == nil {
		s.items, s.index = make(map[K]*entry[V]), make(map[string][]K)
		s.since = min(c.client.clock.now(), c.client.heard.Load())
		s.made = time.Now().UnixNano()
	}
	for k, e := range c.local.all() {
		s.items[k] = e
		s.index[e.key] = append(s.index[e.key], k)
	}
	s.any.Store(len(s.items) > 0)
}

// unstash forgets the stashed copies of the Redis key: it changed, or this
// process wrote it.
func (c *Cache[K, V]) unstash(key string) {
	s := &c.stash
	if !s.any.Load() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.index[key] {
		delete(s.items, k)
	}
	delete(s.index, key)
}

// unstashAll forgets every stashed copy.
func (c *Cache[K, V]) unstashAll() {
	c.unstashWhere(func(string) bool { return true })
}

// unstashWhere is unstash for every Redis key match reports true of.
func (c *Cache[K, V]) unstashWhere(match func(key string) bool) {
	s := &c.stash
	if !s.any.Load() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, ks := range s.index {
		if match(key) {
			for _, k := range ks {
				delete(s.items, k)
			}
			delete(s.index, key)
		}
	}
}

// verified is called by the client's heartbeat when every node answered a
// round that began at start: copies stashed before it are never served again.
// (A stash made after the round began is kept: the flush that made it may be
// Redis going away right after answering.)
func (c *Cache[K, V]) verified(start int64) {
	s := &c.stash
	if !s.any.Load() {
		return
	}
	s.mu.Lock()
	if s.made < start {
		s.items, s.index = nil, nil
		s.any.Store(false)
	}
	s.mu.Unlock()
}

// outageCopy returns, for a read that found Redis unavailable, the copy of k
// that OutageStaleness lets it serve: the copy in local while Redis was
// heard from at most OutageStaleness ago, or one stashed by a flush when
// Redis was last heard from at most that long ago before it; nil when there
// is none.
func (c *Cache[K, V]) outageCopy(k K) *entry[V] {
	if c.outage <= 0 {
		return nil
	}
	now, nanos := c.client.clock.now(), c.nanos()
	var e *entry[V]
	if le, ok := c.local.peek(k); ok && now-c.client.heard.Load() <= int64(c.outage) {
		e = le
	} else {
		s := &c.stash
		s.mu.Lock()
		if se, ok := s.items[k]; ok && now-s.since <= int64(c.outage) {
			e = se
		}
		s.mu.Unlock()
	}
	if e == nil || e.expireAt != 0 && nanos >= e.expireAt || e.reloadBy != 0 && nanos >= e.reloadBy {
		// Expired, or superseded by a change longer ago than
		// StaleWhileReloading allows.
		return nil
	}
	// Served as stale, and never refreshed from here.
	return &entry[V]{v: e.v, notFound: e.notFound, stale: true, key: e.key, expireAt: e.expireAt, src: SourceLocal}
}
