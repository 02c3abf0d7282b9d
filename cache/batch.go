package cache

import (
	"context"
	"errors"
	"fmt"
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
		for _, k := range keys {
			if e, ok := c.local.get(k, now); ok {
				c.stats.localHits.Add(1)
				if e.notFound {
					c.stats.notFoundHits.Add(1)
				} else {
					out[k] = c.cloned(e.v)
				}
				continue
			}
			rest = append(rest, k)
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
	results, tracked := c.readMany(ctx, redisKeys)
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

// loadMany loads the keys rest[i] for i in idx: the ones no other goroutine
// of the process is loading in one batch-loader call, whose results it writes
// back in one pipeline when write is set; the others by waiting for the
// flights that load them. Values go to out, failures to the returned errs.
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
	if len(lead) > 0 {
		// Every claimed flight is finished, whatever happens below, or its
		// joiners would wait until their contexts end.
		finished := false
		defer func() {
			if !finished {
				for _, i := range lead {
					flights[i].Finish(*new(V), errors.New("cache: batch load did not complete"))
				}
			}
		}()
		ks := make([]K, len(lead))
		for j, i := range lead {
			ks[j] = rest[i]
		}
		c.stats.loads.Add(1)
		loaded, err := c.batch(ctx, ks)
		var perKey map[K]error
		if err != nil {
			c.stats.loadErrors.Add(1)
			perKey = loader.KeyErrors[K](err)
		}
		var writes []entryWrite
		for _, i := range lead {
			k, key := rest[i], redisKeys[i]
			if v, ok := loaded[k]; ok {
				out[k] = c.cloned(v)
				flights[i].Finish(v, nil)
				if write {
					writes = append(writes, entryWrite{key: key, eb: c.encodeValue(key, v)})
				}
				continue
			}
			var kerr error
			switch {
			case perKey[k] != nil:
				kerr = perKey[k]
			case err != nil && perKey == nil:
				kerr = err
			}
			if kerr != nil && !errors.Is(kerr, ErrNotFound) {
				kerr = fmt.Errorf("cache: load %s: %w", key, kerr)
				errs = append(errs, kerr)
				flights[i].Finish(*new(V), kerr)
				continue
			}
			flights[i].Finish(*new(V), fmt.Errorf("cache: %s: %w", key, ErrNotFound))
			if d := c.ttl.NegativeTTL(c.keyPart(key)); write && d > 0 {
				writes = append(writes, entryWrite{key: key, eb: entryBytes{data: envelope.Encode(envelope.NotFound, false, time.Time{}, nil), ttl: d}})
			}
		}
		finished = true
		c.writeMany(ctx, writes)
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

// entryWrite is one key of a pipelined write.
type entryWrite struct {
	key string
	eb  entryBytes
}

// writeMany writes loaded entries back in one pipeline; failures are counted.
func (c *Cache[K, V]) writeMany(ctx context.Context, writes []entryWrite) {
	if len(writes) == 0 {
		return
	}
	cmds := make(rueidis.Commands, 0, len(writes))
	keys := make([]string, 0, len(writes))
	for _, w := range writes {
		if w.eb.err != nil {
			c.stats.writeErrors.Add(1)
			continue
		}
		cmds = append(cmds, c.setCmd(w.key, w.eb))
		keys = append(keys, w.key)
	}
	for i, res := range c.rc.DoMulti(ctx, cmds...) {
		c.wrote(keys[i])
		if res.Error() != nil {
			c.stats.writeErrors.Add(1)
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
