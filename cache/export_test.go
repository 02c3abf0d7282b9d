package cache

import "context"

// AwaitWrites is Cache.AwaitWrites, for the tests written before it was
// exported.
func AwaitWrites[K comparable, V any](ctx context.Context, c *Cache[K, V], ks ...K) error {
	return c.AwaitWrites(ctx, ks...)
}

// LeaseKey is leaseKey, for the black-box tests: the lease key in plain mode
// of value key key of namespace ns (without its ':').
func LeaseKey(ns, key string) string { return leaseKey(ns+":", key) }

// ValueKeyOf is valueKeyOf, for the black-box tests.
func ValueKeyOf(key string) (valueKey, ns string, ok bool) { return valueKeyOf(key) }
