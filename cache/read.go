package cache

import (
	"context"
	"errors"
	"fmt"
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
// is [FailFast]), the loader's error, [ErrLoadTimeout] when the wait for a
// load reached [Options].HardTimeout, [ErrInvalidOptions] for an invalid
// ReadOption, or a context error. When Redis is unavailable the result
// follows [Options].OnRedisDown.
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
	v, _, err := c.getSlowFrom(ctx, k, c.timeouts)
	return v, err
}

// getSlowFrom is getSlow that also says where the value came from; it is
// reported to the recorder, if any.
func (c *Cache[K, V]) getSlowFrom(ctx context.Context, k K, tm timeouts) (V, Source, error) {
	var end func(Result)
	if c.rec != nil {
		ctx, end = c.start(ctx, OpGet, 1, 0)
	}
	fs := []*fetch[K, V]{{keyRef: keyRef[K]{k, c.Key(k)}}}
	bound(fs, tm)
	c.fetchAll(ctx, fs)
	v, src, err := c.answer(ctx, k, fs[0].out, tm)
	if end != nil {
		endErr(end, err)
	}
	return v, src, err
}

// getWith is Get with options.
func (c *Cache[K, V]) getWith(ctx context.Context, k K, opts []ReadOption) (V, error) {
	ro := mergeReadOptions(opts)
	var zero V
	if ro.err != nil {
		return zero, c.getErr(k, c.Key(k), ro.err)
	}
	if ro.reload {
		if err := c.Invalidate(ctx, k); err != nil {
			return zero, err
		}
	}
	tm := c.timeoutsOf(&ro)
	if !ro.skipLocal && !ro.reload {
		now := c.nanos()
		if e, ok := c.localCopy(k, now); ok {
			c.stats.localHits.Add(1)
			v, src, err := c.serveFrom(ctx, k, e, now, tm)
			if err == nil {
				ro.report(or(src, SourceLocal))
			}
			return v, err
		}
	}
	v, src, err := c.getSlowFrom(ctx, k, tm)
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
	out := make(mapSink[K, V], len(keys))
	err := getMany(c, ctx, keys, opts, out)
	return out, err
}

// GetManyInto reads keys as GetMany does, into the caller's slices instead
// of a map: vals[i] is the value of keys[i] and found[i] says whether it was
// found; a key not found, or failed (named in the returned error), has
// found[i] false and vals[i] the zero value. A key named twice is read once
// and set at each of its places. vals and found must be at least as long as
// keys. Reusing them, a read whose keys are all in process memory allocates
// nothing.
func (c *Cache[K, V]) GetManyInto(ctx context.Context, keys []K, vals []V, found []bool, opts ...ReadOption) error {
	if len(vals) < len(keys) || len(found) < len(keys) {
		return fmt.Errorf("cache: get many into: %d keys, but %d vals and %d found", len(keys), len(vals), len(found))
	}
	var zero V
	for i := range keys {
		vals[i], found[i] = zero, false
	}
	return getMany(c, ctx, keys, opts, sliceSink[K, V]{vals, found})
}

// manySink receives the values GetMany or GetManyInto read: put(i, k, v)
// says that keys[i], k, has the value v.
type manySink[K comparable, V any] interface {
	put(i int, k K, v V)
	byPlace() bool // put wants every place of a key, not the key once
}

// mapSink is GetMany's result.
type mapSink[K comparable, V any] map[K]V

func (m mapSink[K, V]) put(_ int, k K, v V) { m[k] = v }
func (mapSink[K, V]) byPlace() bool         { return false }

// sliceSink is GetManyInto's result.
type sliceSink[K comparable, V any] struct {
	vals  []V
	found []bool
}

func (s sliceSink[K, V]) put(i int, _ K, v V) { s.vals[i], s.found[i] = v, true }
func (sliceSink[K, V]) byPlace() bool         { return true }

