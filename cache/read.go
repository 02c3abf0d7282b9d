package cache

import (
	"context"
	"errors"
)

// Get returns the value of k: from process memory when a fresh copy is
// there, else from Redis, else from the loader, whose value is then written
// to Redis with the policy's TTL. Concurrent Gets of one key in a process
// share one Redis visit and one load, and the value found or loaded is in
// process memory for the next Get.
//
// A key the loader reports as absent returns an error wrapping [ErrNotFound]
// and is remembered as absent for the policy's negative TTL. Any other
// failure is a [*loader.KeyError] naming k (find it with errors.As), which
// wraps the cause: [ErrUnavailable] when Redis is unavailable (and the policy
// is [FailFast]), the loader's error, or a context error. When Redis is
// unavailable the result follows [Options].OnRedisDown.
//
// Get is GetMany of one key: the two answer alike for every outcome.
func (c *Cache[K, V]) Get(ctx context.Context, k K, opts ...ReadOption) (V, error) {
	if len(opts) > 0 {
		return c.getWith(ctx, k, opts)
	}
	// The hit path: localCopy by hand, a call less.
	now := c.nanos()
	if e, ok := c.local.get(k, now); ok && c.client.heardWithin(c.maxSilence) {
		c.stats.localHits.Add(1)
		if e.softAt != 0 || e.stale || e.notFound || c.clone != nil {
			return c.serve(ctx, k, e, now)
		}
		return e.v, nil
	}
	return c.getSlow(ctx, k)
}

// localCopy returns the copy of k in process memory that a read may serve
// at now: fresh, while Redis is heard from (see heartbeat.go).
func (c *Cache[K, V]) localCopy(k K, now int64) (*entry[V], bool) {
	e, ok := c.local.get(k, now)
	return e, ok && c.client.heardWithin(c.maxSilence)
}

// getSlow is Get for a key process memory does not hold: GetMany's machinery
// for one key.
func (c *Cache[K, V]) getSlow(ctx context.Context, k K) (V, error) {
	v, _, err := c.getSlowFrom(ctx, k)
	return v, err
}

// getSlowFrom is getSlow that also says where the value came from; it is
// reported to the recorder, if any.
func (c *Cache[K, V]) getSlowFrom(ctx context.Context, k K) (V, Source, error) {
	var end func(Result)
	if c.rec != nil {
		ctx, end = c.start(ctx, OpGet, 1, 0)
	}
	f := &fetch[K, V]{keyRef: keyRef[K]{k, c.Key(k)}}
	c.fetchAll(ctx, []*fetch[K, V]{f})
	v, err := c.answer(ctx, k, f.out)
	if end != nil {
		endErr(end, err)
	}
	src := SourceNone
	if err == nil && f.out.e != nil {
		src = f.out.e.src
	}
	return v, src, err
}

// getWith is Get with options.
func (c *Cache[K, V]) getWith(ctx context.Context, k K, opts []ReadOption) (V, error) {
	ro := mergeReadOptions(opts)
	if ro.reload {
		var zero V
		if err := c.Invalidate(ctx, k); err != nil {
			return zero, err
		}
	}
	if !ro.skipLocal && !ro.reload {
		now := c.nanos()
		if e, ok := c.localCopy(k, now); ok {
			c.stats.localHits.Add(1)
			v, err := c.serve(ctx, k, e, now)
			if err == nil {
				ro.report(SourceLocal)
			}
			return v, err
		}
	}
	v, src, err := c.getSlowFrom(ctx, k)
	ro.report(src)
	return v, err
}

