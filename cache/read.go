package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/rueidis"

	"github.com/aside-go/aside/loader"
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
	if c.local != nil {
		now := c.nanos()
		if e, ok := c.local.get(k, now); ok && c.client.heardWithin(c.maxSilence) {
			c.stats.localHits.Add(1)
			if e.softAt != 0 || e.stale || e.notFound || c.clone != nil {
				return c.serve(ctx, k, e, now)
			}
			return e.v, nil
		}
	}
	return c.getSlow(ctx, k)
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
	out := make([]outcome[V], 1)
	c.fetch(ctx, []K{k}, out)
	v, err := c.answer(ctx, k, out[0])
	if end != nil {
		endErr(end, err)
	}
	src := SourceNone
	if err == nil && out[0].e != nil {
		src = out[0].e.src
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
	if !ro.skipLocal && !ro.reload && c.local != nil {
		now := c.nanos()
		if e, ok := c.local.get(k, now); ok && c.client.heardWithin(c.maxSilence) {
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
	if !ro.skipLocal && !ro.reload && c.local != nil && c.client.heardWithin(c.maxSilence) {
		rest = nil
		now := c.nanos()
		var hits uint64
		plain := c.clone == nil
		for _, k := range keys {
			if e, ok := c.local.get(k, now); ok {
				hits++
				if plain && e.softAt == 0 && !e.stale && !e.notFound {
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
	rest = unique(rest)
	res := make([]outcome[V], len(rest))
	c.fetch(ctx, rest, res)
	for i, k := range rest {
		v, err := c.answer(ctx, k, res[i])
		if err == nil && res[i].e != nil {
			ro.report(res[i].e.src)
		}
		errs = collect(out, k, v, err, errs)
	}
	err := errors.Join(errs...)
	if end != nil {
		end(Result{Err: err})
	}
	return out, err
}

// outcome is what resolving one key came to: an entry (a value or a
// not-found marker) or an error.
type outcome[V any] struct {
	e   *entry[V]
	err error
}

// answer turns an outcome into what Get returns.
func (c *Cache[K, V]) answer(ctx context.Context, k K, o outcome[V]) (V, error) {
	if o.err != nil {
		var zero V
		if errors.Is(o.err, ErrNotFound) {
			return zero, o.err
		}
		return zero, &loader.KeyError[K]{Key: k, Err: o.err}
	}
	return c.serve(ctx, k, o.e, c.nanos())
}

// serve returns what entry e holds, wherever it came from; a value past its
// soft expiry goes through the refresh mode.
func (c *Cache[K, V]) serve(ctx context.Context, k K, e *entry[V], now int64) (V, error) {
	if e.due(now) {
		return c.whenDue(ctx, k, e)
	}
	if e.stale {
		c.stats.staleServed.Add(1)
	}
	if e.notFound {
		c.stats.notFoundHits.Add(1)
		var zero V
		return zero, errNotFoundHit
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
	case err != nil && !errors.Is(err, ErrNotFound):
		var zero V
		return zero, &loader.KeyError[K]{Key: k, Err: err}
	}
	return c.cloned(v), err
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

// errAbandoned is the result of a flight whose leader's context ended before
// it had an answer: the callers that joined it try again.
var errAbandoned = errors.New("read abandoned by the caller that led it")

// fetch resolves the keys ks, none of them repeated, that process memory
// could not answer: out[i] receives the outcome of ks[i].
//
// With tracking, each key's resolution is a flight that the process's other
// reads of the key join (one Redis visit, one load); an invalidation of the
// key forgets the flight, so that reads after it start their own. Without
// tracking no push would ever forget a flight: every read visits Redis, and
// waits for another read's load only when Redis still holds that load's
// lease.
func (c *Cache[K, V]) fetch(ctx context.Context, ks []K, out []outcome[V]) {
	keys := make([]string, len(ks))
	for i, k := range ks {
		keys[i] = c.Key(k)
	}
	pending := make([]int, len(ks))
	for i := range pending {
		pending[i] = i
	}
	share := c.tracks()
	var fls []*loader.Flight[*entry[V]]
	if share {
		fls = make([]*loader.Flight[*entry[V]], len(ks))
	}
	for len(pending) > 0 {
		if err := ctx.Err(); err != nil {
			for _, i := range pending {
				out[i].err = err
			}
			return
		}
		lead := pending
		var joined []int
		if share {
			lead = nil
			for _, i := range pending {
				fl, leader := c.flights.Claim(keys[i])
				fls[i] = fl
				if leader {
					lead = append(lead, i)
				} else {
					joined = append(joined, i)
				}
			}
		}
		if len(lead) > 0 {
			c.resolve(ctx, ks, keys, lead, fls, out)
		}
		var again []int
		for _, i := range joined {
			e, err := fls[i].Wait(ctx)
			if errors.Is(err, errAbandoned) {
				again = append(again, i)
				continue
			}
			out[i] = outcome[V]{e, err}
		}
		pending = again
	}
}

// keyState is what resolve remembers of one key between its visits.
type keyState struct {
	snap      uint64    // local's counter before the last visit
	lease     []byte    // offered in the last visit; nil for a plain read
	readOnly  bool      // Redis refused the lease: visit without one
	refused   error     // that refusal, the answer for a missing key
	pttl      int64     // of the lease another process holds
	waitUntil time.Time // when a LeaseWait ends, once the key was seen leased
	raw       []byte    // unreadable bytes found, to delete if unchanged
	handed    bool      // its flight is finished by a load in the background
}

// resolve answers the keys ks[i], i in idx, that this call leads: it visits
// Redis for them all in one pipeline, and visits again those that another
// process is loading once their wait ends; it loads the missing ones under
// their leases in one batch-loader call, in the background. Every led flight
// (fls[i], when fls is not nil) is finished.
func (c *Cache[K, V]) resolve(ctx context.Context, ks []K, keys []string, idx []int, fls []*loader.Flight[*entry[V]], out []outcome[V]) {
	st := make([]keyState, len(ks))
	finish := func(i int, e *entry[V], err error) {
		out[i] = outcome[V]{e, err}
		if fls != nil {
			if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				err = errAbandoned
			}
			fls[i].Finish(e, err)
		}
	}
	detach := func(i int) {
		if fls != nil {
			fls[i].Detach()
		}
	}
	defer func() {
		// Whatever happened, no led flight stays open (Finish does nothing
		// on a flight already finished).
		if fls != nil {
			for _, i := range idx {
				if !st[i].handed {
					fls[i].Finish(nil, errAbandoned)
				}
			}
		}
	}()
	type awaited struct {
		i    int
		h    *heldLoad[V]
		mine bool // h is another flight's load, which this flight waits for
	}
	var waitFor []awaited

	todo := append([]int(nil), idx...)
	for spins := 0; len(todo) > 0; spins++ {
		if spins > maxSpins {
			// The keys change under us faster than we can read them.
			if err := sleepCtx(ctx, leasePoll); err != nil {
				for _, i := range todo {
					finish(i, nil, err)
				}
				break
			}
			spins = 0
		}
		if todo = c.skipPending(ctx, ks, keys, todo, finish, detach); len(todo) == 0 {
			break
		}
		if !c.breaker.allow() {
			c.stats.shortCircuits.Add(uint64(len(todo)))
			c.redisDown(ctx, ks, keys, todo, errCircuitOpen, finish, detach)
			break
		}
		rc, err := c.redis()
		if err != nil {
			c.redisDown(ctx, ks, keys, todo, err, finish, detach)
			break
		}
		rctx, cancel := c.budget(ctx, len(todo))
		sent := c.now() // a copy's expiry counts from here (see expiryFrom)
		results := c.visit(rctx, rc, keys, todo, st)
		cancel()

		var held, contended, direct, down, corrupt, again, lost []int
		var downErr, firstErr error
		for j, i := range todo {
			key := keys[i]
			raw, found, pttl, err := results[j].raw, results[j].found, results[j].pttl, results[j].err
			if err != nil {
				cerr := c.redisErr(ctx, err)
				if _, ok := rueidis.IsRedisErr(err); ok && !errors.Is(cerr, ErrUnavailable) {
					// Redis refused (a user who may not write, out of
					// memory, a key of another type): without a lease,
					// a plain read may still answer.
					if st[i].lease != nil {
						st[i].readOnly, st[i].refused = true, err
						again = append(again, i)
						continue
					}
					finish(i, nil, fmt.Errorf("cache: get %s: %w", key, err))
					continue
				}
				if st[i].lease != nil {
					lost = append(lost, i) // the SET may have happened
				}
				if firstErr == nil {
					firstErr = cerr
				}
				if ctx.Err() != nil {
					finish(i, nil, ctx.Err())
					continue
				}
				down, downErr = append(down, i), cerr
				continue
			}
			if results[j].changed {
				again = append(again, i)
				continue
			}
			if lease := results[j].lease; lease != nil {
				// Plain mode: the value is missing and another load
				// holds its lease key.
				if h := c.heldBy(key, lease); h != nil {
					waitFor = append(waitFor, awaited{i: i, h: h, mine: true})
					continue
				}
				if pttl < 0 {
					// Not a lease aside took (they all expire): load,
					// and write nothing.
					c.stats.decodeErrors.Add(1)
					direct = append(direct, i)
					continue
				}
				st[i].pttl = pttl
				contended = append(contended, i)
				continue
			}
			if !found {
				if st[i].lease != nil {
					held = append(held, i)
					continue
				}
				c.stats.misses.Add(1)
				if err := st[i].refused; err != nil {
					// Redis refused the lease (out of memory, an ACL that
					// forbids writes): not an answer for the read, which
					// goes as OnRedisDown says, writing nothing.
					c.refused(key, err)
					if c.onDown == FailOpen {
						direct = append(direct, i)
						continue
					}
					finish(i, nil, fmt.Errorf("cache: get %s: %w: redis refused the lease: %w", key, ErrUnavailable, err))
					continue
				}
				finish(i, nil, fmt.Errorf("cache: %s: %w (no loader)", key, ErrNotFound))
				continue
			}
			e, derr := c.decode(key, raw)
			if errors.Is(derr, errLeaseHeld) && pttl < 0 {
				// Every lease aside takes expires: bytes shaped like one
				// without an expiry are someone else's.
				derr = fmt.Errorf("%w: %s: a lease without an expiry", ErrCorrupt, key)
			}
			switch {
			case derr == nil:
				c.stats.redisHits.Add(1)
				if c.tracks() {
					e.expireAt = c.expiryFrom(sent, pttl)
					c.local.store(ks[i], e, st[i].snap)
				}
				finish(i, e, nil)
			case errors.Is(derr, errLeaseHeld):
				if h := c.heldBy(key, raw); h != nil {
					if h.failed() {
						// Its lease is being released: this read loads
						// anew, as a read after a failed load does.
						if err := c.awaitWrites(ctx, key); err != nil {
							finish(i, nil, err)
							continue
						}
						again = append(again, i)
						continue
					}
					// This process's own load, and Redis still holds its
					// lease: no invalidation came since it began.
					waitFor = append(waitFor, awaited{i: i, h: h, mine: true})
					continue
				}
				st[i].pttl = pttl
				contended = append(contended, i)
			case errors.Is(derr, errNewerVersion):
				// A newer aside wrote it: load, but leave its value alone.
				c.stats.decodeErrors.Add(1)
				if c.load == nil {
					finish(i, nil, derr)
					continue
				}
				direct = append(direct, i)
			default:
				c.stats.decodeErrors.Add(1)
				switch {
				case c.load == nil || !c.replaceUnreadable:
					// Another program's bytes, or garbage: reported,
					// and left in Redis unless the application opted
					// in to replacing them.
					finish(i, nil, derr)
				case st[i].readOnly:
					// It may not be deleted by this user: load, and
					// leave it.
					direct = append(direct, i)
				default:
					st[i].raw = raw
					corrupt = append(corrupt, i)
				}
			}
		}
		c.breaker.record(firstErr)
		if len(lost) > 0 {
			c.releaseLater(ctx, keys, lost, st)
		}
		if len(held) > 0 {
			for _, i := range held {
				st[i].handed = true
			}
			for j, h := range c.loadHeld(ctx, ks, keys, held, st, fls) {
				waitFor = append(waitFor, awaited{i: held[j], h: h})
			}
		}
		if len(down) > 0 {
			c.redisDown(ctx, ks, keys, down, downErr, finish, detach)
		}
		if len(direct) > 0 {
			c.loadDirect(ctx, ks, keys, direct, directTracked, finish, detach)
		}
		if len(corrupt) > 0 {
			var refused []int
			corrupt, refused = c.deleteUnreadable(ctx, keys, corrupt, st)
			if len(refused) > 0 {
				c.loadDirect(ctx, ks, keys, refused, directTracked, finish, detach)
			}
		}
		todo = append(again, corrupt...)
		if len(contended) > 0 {
			ready, timedOut, err := c.awaitLeases(ctx, keys, contended, st)
			if err != nil {
				for _, i := range contended {
					finish(i, nil, err)
				}
			}
			if len(timedOut) > 0 {
				c.stats.leaseTimeouts.Add(uint64(len(timedOut)))
				c.logLeaseTimeouts(keys, timedOut)
				c.loadDirect(ctx, ks, keys, timedOut, directTracked, finish, detach)
			}
			todo = append(todo, ready...)
		}
	}

	for _, w := range waitFor {
		select {
		case <-w.h.done:
			if w.mine {
				finish(w.i, w.h.e, w.h.err)
			} else {
				out[w.i] = outcome[V]{w.h.e, w.h.err}
			}
		case <-ctx.Done():
			if w.mine {
				finish(w.i, nil, ctx.Err())
			} else {
				out[w.i].err = ctx.Err()
			}
		}
	}
}

const (
	// maxSpins bounds the visits a read makes without waiting.
	maxSpins = 64
	// leasePoll is how often a waiter visits a leased key that Redis will
	// not invalidate for it (tracking off).
	leasePoll = 10 * time.Millisecond
)

// awaitLeases waits until an invalidation of one of the keys keys[i], i in
// idx, which another process holds the lease of, the earliest of their
// leases' expiry, or ctx. It returns the keys to visit again and those whose
// LeaseWait ran out (the caller loads them without writing).
func (c *Cache[K, V]) awaitLeases(ctx context.Context, keys []string, idx []int, st []keyState) (ready, timedOut []int, err error) {
	now := time.Now()
	d := c.leaseTTL
	expiring, expiry := -1, time.Duration(0) // the key whose lease's expiry bounds the wait, and when
	for _, i := range idx {
		if c.leaseWait > 0 {
			if st[i].waitUntil.IsZero() {
				st[i].waitUntil = now.Add(c.leaseWait)
			}
			if !now.Before(st[i].waitUntil) {
				timedOut = append(timedOut, i)
				continue
			}
			d = min(d, st[i].waitUntil.Sub(now))
		}
		if p := st[i].pttl; p > 0 {
			if e := time.Duration(p)*time.Millisecond + time.Millisecond; e <= d {
				d, expiring, expiry = e, i, e
			}
		}
		ready = append(ready, i)
	}
	if len(ready) == 0 {
		return nil, timedOut, nil
	}
	c.stats.leaseWaits.Add(uint64(len(ready)))
	if !c.tracks() {
		d = min(d, leasePoll) // no push will come
	}
	woken := make(chan struct{}, 1)
	for _, i := range ready {
		c.waits.register(keys[i], woken)
	}
	defer func() {
		for _, i := range ready {
			c.waits.unregister(keys[i], woken)
		}
	}()
	if c.local != nil {
		// An invalidation between the visit and the registration above
		// changed the counter; it will not wake the wait.
		for _, i := range ready {
			if c.local.snapshot(keys[i]) != st[i].snap {
				return ready, timedOut, nil
			}
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-woken:
	case <-t.C:
		if expiring >= 0 && d == expiry {
			c.logLeaseExpired(keys[expiring])
		}
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	return ready, timedOut, nil
}

// redisDown answers keys keys[i], i in idx, when Redis is unavailable: the
// loader's values, written nowhere, when the policy is FailOpen; the error
// otherwise.
func (c *Cache[K, V]) redisDown(ctx context.Context, ks []K, keys []string, idx []int, err error, finish func(int, *entry[V], error), detach func(int)) {
	if !errors.Is(err, errCircuitOpen) {
		c.stats.redisErrors.Add(uint64(len(idx)))
	}
	if c.outage > 0 {
		rest := idx[:0:0]
		for _, i := range idx {
			if e := c.outageCopy(ks[i]); e != nil {
				finish(i, e, nil)
				continue
			}
			rest = append(rest, i)
		}
		if idx = rest; len(idx) == 0 {
			return
		}
	}
	if c.onDown == FailFast || c.load == nil {
		for _, i := range idx {
			finish(i, nil, fmt.Errorf("cache: get %s: %w", keys[i], err))
		}
		return
	}
	c.loadDirect(ctx, ks, keys, idx, directFallback, finish, detach)
}

// skipPending answers the keys keys[i], i in todo, whose invalidation is
// pending (see pending.go) from the loader, without reading or writing
// Redis, and returns the others.
func (c *Cache[K, V]) skipPending(ctx context.Context, ks []K, keys []string, todo []int, finish func(int, *entry[V], error), detach func(int)) []int {
	if c.client.pending.len() == 0 {
		return todo
	}
	var pend []int
	rest := todo[:0:0]
	for _, i := range todo {
		if c.client.pending.has(keys[i]) {
			pend = append(pend, i)
		} else {
			rest = append(rest, i)
		}
	}
	if len(pend) == 0 {
		return todo
	}
	if c.load == nil {
		for _, i := range pend {
			finish(i, nil, fmt.Errorf("cache: %s: %w (invalidated, and no loader)", keys[i], ErrNotFound))
		}
		return rest
	}
	c.loadDirect(ctx, ks, keys, pend, directPending, finish, detach)
	return rest
}

// deleteUnreadable deletes the keys keys[i], i in idx, that held bytes
// nobody can read, if they still hold them. It returns the keys to visit
// again, and those Redis would not delete them from (the caller loads them
// without writing).
func (c *Cache[K, V]) deleteUnreadable(ctx context.Context, keys []string, idx []int, st []keyState) (again, refused []int) {
	rc, err := c.redis()
	if err != nil {
		return idx, nil // the next visit meets the same error
	}
	execs := make([]rueidis.LuaExec, len(idx))
	arena := newExecArena(len(idx), writeExecStrings)
	for j, i := range idx {
		execs[j] = writeExec(arena, keys[i], st[i].raw, nil, 0)
	}
	rctx, cancel := c.budget(ctx, len(execs))
	defer cancel()
	for j, res := range evalMany(rctx, rc, writeScript, writeSHA, execs) {
		i := idx[j]
		c.client.wrote(keys[i])
		if _, ok := rueidis.IsRedisErr(res.Error()); ok {
			refused = append(refused, i)
			continue
		}
		again = append(again, i)
	}
	return again, refused
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pick returns s[i] for each i in idx.
func pick[T any](s []T, idx []int) []T {
	out := make([]T, len(idx))
	for j, i := range idx {
		out[j] = s[i]
	}
	return out
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
