package cache

import "context"

// AwaitWrites waits for the writes of c's loads of ks still running, as the
// operations that read a key's state in Redis do, but without their time
// bound (a busy machine may take longer): a test that asserts what a load
// wrote (or counted) calls it first.
func AwaitWrites[K comparable, V any](ctx context.Context, c *Cache[K, V], ks ...K) error {
	keys := make([]string, len(ks))
	for i, k := range ks {
		keys[i] = c.Key(k)
	}
	return c.awaitWritesFor(ctx, 0, keys...)
}

// LeaseKey is leaseKey, for the black-box tests: the lease key in plain mode
// of value key key of namespace ns (without its ':').
func LeaseKey(ns, key string) string { return leaseKey(ns+":", key) }

// ValueKeyOf is valueKeyOf, for the black-box tests.
func ValueKeyOf(key string) (valueKey, ns string, ok bool) { return valueKeyOf(key) }
