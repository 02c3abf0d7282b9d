package cache

import (
	"context"
	"sync"
	"time"
)

// awaitLeases waits until a change of one of the keys of fs, whose leases
// other processes hold, the earliest of their leases' expiry, or ctx. It
// returns the fetches to visit again and those whose LeaseWait ran out (the
// caller loads them without writing).
func (c *Cache[K, V]) awaitLeases(ctx context.Context, fs []*fetch[K, V]) (ready, timedOut []*fetch[K, V], err error) {
	now := time.Now()
	d := c.leaseTTL
	var expiring *fetch[K, V] // the key whose lease's expiry bounds the wait
	var expiry time.Duration
	for _, f := range fs {
		if c.leaseWait > 0 {
			if f.waitUntil.IsZero() {
				f.waitUntil = now.Add(c.leaseWait)
			}
			if !now.Before(f.waitUntil) {
				timedOut = append(timedOut, f)
				continue
			}
			d = min(d, f.waitUntil.Sub(now))
		}
		if f.hard > 0 {
			d = min(d, max(0, f.loadBy.Sub(now)))
		}
		if f.pttl > 0 {
			if e := time.Duration(f.pttl)*time.Millisecond + time.Millisecond; e <= d {
				d, expiring, expiry = e, f, e
			}
		}
		ready = append(ready, f)
	}
	if len(ready) == 0 {
		return nil, timedOut, nil
	}
	c.stats.leaseWaits.Add(uint64(len(ready)))
	if !c.tracks() {
		d = min(d, leasePoll) // no push will come
	}
	woken := make(chan struct{}, 1)
	for _, f := range ready {
		c.waits.register(f.key, woken)
	}
	defer func() {
		for _, f := range ready {
			c.waits.unregister(f.key, woken)
		}
	}()
	// A change between the visit and the registration above moved the
	// counter; it will not wake the wait.
	for _, f := range ready {
		if c.local.snapshot(f.key) != f.snap {
			return ready, timedOut, nil
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-woken:
	case <-t.C:
		if expiring != nil && d == expiry {
			c.logLeaseExpired(expiring.key)
		}
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	return ready, timedOut, nil
}

// waits lets reads of this process wait for the invalidation of keys.
type waits struct {
	mu sync.Mutex
	m  map[string][]chan struct{} // guarded by mu
}

// register makes the next invalidation of key send on ch (without blocking:
// give ch a buffer of one). Call unregister when done waiting.
func (w *waits) register(key string, ch chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = make(map[string][]chan struct{})
	}
	w.m[key] = append(w.m[key], ch)
}

func (w *waits) unregister(key string, ch chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	chs := w.m[key]
	for i, have := range chs {
		if have == ch {
			chs[i] = chs[len(chs)-1]
			chs = chs[:len(chs)-1]
			break
		}
	}
	if len(chs) == 0 {
		delete(w.m, key)
	} else {
		w.m[key] = chs
	}
}

// wake signals the waits of key, which stay registered.
func (w *waits) wake(key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ch := range w.m[key] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (w *waits) wakeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, chs := range w.m {
		for _, ch := range chs {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}
