package cache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/aside-go/aside/internal/envelope"
	"github.com/aside-go/aside/loader"
)

// GetMany returns the values of keys, as Get would for each, in few round
// trips: copies in process memory first; the rest in one round of
// client-side cached GETs (one single-key GET per key, so on a cluster each
// goes to its own slot's owner and is tracked for invalidation — never a
// cross-slot MGET); and the keys still missing, less those another goroutine
// of this process is already loading, in one call of the batch loader, whose
// results are written back in one pipeline, each with its own TTL.
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
		errs = c.loadMany(ctx, rest, redisKeys, down, false, out, errs)
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
		errs = c.loadMany(ctx, rest, redisKeys, miss, true, out, errs)
	}
	if len(down) > 0 {
		c.stats.fallbacks.Add(uint64(len(down)))
		errs = c.loadMany(ctx, rest, redisKeys, down, false, out, errs)
	}
	return out, errors.Join(errs...)
}

// loadMany loads the keys rest[i] for i in idx. The keys another goroutine of
// this process is loading are waited for. Of the others, the keys whose lease
// this call takes (one pipeline) are loaded in one batch-loader call and
// written in one pipeline, each only if it still holds the lease; keys another
// process is loading are waited for like Get waits. With write unset (Redis
// is down) it loads every key directly and writes nothing. Values go to out,
// failures to the returned errs.
func (c *Cache[K, V]) loadMany(ctx context.Context, rest []K, redisKeys []string, idx []int, write bool, out map[K]V, errs []error) []error {
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
	// Every claimed flight is finished, whatever happens below, or its
	// joiners would wait until their contexts end. Finish is a no-op on a
	// flight already finished.
	defer func() {
		for _, i := range lead {
			flights[i].Finish(*new(V), errors.New("cache: batch load did not complete"))
		}
	}()
	finish := func(i int, v V, err error) {
		flights[i].Finish(v, err)
		switch {
		case err == nil:
			out[rest[i]] = c.cloned(v)
		case errors.Is(err, ErrNotFound):
		default:
			errs = append(errs, err)
		}
	}

	held := lead
	var leases [][]byte
	var contended []int
	if write && len(lead) > 0 {
		held, leases, contended = c.acquireMany(ctx, rest, redisKeys, lead, finish)
	}
	if len(held) > 0 {
		c.batchLoad(ctx, rest, redisKeys, held, leases, finish)
	}
	for _, i := range contended {
		v, err := c.fill(ctx, rest[i], redisKeys[i])
		finish(i, v, err)
	}
	for _, i := range join {
		v, err := flights[i].Wait(ctx)
		switch {
		case err == nil:
			out[rest[i]] = c.cloned(v)
		case errors.Is(err, ErrNotFound):
		default:
			errs = append(errs, err)
		}
	}
	return errs
}

// acquireMany tries to take the leases of the keys rest[i], i in idx, in one
// pipeline. It returns the keys it holds with their leases, and the keys
// another process holds; keys found written meanwhile are finished at once.
func (c *Cache[K, V]) acquireMany(ctx context.Context, rest []K, redisKeys []string, idx []int, finish func(int, V, error)) (held []int, leases [][]byte, contended []int) {
	cmds := make(rueidis.Commands, len(idx))
	all := make([][]byte, len(idx))
	for j, i := range idx {
		all[j] = newLease()
		cmds[j] = c.acquireCmd(redisKeys[i], all[j])
	}
	for j, res := range c.rc.DoMulti(ctx, cmds...) {
		i := idx[j]
		old, err := res.AsBytes()
		switch {
		case rueidis.IsRedisNil(err):
			held = append(held, i)
			leases = append(leases, all[j])
		case err != nil:
			v, err := c.redisFailed(ctx, rest[i], redisKeys[i], err)
			finish(i, v, err)
		default:
			if e, derr := c.decode(redisKeys[i], old); derr == nil {
				v, err := c.served(ctx, rest[i], e, rueidis.RedisResult{}, false, 0)
				finish(i, v, err)
			} else {
				contended = append(contended, i)
			}
		}
	}
	return held, leases, contended
}

// batchLoad loads the keys rest[i], i in idx, in one batch-loader call and
// finishes their flights. With leases (one per key) it writes the results in
// one pipeline, each key only if it still holds its lease, and releases the
// leases of the keys that failed.
func (c *Cache[K, V]) batchLoad(ctx context.Context, rest []K, redisKeys []string, idx []int, leases [][]byte, finish func(int, V, error)) {
	ks := make([]K, len(idx))
	for j, i := range idx {
		ks[j] = rest[i]
	}
	c.stats.loads.Add(1)
	loaded, err := c.batch(ctx, ks)
	var perKey map[K]error
	if err != nil {
		c.stats.loadErrors.Add(1)
		perKey = loader.KeyErrors[K](err)
	}
	var execs []rueidis.LuaExec
	var execKeys []string
	var execValue []bool
	for j, i := range idx {
		k, key := rest[i], redisKeys[i]
		var data []byte
		var ttl time.Duration
		if v, ok := loaded[k]; ok {
			finish(i, v, nil)
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
				finish(i, *new(V), fmt.Errorf("cache: load %s: %w", key, kerr))
			} else {
				finish(i, *new(V), fmt.Errorf("cache: %s: %w", key, ErrNotFound))
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
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
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

// cloned applies the Clone option.
func (c *Cache[K, V]) cloned(v V) V {
	if c.clone != nil {
		return c.clone(v)
	}
	return v
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