// GetMany returns the values of keys, as Get would for each, in few round
// trips: copies in process memory first; then, for the rest, one pipeline of
// single-key visits (so on a cluster each goes to its own slot's owner —
// never a cross-slot command), each reading the key, tracking it, and taking
// its lease when it is missing. The missing keys go to the batch loader in
// one call, and its results are written in one pipeline, each with its own
// TTL and only where the lease still stands. A batch of misses costs two
// round trips and one loader call, whatever its size.
//
// Keys that are not found are absent from the map. Keys that failed are
// absent too, and named in the returned error: errors.Join of one
// [*loader.KeyError] per key; the keys that succeeded are returned all the
// same. A key named twice is read once.
func (c *Cache[K, V]) GetMany(ctx context.Context, keys []K, opts ...ReadOption) (map[K]V, error) {
	ro := mergeReadOptions(opts)
	if ro.reload {
		if err := c.Invalidate(ctx, keys...); err != nil {
			return map[K]V{}, err
		}
	}
	out := make(map[K]V, len(keys))
	var errs []error
	rest := keys
	if !ro.skipLocal && !ro.reload && c.client.heardWithin(c.maxSilence) {
		rest = nil
		now := c.nanos()
		var hits uint64
		asIs := c.clone == nil // values are returned as they are held
		for _, k := range keys {
			if e, ok := c.local.get(k, now); ok {
				hits++
				if asIs && e.softAt == 0 && !e.stale && !e.notFound {
					// Get's hit path: a value with nothing to check.
					out[k] = e.v
					ro.report(SourceLocal)
					continue
				}
				v, err := c.serve(ctx, k, e, now)
				if err == nil {
					ro.report(SourceLocal)
				}
				errs = collect(out, k, v, err, errs)
				continue
			}
			rest = append(rest, k)
		}
		c.stats.localHits.Add(hits)
	}
	if len(rest) == 0 {
		return out, errors.Join(errs...)
	}
	var end func(Result)
	if c.rec != nil {
		ctx, end = c.start(ctx, OpGetMany, len(keys), len(keys)-len(rest))
	}
	fs := c.newFetches(unique(rest))
	c.fetchAll(ctx, fs)
	for _, f := range fs {
		v, err := c.answer(ctx, f.k, f.out)
		if err == nil && f.out.e != nil {
			ro.report(f.out.e.src)
		}
		errs = collect(out, f.k, v, err, errs)
	}
	err := errors.Join(errs...)
	if end != nil {
		end(Result{Err: err})
	}
	return out, err
}

// answer turns an outcome into what Get returns.
func (c *Cache[K, V]) answer(ctx context.Context, k K, o outcome[V]) (V, error) {
	if o.err != nil {
		var zero V
		return zero, c.getErr(k, c.Key(k), o.err)
	}
	return c.serve(ctx, k, o.e, c.nanos())
}

// serve returns what entry e holds, wherever it came from; a value past its
// soft expiry goes through the refresh mode.
func (c *Cache[K, V]) serve(ctx context.Context, k K, e *entry[V], now int64) (V, error) {
	if e.reloadBy != 0 {
		return c.whileReloading(ctx, k, e, now)
	}
	if e.due(now) {
		return c.whenDue(ctx, k, e)
	}
	if e.stale {
		c.stats.staleServed.Add(1)
	}
	if e.notFound {
		c.stats.notFoundHits.Add(1)
		var zero V
		return zero, &getError{key: e.key, err: errNotFoundMarker}
	}
	if c.clone != nil {
		return c.clone(e.v), nil
	}
	return e.v, nil
}

// whenDue serves e, past its soft expiry: RefreshSync refreshes it first,
// sharing the refresh with the process's other Gets of the key, and returns
// the current value when another process holds the claim (it is within its
// hard TTL, and its refresh is under way); RefreshBackground returns it at
// once and refreshes it in the background.
func (c *Cache[K, V]) whenDue(ctx context.Context, k K, e *entry[V]) (V, error) {
	if c.refreshMode == RefreshBackground {
		c.stats.staleServed.Add(1)
		c.refreshInBackground(ctx, k, e)
		return c.cloned(e.v), nil
	}
	v, _, err := c.refreshes.Do(ctx, e.key, func(ctx context.Context) (V, error) {
		return c.refresh(ctx, k, e.key, e.softAt)
	})
	switch {
	case errors.Is(err, errNotClaimed):
		return c.cloned(e.v), nil
	case err != nil:
		var zero V
		return zero, c.getErr(k, e.key, err)
	}
	return c.cloned(v), nil
}

// collect puts the outcome of one key of a batch in out (a value), nowhere
// (not found), or errs (a failure).
func collect[K comparable, V any](out map[K]V, k K, v V, err error, errs []error) []error {
	switch {
	case err == nil:
		out[k] = v
	case errors.Is(err, ErrNotFound):
	default:
		errs = append(errs, err)
	}
	return errs
}

// unique returns ks without repeats, in first-seen order. It allocates only
// when there are repeats to remove.
func unique[K comparable](ks []K) []K {
	if len(ks) < 2 {
		return ks
	}
	seen := make(map[K]struct{}, len(ks))
	out := ks[:0:0]
	dup := false
	for _, k := range ks {
		if _, ok := seen[k]; ok {
			dup = true
			continue
		}
		seen[k] = struct{}{}
		out = append(out, k)
	}
	if !dup {
		return ks
	}
	return out
}