// getMany is GetMany and GetManyInto, which differ in where the values go.
func getMany[K comparable, V any, S manySink[K, V]](c *Cache[K, V], ctx context.Context, keys []K, opts []ReadOption, out S) error {
	ro := mergeReadOptions(opts)
	if ro.err != nil {
		errs := make([]error, 0, len(keys))
		for _, k := range unique(keys) {
			errs = append(errs, c.getErr(k, c.Key(k), ro.err))
		}
		return errors.Join(errs...)
	}
	tm := c.timeoutsOf(&ro)
	if ro.reload {
		if err := c.Invalidate(ctx, keys...); err != nil {
			return err
		}
	}
	var errs []error
	rest := keys
	var places []int // of the keys of rest in keys, when out wants them
	if !ro.skipLocal && !ro.reload && c.client.heardWithin(c.maxSilence) {
		rest = nil
		now := c.nanos()
		var hits uint64
		asIs := c.clone == nil // values are returned as they are held
		for i, k := range keys {
			if e, ok := c.local.get(k, now); ok {
				hits++
				if asIs && e.softAt == 0 && !e.stale && !e.notFound {
					// Get's hit path: a value with nothing to check.
					out.put(i, k, e.v)
					ro.report(SourceLocal)
					continue
				}
				v, src, err := c.serveFrom(ctx, k, e, now, tm)
				if err == nil {
					ro.report(or(src, SourceLocal))
				}
				errs = collect(out, i, k, v, err, errs)
				continue
			}
			rest = append(rest, k)
			if out.byPlace() {
				places = append(places, i)
			}
		}
		c.stats.localHits.Add(hits)
	} else if out.byPlace() {
		places = make([]int, len(keys))
		for i := range places {
			places[i] = i
		}
	}
	if len(rest) == 0 {
		return errors.Join(errs...)
	}
	var end func(Result)
	if c.rec != nil {
		ctx, end = c.start(ctx, OpGetMany, len(keys), len(keys)-len(rest))
	}
	fs := c.newFetches(unique(rest))
	bound(fs, tm)
	c.fetchAll(ctx, fs)
	var of map[K]int // the fetch of each key of rest, when out wants places
	if places != nil && len(fs) < len(rest) {
		of = make(map[K]int, len(fs))
		for j, f := range fs {
			of[f.k] = j
		}
	}
	var answers []answered[V]
	if places != nil {
		answers = make([]answered[V], len(fs))
	}
	for j, f := range fs {
		v, src, err := c.answer(ctx, f.k, f.out, tm)
		if err == nil {
			ro.report(src)
		}
		if places == nil {
			errs = collect(out, 0, f.k, v, err, errs)
			continue
		}
		answers[j] = answered[V]{v, err}
		if err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, err)
		}
	}
	for r, i := range places {
		j := r
		if of != nil {
			j = of[rest[r]]
		}
		if a := answers[j]; a.err == nil {
			out.put(i, rest[r], a.v)
		}
	}
	err := errors.Join(errs...)
	if end != nil {
		end(Result{Err: err})
	}
	return err
}

// answered is a key's value, or its error.
type answered[V any] struct {
	v   V
	err error
}

// answer turns an outcome into what Get returns, and where its value came
// from.
func (c *Cache[K, V]) answer(ctx context.Context, k K, o outcome[V], tm timeouts) (V, Source, error) {
	if o.err != nil {
		var zero V
		return zero, SourceNone, c.getErr(k, c.Key(k), o.err)
	}
	v, src, err := c.serveFrom(ctx, k, o.e, c.nanos(), tm)
	return v, or(src, o.e.src), err
}

// serve returns what entry e holds, wherever it came from; a value past its
// soft expiry goes through the refresh mode.
func (c *Cache[K, V]) serve(ctx context.Context, k K, e *entry[V], now int64) (V, error) {
	v, _, err := c.serveFrom(ctx, k, e, now, c.timeouts)
	return v, err
}

// serveFrom is serve under the timeouts tm, which also says where the value
// came from when it is not where e was found: SourceStale for a value past
// its soft TTL, SourceLoader for a value refreshed; SourceNone otherwise.
func (c *Cache[K, V]) serveFrom(ctx context.Context, k K, e *entry[V], now int64, tm timeouts) (V, Source, error) {
	if e.reloadBy != 0 {
		return c.whileReloading(ctx, k, e, now, tm)
	}
	if e.due(now) {
		return c.whenDue(ctx, k, e, now, tm)
	}
	src := SourceNone
	if e.stale {
		c.stats.staleServed.Add(1)
		src = SourceStale
	}
	if e.notFound {
		c.stats.notFoundHits.Add(1)
		var zero V
		return zero, SourceNone, &getError{key: e.key, err: errNotFoundMarker}
	}
	return c.cloned(e.v), src, nil
}

