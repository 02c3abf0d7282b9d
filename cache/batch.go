package cache

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/aside-go/aside/internal/envelope"
	"github.com/aside-go/aside/loader"
)

// GetMany returns the values of keys, as Get would for each, in few round
// trips: copies in process memory first; then, for the rest, one pipeline of
// single-key commands (so on a cluster each goes to its own slot's owner —
// never a cross-slot MGET). With a loader that command is SET NX GET, which
// returns what a key holds or takes its lease (see Get); the values found are
// then tracked by a background round of client-side cached GETs, which keeps
// decoded copies for the next calls. The missing keys, less those another
// goroutine of this process is already loading, go to the batch loader in
// one call, and its results are written in one pipeline, each with its own
// TTL and only where the lease still stands. Without a loader the pipeline is
// client-side cached GETs. A batch of misses costs two round trips and one
// loader call, whatever its size.
//
// Keys that are not found are absent from the map. Keys that failed are
// absent too, and named in the returned error (errors.Join of one error per
// key); the keys that succeeded are returned all the same. A key named twice
// is read once.
func (c *Cache[K, V]) GetMany(ctx context.Context, keys []K) (map[K]V, error) {
	out := make(map[K]V, len(keys))
	var rest []K
	if c.local != nil {
		now := c.nanos()
		var hits, notFound uint64
		for _, k := range keys {
			if e, ok := c.local.get(k, now); ok && !e.due(now) {
				hits++
				switch {
				case e.notFound:
					notFound++
				case c.clone != nil:
					out[k] = c.clone(e.v)
				default:
					out[k] = e.v
				}
				if e.stale {
					c.stats.staleServed.Add(1)
				}
				continue
			}
			rest = append(rest, k)
		}
		c.stats.localHits.Add(hits)
		if notFound > 0 {
			c.stats.notFoundHits.Add(notFound)
		}
	} else {
		rest = keys
	}
	if len(rest) == 0 {
		return out, nil
	}
	rest = unique(rest)
	redisKeys := make([]string, len(rest))
	snaps := make([]uint64, len(rest))
	for i, k := range rest {
		redisKeys[i] = c.Key(k)
		if c.local != nil {
			snaps[i] = c.local.snapshot(redisKeys[i])
		}
	}

	var errs []error
	var miss, down []int
	if !c.breaker.allow() {
		c.stats.shortCircuits.Add(uint64(len(rest)))
		if c.onDown == FailFast || c.batch == nil {
			for _, key := range redisKeys {
				errs = append(errs, fmt.Errorf("cache: get %s: %w", key, errCircuitOpen))
			}
			return out, errors.Join(errs...)
		}
		down = make([]int, len(rest))
		for i := range down {
			down[i] = i
		}
		c.stats.fallbacks.Add(uint64(len(down)))
		errs = c.loadMany(ctx, rest, redisKeys, down, out, errs)
		return out, errors.Join(errs...)
	}
	if c.batch != nil {
		errs = c.getManyLeased(ctx, rest, redisKeys, out, errs)
		return out, errors.Join(errs...)
	}
	results, tracked := c.readMany(ctx, redisKeys)
	var firstErr error
	for _, res := range results {
		if err := classify(nilIfRedisNil(res.Error())); err != nil {
			firstErr = err
			break
		}
	}
	c.breaker.record(firstErr)
	for i, res := range results {
		k, key := rest[i], redisKeys[i]
		raw, err := res.AsBytes()
		switch {
		case err == nil:
			e, derr := c.decode(key, raw)
			if derr == nil {
				c.stats.redisHits.Add(1)
				if c.local != nil && tracked[i] {
					if pxat := res.CachePXAT(); pxat > 0 {
						e.expireAt = pxat * int64(time.Millisecond)
					}
					c.local.store(k, e, snaps[i])
				}
				if e.notFound {
					c.stats.notFoundHits.Add(1)
				} else {
					out[k] = c.cloned(e.v)
				}
				continue
			}
			if !errors.Is(derr, errLeaseHeld) {
				c.stats.decodeErrors.Add(1)
				if c.batch == nil {
					errs = append(errs, derr)
					continue
				}
			}
			miss = append(miss, i)
		case rueidis.IsRedisNil(err):
			miss = append(miss, i)
		default:
			err = classify(err)
			if errors.Is(err, ErrUnavailable) && c.onDown == FailOpen && c.batch != nil {
				down = append(down, i)
				continue
			}
			errs = append(errs, fmt.Errorf("cache: get %s: %w", key, err))
		}
	}
	if len(miss) > 0 {
		c.stats.misses.Add(uint64(len(miss)))
		errs = c.loadMany(ctx, rest, redisKeys, miss, out, errs)
	}
	if len(down) > 0 {
		c.stats.fallbacks.Add(uint64(len(down)))
		errs = c.loadMany(ctx, rest, redisKeys, down, out, errs)
	}
	return out, errors.Join(errs...)
}

