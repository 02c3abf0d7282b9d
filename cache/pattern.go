package cache

import (
	"context"
	"fmt"

	"github.com/aside-go/aside/internal/keyname"
	"github.com/aside-go/aside/invalidation"
)

// PatternOption tunes one [Cache.InvalidatePattern].
type PatternOption func(*patternOptions)

type patternOptions struct {
	invalidation.Options
	err error // the first invalid option
}

// WithProgress reports the totals after each batch of a pattern invalidation
// (nil: no reports).
func WithProgress(f func(invalidation.Progress)) PatternOption {
	return func(o *patternOptions) { o.Progress = f }
}

// WithScanCount sets the COUNT hint of each SCAN call (default 1000); n must
// be at least 1.
func WithScanCount(n int) PatternOption {
	return func(o *patternOptions) {
		if n < 1 && o.err == nil {
			o.err = fmt.Errorf("%w: WithScanCount(%d): the count must be at least 1", ErrInvalidOptions, n)
		}
		o.Count = n
	}
}

// InvalidatePattern removes every key of the cache whose part after the
// namespace matches the Redis glob pattern, on every primary, and returns how
// many it removed (see package invalidation: SCAN with MATCH and COUNT, never
// KEYS; batched single-key UNLINKs). The pattern cannot reach outside the
// namespace. Escape the parts of it that come from users with
// [invalidation.Escape], so that they match only themselves:
//
//	users.InvalidatePattern(ctx, "tenant:"+invalidation.Escape(tenant)+":*")
//
// Keys that existed when it started and were not written again meanwhile are
// all gone when it returns; keys written while it runs may survive it.
//
// A pattern that Redis would read otherwise than it is written (an unclosed
// '[', a trailing '\'; see [invalidation.CheckPattern]), or an empty one,
// fails with an error wrapping [invalidation.ErrPattern], as an invalid
// option fails with one wrapping [ErrInvalidOptions]; nothing is removed.
func (c *Cache[K, V]) InvalidatePattern(ctx context.Context, pattern string, opts ...PatternOption) (int64, error) {
	if c.rec == nil {
		return c.invalidatePattern(ctx, pattern, opts...)
	}
	ctx, end := c.start(ctx, OpInvalidatePattern, 0, 0)
	n, err := c.invalidatePattern(ctx, pattern, opts...)
	end(Result{Err: err})
	return n, err
}

func (c *Cache[K, V]) invalidatePattern(ctx context.Context, pattern string, opts ...PatternOption) (int64, error) {
	o := patternOptions{Options: invalidation.Options{
		OnDelete: func(keys []string) {
			for _, key := range keys {
				c.client.wrote(key)
			}
		},
		// Redis may still hold them: pending until a deletion sent again
		// is confirmed (see pending.go).
		OnFail: func(keys []string) {
			for _, key := range keys {
				c.client.unconfirmed(key, c)
			}
		},
	}}
	for _, f := range opts {
		f(&o)
	}
	if o.err != nil {
		return 0, fmt.Errorf("cache: invalidate pattern %q: %w", pattern, o.err)
	}
	if err := invalidation.CheckPattern(pattern); err != nil {
		return 0, fmt.Errorf("cache: invalidate pattern %q: %w", pattern, err)
	}
	// The namespace holds no glob metacharacters (New checks), so the
	// prefix matches only itself.
	//
	// When the call returns, whatever it did in Redis, every key of the
	// namespace that the pattern could match has changed for this process
	// (read-your-writes): its SCAN meets only the keys Redis holds, and a
	// key being loaded may be absent — in plain mode its lease is a key of
	// its own — or written while the SCAN runs.
	full := c.ns + pattern
	defer c.client.changedWhere(c.ns[:len(c.ns)-1], func(key string) bool { return invalidation.Match(full, key) })
	rc, err := c.redis()
	if err != nil {
		return 0, fmt.Errorf("cache: invalidate pattern %q: %w", pattern, err)
	}
	if c.plain {
		// In plain mode the loads' leases are keys of their own: they go
		// first — every lease of the namespace, a safe excess (a load
		// whose lease is gone writes nothing, and its waiters load again)
		// — so that no load that read the source before this call writes
		// after its key was removed.
		lo := invalidation.Options{Count: o.Count, Batch: o.Batch, OnFail: func(leases []string) {
			// A lease Redis may still hold lets its load write: its
			// value key is pending.
			for _, lk := range leases {
				if vk, _, ok := valueKeyOf(lk); ok {
					c.client.unconfirmed(vk, c)
				}
			}
		}}
		if _, err := invalidation.Pattern(ctx, rc, c.ns[:len(c.ns)-1]+keyname.LeaseInfix+"*", lo); err != nil {
			return 0, fmt.Errorf("cache: invalidate pattern %q: leases: %w", pattern, c.redisErr(ctx, err))
		}
	}
	n, err := invalidation.Pattern(ctx, rc, full, o.Options)
	if err != nil {
		return n, fmt.Errorf("cache: invalidate pattern %q: %w", pattern, c.redisErr(ctx, err))
	}
	return n, nil
}

// InvalidatePrefix removes every key of the cache whose part after the
// namespace starts with prefix, taken literally.
func (c *Cache[K, V]) InvalidatePrefix(ctx context.Context, prefix string, opts ...PatternOption) (int64, error) {
	return c.InvalidatePattern(ctx, invalidation.Escape(prefix)+"*", opts...)
}
