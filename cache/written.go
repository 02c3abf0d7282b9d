package cache

import (
	"sync"
	"sync/atomic"
	"time"
)

// written remembers the keys this process wrote whose invalidation has not
// come back yet.
//
// Why: Redis sends the invalidation of a write to the writer's own tracking
// connection too, but after the write's reply (and with several connections
// per node, on another connection than the write). Between the reply and the
// push, rueidis' client-side cache still holds the old bytes, so a Get right
// after a Set of the same process would read them back. While a key is in
// this set, reads of it bypass the client-side cache (plain GET) and keep no
// decoded copy; the key leaves the set when its invalidation (or a flush)
// arrives, or after writtenTTL when the key was not tracked and no push will
// ever come.
type written struct {
	m         sync.Map // Redis key -> deadline (Unix nanoseconds)
	count     atomic.Int64
	nextSweep atomic.Int64 // Unix nanoseconds before which add does not sweep
	now       func() time.Time
}

const (
	writtenTTL = 5 * time.Second
	// writtenSweep is the size past which add sweeps expired entries, so
	// keys written once and never read again do not pile up. It sweeps at
	// most once per writtenTTL, so that a burst of writes (whose entries
	// cannot have expired yet) does not sweep on every add.
	writtenSweep = 4096
)

func (w *written) add(key string) {
	now := w.now().UnixNano()
	if _, loaded := w.m.Swap(key, now+int64(writtenTTL)); !loaded {
		if w.count.Add(1) > writtenSweep {
			if next := w.nextSweep.Load(); now >= next && w.nextSweep.CompareAndSwap(next, now+int64(writtenTTL)) {
				w.sweep(now)
			}
		}
	}
}

// has reports whether key was written recently and its push is still due.
func (w *written) has(key string) bool {
	if w.count.Load() == 0 {
		return false
	}
	v, ok := w.m.Load(key)
	if !ok {
		return false
	}
	if w.now().UnixNano() >= v.(int64) {
		if w.m.CompareAndDelete(key, v) {
			w.count.Add(-1)
		}
		return false
	}
	return true
}

func (w *written) done(key string) {
	if w.count.Load() == 0 {
		return
	}
	if _, loaded := w.m.LoadAndDelete(key); loaded {
		w.count.Add(-1)
	}
}

func (w *written) clear() {
	w.m.Range(func(k, _ any) bool {
		if _, loaded := w.m.LoadAndDelete(k); loaded {
			w.count.Add(-1)
		}
		return true
	})
}

func (w *written) sweep(now int64) {
	w.m.Range(func(k, v any) bool {
		if now >= v.(int64) && w.m.CompareAndDelete(k, v) {
			w.count.Add(-1)
		}
		return true
	})
}