// getManyLeased is GetMany's Redis part with a loader, as getSlow is Get's:
// one pipeline of SET NX GET reads every key and takes the lease of each
// missing one. Values found are returned, and tracked by a background
// client-side cached read; the missing keys this call leads (less those
// another goroutine of the process is loading: their leases are released)
// are loaded in one batch-loader call and written in one pipeline; keys
// another process holds are waited for like Get waits.
func (c *Cache[K, V]) getManyLeased(ctx context.Context, rest []K, redisKeys []string, out map[K]V, errs []error) []error {
	leases := make([][]byte, len(rest))
	cmds := make(rueidis.Commands, len(rest))
	for i, key := range redisKeys {
		leases[i] = newLease()
		cmds[i] = c.acquireCmd(key, leases[i])
	}
	results := c.rc.DoMulti(ctx, cmds...)
	var held, contended, down, found, lost []int
	var firstErr error
	for i, res := range results {
		raw, err := res.AsBytes()
		switch {
		case rueidis.IsRedisNil(err):
			held = append(held, i)
		case err == nil:
			e, derr := c.decode(redisKeys[i], raw)
			if derr != nil {
				contended = append(contended, i) // leased by another, or unreadable
				continue
			}
			found = append(found, i)
			v, err := c.served(ctx, rest[i], e, rueidis.RedisResult{}, false, 0)
			if err == nil {
				out[rest[i]] = c.cloned(v)
			}
		default:
			if _, ok := rueidis.IsRedisErr(err); ok {
				contended = append(contended, i) // refused: fill reads with GET
				continue
			}
			lost = append(lost, i)
			if firstErr == nil {
				firstErr = classify(err)
			}
			if errors.Is(classify(err), ErrUnavailable) && c.onDown == FailOpen {
				down = append(down, i)
				continue
			}
			errs = append(errs, fmt.Errorf("cache: get %s: %w", redisKeys[i], classify(err)))
		}
	}
	c.breaker.record(firstErr)
	if len(lost) > 0 {
		c.releaseLater(ctx, pick(redisKeys, lost), pick(leases, lost))
	}
	c.trackManyInBackground(ctx, rest, redisKeys, found)

	if len(held) > 0 {
		c.stats.misses.Add(uint64(len(held)))
		// Claim each held key as the process's flight: keys another
		// goroutine already loads give their lease back and wait for it.
		flights := make([]*loader.Flight[V], len(rest))
		var lead, join []int
		for _, i := range held {
			fl, leader := c.flights.Claim(redisKeys[i])
			flights[i] = fl
			if leader {
				lead = append(lead, i)
			} else {
				join = append(join, i)
			}
		}
		if len(join) > 0 {
			c.releaseLeases(ctx, pick(redisKeys, join), pick(leases, join))
		}
		c.loadLed(ctx, rest, redisKeys, flights, lead, pick(leases, lead))
		for _, i := range append(lead, join...) {
			v, err := flights[i].Wait(ctx)
			errs = c.collect(out, rest[i], v, err, errs)
		}
	}
	errs = c.fillMany(ctx, rest, redisKeys, contended, out, errs)
	if len(down) > 0 {
		c.stats.fallbacks.Add(uint64(len(down)))
		errs = c.loadMany(ctx, rest, redisKeys, down, out, errs)
	}
	return errs
}

// trackManyInBackground is trackInBackground for the keys rest[i], i in idx,
// in one round of client-side cached reads.
func (c *Cache[K, V]) trackManyInBackground(ctx context.Context, rest []K, redisKeys []string, idx []int) {
	if c.local == nil || len(idx) == 0 {
		return
	}
	var ks []K
	var keys []string
	for _, i := range idx {
		if _, busy := c.tracking.LoadOrStore(redisKeys[i], struct{}{}); !busy {
			ks = append(ks, rest[i])
			keys = append(keys, redisKeys[i])
		}
	}
	if len(keys) == 0 {
		return
	}
	untrack := func() {
		for _, key := range keys {
			c.tracking.Delete(key)
		}
	}
	started := c.spawn(func() {
		defer untrack()
		tctx, cancel := c.detached(ctx, writeTimeout)
		defer cancel()
		snaps := make([]uint64, len(keys))
		for j, key := range keys {
			snaps[j] = c.local.snapshot(key)
		}
		results, tracked := c.readMany(tctx, keys)
		for j, res := range results {
			raw, err := res.AsBytes()
			if err != nil || !tracked[j] {
				continue
			}
			e, derr := c.decode(keys[j], raw)
			if derr != nil {
				continue
			}
			if pxat := res.CachePXAT(); pxat > 0 {
				e.expireAt = pxat * int64(time.Millisecond)
			}
			c.local.store(ks[j], e, snaps[j])
		}
	})
	if !started {
		untrack()
	}
}

