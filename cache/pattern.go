package cache

import (
	"context"
	"fmt"

	"github.com/aside-go/aside/invalidation"
)

// PatternOption tunes one [Cache.InvalidatePattern].
type PatternOption func(*invalidation.Options)

// WithProgress reports the totals after each batch of a pattern invalidation.
func WithProgress(f func(invalidation.Progress)) PatternOption {
	return func(o *invalidation.Options) { o.Progress = f }
}

// WithScanCount sets the COUNT hint of each SCAN call (default 1000).
func WithScanCount(n int) PatternOption {
	return func(o *invalidation.Options) { o.Count = n }
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
func (c *Cache[K, V]) InvalidatePattern(ctx context.Context, pattern string, opts ...PatternOption) (int64, error) {
	o := invalidation.Options{OnDelete: func(keys []string) {
		for _, key := range keys {
			c.client.wrote(key)
		}
	}}
	for _, f := range opts {
		f(&o)
	}
	// The namespace holds no glob metacharacters (New checks), so the
	// prefix matches only itself.
	rc, err := c.redis()
	if err != nil {
		return 0, fmt.Errorf("cache: invalidate pattern %q: %w", pattern, err)
	}
	n, err := invalidation.Pattern(ctx, rc, c.ns+pattern, o)
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
