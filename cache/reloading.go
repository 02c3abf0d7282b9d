package cache

import (
	"context"
	"errors"
	"log/slog"
)

// Stale-while-reloading (Options.StaleWhileReloading).
//
// When Redis pushes a change of a key that another process made, changed
// keeps the key's copy, marked with a deadline (entry.reloadBy), instead of
// dropping it; the counter still moves, so no read under way stores what it
// read before. A read that finds such a copy before its deadline serves it
// and starts one background read of the key (a Get around the copy: a
// visit of Redis, and a load under the key's lease if it is missing), whose
// value replaces the copy when it is stored. A read past the deadline drops
// the copy and reads as if there were none. Changes of this process clear
// copies outright (changed is called with pushed false for them), so a
// process's own writes are never hidden by a stale copy.

// whileReloading serves e, a copy kept after another process changed its
// key, at now: its value while within its bound, starting a reload; past
// the bound, what a read without the copy gets.
func (c *Cache[K, V]) whileReloading(ctx context.Context, k K, e *entry[V], now int64, tm timeouts) (V, Source, error) {
	if now >= e.reloadBy {
		c.local.evict(k, e)
		return c.getSlowFrom(ctx, k, tm)
	}
	c.stats.staleServed.Add(1)
	c.reloadInBackground(ctx, k, e)
	return c.cloned(e.v), SourceStale, nil
}

// reloadInBackground reads k around its stale copy e, once per copy at a
// time, bounded by RefreshTimeout and by the client's Close; the value read
// or loaded is stored as every read's is, replacing e.
func (c *Cache[K, V]) reloadInBackground(ctx context.Context, k K, e *entry[V]) {
	if !e.refreshing.CompareAndSwap(false, true) {
		return
	}
	started := c.spawn(func() {
		defer e.refreshing.Store(false) // a later read may try again
		rctx, cancel := c.detached(ctx, c.refreshTimeout)
		defer cancel()
		if _, err := c.getSlow(rctx, k); err != nil && !errors.Is(err, ErrNotFound) {
			c.logEvent(slog.LevelWarn, "cache: reload of a stale copy failed: it is served until its bound", err, []string{e.key})
		}
	})
	if !started {
		e.refreshing.Store(false)
	}
}