// loadMany loads the keys rest[i] for i in idx while Redis is unavailable
// (or, without a loader, reports them not found): the keys another goroutine
// of this process is loading are waited for, the others are loaded in one
// batch-loader call, and nothing is written. Values go to out, failures to
// the returned errs.
func (c *Cache[K, V]) loadMany(ctx context.Context, rest []K, redisKeys []string, idx []int, out map[K]V, errs []error) []error {
	if c.batch == nil {
		for _, i := range idx {
			errs = append(errs, fmt.Errorf("cache: %s: %w (no loader)", redisKeys[i], ErrNotFound))
		}
		return errs
	}
	var lead, join []int
	flights := make([]*loader.Flight[V], len(rest))
	for _, i := range idx {
		fl, leader := c.flights.Claim(redisKeys[i])
		flights[i] = fl
		if leader {
			lead = append(lead, i)
		} else {
			join = append(join, i)
		}
	}
	c.loadLed(ctx, rest, redisKeys, flights, lead, nil)
	for _, i := range append(lead, join...) {
		v, err := flights[i].Wait(ctx)
		errs = c.collect(out, rest[i], v, err, errs)
	}
	return errs
}

// loadLed loads the keys rest[i], i in idx, whose flights (flights[i]) the
// caller leads, in one batch-loader call on a background goroutine detached
// from the caller's cancellation: the callers that joined those flights must
// not fail because this one went away, and the leases must be written or
// released whatever happens. The caller then waits on the flights like any
// joiner.
func (c *Cache[K, V]) loadLed(ctx context.Context, rest []K, redisKeys []string, flights []*loader.Flight[V], idx []int, leases [][]byte) {
	if len(idx) == 0 {
		return
	}
	load := func() {
		lctx, cancel := c.detached(ctx, 0)
		defer cancel()
		// Every led flight is finished, whatever happens in the load:
		// Finish is a no-op on a flight already finished.
		defer func() {
			for _, i := range idx {
				flights[i].Finish(*new(V), errors.New("cache: batch load did not complete"))
			}
		}()
		c.batchLoad(lctx, rest, redisKeys, idx, leases, func(i int, v V, err error) { flights[i].Finish(v, err) })
	}
	if !c.spawn(load) {
		load() // the client is closing: no background work
	}
}

// batchLoad loads the keys rest[i], i in idx, in one batch-loader call and
// finishes their flights. With leases (one per key) it writes the results in
// one pipeline, each key only if it still holds its lease, and releases the
// leases of the keys that failed.
func (c *Cache[K, V]) batchLoad(ctx context.Context, rest []K, redisKeys []string, idx []int, leases [][]byte, finish func(int, V, error)) {
	c.stats.loads.Add(1)
	loaded, err := c.safeBatch(ctx, pick(rest, idx))
	var perKey map[K]error
	if err != nil {
		c.stats.loadErrors.Add(1)
		perKey = loader.KeyErrors[K](err)
	}
	// The flights finish after the writes, as a single Get's do: whoever
	// reads the key once its flight finished finds the value (or no lease)
	// in Redis.
	vals := make([]V, len(idx))
	errs := make([]error, len(idx))
	defer func() {
		for j, i := range idx {
			finish(i, vals[j], errs[j])
		}
	}()
	var execs []rueidis.LuaExec
	var execKeys []string
	var execValue []bool
	for j, i := range idx {
		k, key := rest[i], redisKeys[i]
		var data []byte
		var ttl time.Duration
		if v, ok := loaded[k]; ok {
			vals[j] = v
			if eb := c.encodeValue(key, v); eb.err == nil {
				data, ttl = eb.data, eb.ttl
			} else {
				c.stats.writeErrors.Add(1)
			}
		} else {
			var kerr error
			switch {
			case perKey[k] != nil:
				kerr = perKey[k]
			case err != nil && perKey == nil:
				kerr = err
			}
			if kerr != nil && !errors.Is(kerr, ErrNotFound) {
				errs[j] = fmt.Errorf("cache: load %s: %w", key, kerr)
			} else {
				errs[j] = fmt.Errorf("cache: %s: %w", key, ErrNotFound)
				if d := c.ttl.NegativeTTL(c.keyPart(key)); d > 0 {
					data, ttl = envelope.Encode(envelope.NotFound, false, time.Time{}, nil), d
				}
			}
		}
		if leases == nil {
			continue // Redis is down: write nothing
		}
		ttlArg := "0"
		if data != nil {
			ttlArg = strconv.FormatInt(ms(ttl), 10)
		}
		execs = append(execs, rueidis.LuaExec{Keys: []string{key}, Args: []string{string(leases[j]), string(data), ttlArg}})
		execKeys = append(execKeys, key)
		execValue = append(execValue, data != nil)
	}
	if len(execs) == 0 {
		return
	}
	wctx, cancel := c.detached(ctx, writeTimeout)
	defer cancel()
	for j, res := range evalMany(wctx, c.rc, replaceScript, replaceSHA, execs) {
		c.wrote(execKeys[j])
		n, err := res.AsInt64()
		switch {
		case err != nil:
			c.stats.writeErrors.Add(1)
		case n == 0 && execValue[j]:
			c.stats.discardedFills.Add(1)
		}
	}
}