// or is s, or else when s is SourceNone.
func or(s, otherwise Source) Source {
	if s == SourceNone {
		return otherwise
	}
	return s
}

// whenDue serves e, past its soft expiry at now.
//
// RefreshBackground returns it at once and refreshes it in the background.
// RefreshSync refreshes it first, sharing the refresh with the process's
// other Gets of the key, and waits for it at most the timeout of a read
// with a value at hand (tm.atHand), past which the value is served stale
// and the refresh goes on; it returns the current value when another
// process holds the claim (it is within its hard TTL, and its refresh is
// under way), and when the refresh fails under FailSafe. A value too old to
// be served stale (FailSafeMaxAge) is refreshed as RefreshSync does in
// either mode, its wait bounded by the hard timeout, and is never served.
func (c *Cache[K, V]) whenDue(ctx context.Context, k K, e *entry[V], now int64, tm timeouts) (V, Source, error) {
	var zero V
	old := c.tooOld(e, now)
	if c.refreshMode == RefreshBackground && !old {
		c.stats.staleServed.Add(1)
		c.refreshInBackground(ctx, k, e)
		return c.cloned(e.v), SourceStale, nil
	}
	wait := tm.atHand()
	if old {
		wait = tm.hard
	}
	wctx := ctx
	if wait > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, wait)
		defer cancel()
	}
	v, _, err := c.refreshes.Do(wctx, e.key, func(fctx context.Context) (V, error) {
		// Detached: callers that stop waiting (a timeout) leave the
		// refresh running, under its claim, to write for everyone.
		rctx, cancel := c.detached(fctx, c.refreshTimeout)
		defer cancel()
		return c.refresh(rctx, k, e)
	})
	switch {
	case err == nil:
		return c.cloned(v), SourceLoader, nil
	case errors.Is(err, errNotClaimed) && old:
		// Another process refreshes it, or it changed, or Redis could
		// not be asked: not to be served, it is loaded around.
		return c.loadAround(ctx, k, e.key, tm)
	case errors.Is(err, errNotClaimed):
		c.stats.staleServed.Add(1)
		return c.cloned(e.v), SourceStale, nil
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil && wctx.Err() != nil:
		// The wait ended; the refresh goes on.
		if old {
			c.stats.loadTimeouts.Add(1)
			return zero, SourceNone, c.getErr(k, e.key, errLoadTimeout(wait))
		}
		c.stats.staleServed.Add(1)
		return c.cloned(e.v), SourceStale, nil
	case !old && c.failSafeServes(ctx, e, err, now):
		c.stats.failSafeServed.Add(1)
		c.stats.staleServed.Add(1)
		return c.cloned(e.v), SourceStale, nil
	}
	return zero, SourceNone, c.getErr(k, e.key, err)
}

// loadAround loads k for a read that may not serve the value at hand, nor
// could refresh it: from the loader, without writing (as after LeaseWait),
// its wait bounded by the hard timeout.
func (c *Cache[K, V]) loadAround(ctx context.Context, k K, key string, tm timeouts) (V, Source, error) {
	var zero V
	lctx := ctx
	if tm.hard > 0 {
		var cancel context.CancelFunc
		lctx, cancel = context.WithTimeout(ctx, tm.hard)
		defer cancel()
	}
	l := c.loadKeys(lctx, []keyRef[K]{{k, key}}, false, 0)[0]
	e, err := l.result()
	switch {
	case err != nil && ctx.Err() == nil && lctx.Err() != nil:
		c.stats.loadTimeouts.Add(1)
		return zero, SourceNone, c.getErr(k, key, errLoadTimeout(tm.hard))
	case err != nil:
		return zero, SourceNone, c.getErr(k, key, err)
	}
	return c.cloned(e.v), SourceLoader, nil
}

// collect puts the outcome of one key of a batch in out (a value), nowhere
// (not found), or errs (a failure).
func collect[K comparable, V any, S manySink[K, V]](out S, i int, k K, v V, err error, errs []error) []error {
	switch {
	case err == nil:
		out.put(i, k, v)
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
