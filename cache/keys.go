package cache

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/redis/rueidis"
)

// NoExpiry is what [Cache.TTL] returns for a key that exists without an
// expiry (PTTL's -1). It is the longest duration there is, so comparisons
// such as ttl > time.Hour read naturally.
const NoExpiry time.Duration = math.MaxInt64

// Delete removes keys and returns how many existed, as DEL does. It works on
// any topology: each key is its own command, sent in one pipeline, so keys of
// different cluster slots never form a cross-slot command.
func (c *Cache[K, V]) Delete(ctx context.Context, ks ...K) (int, error) {
	return c.del(ctx, "delete", ks)
}

// Invalidate removes keys so that the next Get of each reloads it, in every
// process: Redis pushes the invalidation to every client caching them. It is
// Delete without the count.
func (c *Cache[K, V]) Invalidate(ctx context.Context, ks ...K) error {
	_, err := c.del(ctx, "invalidate", ks)
	return err
}

func (c *Cache[K, V]) del(ctx context.Context, op string, ks []K) (int, error) {
	if len(ks) == 0 {
		return 0, nil
	}
	rc, err := c.redis()
	if err != nil {
		return 0, fmt.Errorf("cache: %s: %w", op, err)
	}
	keys := make([]string, len(ks))
	cmds := make(rueidis.Commands, len(ks))
	for i, k := range ks {
		keys[i] = c.Key(k)
		cmds[i] = rc.B().Del().Key(keys[i]).Build()
	}
	cmds = append(cmds, c.leaseDels(rc, keys)...) // plain mode: the leases go too
	n := 0
	var errs []error
	results := c.doMulti(ctx, rc, cmds...)
	for i, res := range results[len(keys):] {
		if err := res.Error(); err != nil {
			errs = append(errs, fmt.Errorf("cache: %s %s: %w", op, leaseKey(c.ns, keys[i]), c.redisErr(ctx, err)))
		}
	}
	for i, res := range results[:len(keys)] {
		c.client.wrote(keys[i])
		d, err := res.AsInt64()
		if err != nil {
			errs = append(errs, fmt.Errorf("cache: %s %s: %w", op, keys[i], c.redisErr(ctx, err)))
			continue
		}
		n += int(d)
	}
	return n, errors.Join(errs...)
}

// Exists returns how many of the keys hold a value, as EXISTS does: a key
// named twice counts twice. A key holding a not-found marker (or a load in
// progress) does not count: it has no value. Copies in process memory answer
// first; the others are read in one round of client-side cached GETs.
func (c *Cache[K, V]) Exists(ctx context.Context, ks ...K) (int, error) {
	n := 0
	var rest []string
	now := c.nanos()
	for _, k := range ks {
		if c.local != nil && c.client.heardWithin(c.maxSilence) {
			if e, ok := c.local.get(k, now); ok {
				if !e.notFound {
					n++
				}
				continue
			}
		}
		rest = append(rest, c.Key(k))
	}
	if len(rest) == 0 {
		return n, nil
	}
	rc, err := c.redis()
	if err != nil {
		return n, fmt.Errorf("cache: exists: %w", err)
	}
	var errs []error
	cmds := make(rueidis.Commands, len(rest))
	for i, key := range rest {
		cmds[i] = rc.B().Get().Key(key).Build()
	}
	for i, res := range c.doMulti(ctx, rc, cmds...) {
		raw, err := res.AsBytes()
		switch {
		case err == nil:
			if holdsValue(raw) {
				n++
			}
		case rueidis.IsRedisNil(err):
		default:
			errs = append(errs, fmt.Errorf("cache: exists %s: %w", rest[i], c.redisErr(ctx, err)))
		}
	}
	return n, errors.Join(errs...)
}

// Expire sets the expiry of k to d from now (PEXPIRE, whole milliseconds) and
// reports whether k existed. As in Redis, a d of zero or less deletes k.
func (c *Cache[K, V]) Expire(ctx context.Context, k K, d time.Duration) (bool, error) {
	key := c.Key(k)
	return c.expiryOp(ctx, "expire", key, func(b rueidis.Builder) rueidis.Completed {
		return b.Pexpire().Key(key).Milliseconds(d.Milliseconds()).Build()
	})
}

// ExpireAt sets k to expire at t (PEXPIREAT, whole milliseconds) and reports
// whether k existed. As in Redis, a t in the past deletes k.
func (c *Cache[K, V]) ExpireAt(ctx context.Context, k K, t time.Time) (bool, error) {
	key := c.Key(k)
	return c.expiryOp(ctx, "expireat", key, func(b rueidis.Builder) rueidis.Completed {
		return b.Pexpireat().Key(key).MillisecondsTimestamp(t.UnixMilli()).Build()
	})
}

// Persist removes the expiry of k and reports whether it had one (PERSIST).
func (c *Cache[K, V]) Persist(ctx context.Context, k K) (bool, error) {
	key := c.Key(k)
	return c.expiryOp(ctx, "persist", key, func(b rueidis.Builder) rueidis.Completed {
		return b.Persist().Key(key).Build()
	})
}

func (c *Cache[K, V]) expiryOp(ctx context.Context, op, key string, build func(rueidis.Builder) rueidis.Completed) (bool, error) {
	rc, err := c.redis()
	if err != nil {
		return false, fmt.Errorf("cache: %s %s: %w", op, key, err)
	}
	n, err := c.do(ctx, rc, build(rc.B())).AsInt64()
	// An expiry change is a write: it may delete the key (a TTL of zero or
	// a past instant) or shorten its life below the copy's.
	c.client.wrote(key)
	if err != nil {
		return false, fmt.Errorf("cache: %s %s: %w", op, key, c.redisErr(ctx, err))
	}
	return n == 1, nil
}

// TTL returns the time k has left to live, to the millisecond (PTTL). A key
// without an expiry returns [NoExpiry]; a key that does not exist returns an
// error wrapping [ErrKeyMissing].
func (c *Cache[K, V]) TTL(ctx context.Context, k K) (time.Duration, error) {
	key := c.Key(k)
	rc, err := c.redis()
	if err != nil {
		return 0, fmt.Errorf("cache: ttl %s: %w", key, err)
	}
	n, err := c.do(ctx, rc, rc.B().Pttl().Key(key).Build()).AsInt64()
	switch {
	case err != nil:
		return 0, fmt.Errorf("cache: ttl %s: %w", key, c.redisErr(ctx, err))
	case n == -2:
		return 0, fmt.Errorf("cache: ttl %s: %w", key, ErrKeyMissing)
	case n == -1:
		return NoExpiry, nil
	case n < 0:
		return 0, fmt.Errorf("cache: ttl %s: unexpected PTTL reply %d", key, n)
	}
	return time.Duration(n) * time.Millisecond, nil
}