// safeBatch is the batch loader with a panic turned into an error for every
// key (wrapping loader.ErrPanic), so that the leases taken for the batch are
// released and its waiters get an answer.
func (c *Cache[K, V]) safeBatch(ctx context.Context, ks []K) (m map[K]V, err error) {
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, &loader.PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return c.batch(ctx, ks)
}

// SetMany writes every value of m in one pipeline, each key with the TTL the
// policy gives it (MSET could not carry them) or the one [WithTTL] sets, and
// the tags [WithTags] attaches. Keys that failed are named in the returned
// error; the others were written.
func (c *Cache[K, V]) SetMany(ctx context.Context, m map[K]V, opts ...Option) error {
	co := callOpts(opts)
	if err := co.check(); err != nil {
		return fmt.Errorf("cache: set many: %w", err)
	}
	var errs []error
	var cmds rueidis.Commands
	var keys []string
	var owners []int // index in keys of the SET each command belongs to
	for k, v := range m {
		key := c.Key(k)
		eb := c.encodeValue(key, v)
		if eb.err != nil {
			errs = append(errs, eb.err)
			continue
		}
		eb = co.apply(eb)
		keys = append(keys, key)
		for _, cmd := range c.writeCmds(key, eb, co.tags) {
			cmds = append(cmds, cmd)
			owners = append(owners, len(keys)-1)
		}
	}
	failed := make([]error, len(keys))
	for i, res := range c.rc.DoMulti(ctx, cmds...) {
		if err := res.Error(); err != nil && failed[owners[i]] == nil {
			failed[owners[i]] = fmt.Errorf("cache: set %s: %w", keys[owners[i]], classify(err))
		}
	}
	for i, key := range keys {
		c.wrote(key)
		if failed[i] != nil {
			errs = append(errs, failed[i])
		}
	}
	c.maybePruneTags(ctx, co.tags)
	return errors.Join(errs...)
}

// fillMany reads or loads the keys rest[i], i in idx, one fill each — keys
// another process holds the lease of, or that Redis refused — concurrently
// (at most fillManyConcurrency at a time), so that their waits overlap
// instead of adding up.
func (c *Cache[K, V]) fillMany(ctx context.Context, rest []K, redisKeys []string, idx []int, out map[K]V, errs []error) []error {
	if len(idx) == 0 {
		return errs
	}
	vals := make([]V, len(idx))
	fails := make([]error, len(idx))
	slots := make(chan struct{}, fillManyConcurrency)
	var wg sync.WaitGroup
	for j, i := range idx {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			k, key := rest[i], redisKeys[i]
			vals[j], _, fails[j] = c.flights.Do(ctx, key, func(ctx context.Context) (V, error) {
				return c.fill(ctx, k, key)
			})
		}()
	}
	wg.Wait()
	for j, i := range idx {
		errs = c.collect(out, rest[i], vals[j], fails[j], errs)
	}
	return errs
}

// fillManyConcurrency bounds the concurrent fills of one GetMany.
const fillManyConcurrency = 16

// collect puts the outcome of one key of a batch in out (a value), nowhere
// (not found), or errs (a failure).
func (c *Cache[K, V]) collect(out map[K]V, k K, v V, err error, errs []error) []error {
	switch {
	case err == nil:
		out[k] = c.cloned(v)
	case errors.Is(err, ErrNotFound):
	default:
		errs = append(errs, err)
	}
	return errs
}

// cloned applies the Clone option.
func (c *Cache[K, V]) cloned(v V) V {
	if c.clone != nil {
		return c.clone(v)
	}
	return v
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
