package cache

import "context"

// AwaitWrites waits for the writes of c's loads of ks still running, as the
// operations that read a key's state in Redis do: a test that asserts what
// a load wrote (or counted) calls it first.
func AwaitWrites[K comparable, V any](ctx context.Context, c *Cache[K, V], ks ...K) error {
	keys := make([]string, len(ks))
	for i, k := range ks {
		keys[i] = c.Key(k)
	}
	return c.awaitWrites(ctx, keys...)
}
