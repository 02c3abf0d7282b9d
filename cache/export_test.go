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

// CompareAndSet reports which compare-and-set commands the client's writes
// under a lease use: SET ... IFEQ, and DELIFEQ or DELEX (see cas.go).
func CompareAndSet(c *Client) (setIfEq, delIfEq bool) {
	f := c.cas(1, 1)
	return f&casSetIfEq != 0, f&casDel != 0
}

// ForceCompareAndSet makes the client's writes under a lease use the
// compare-and-set commands whether the server has them or not.
func ForceCompareAndSet(c *Client) {
	c.conn.Load().cas.Store(uint32(casSetIfEq | casDelIfEq))

}

// ForceDelEx is ForceCompareAndSet with DELEX (Redis 8.4) for releases.
func ForceDelEx(c *Client) {
	c.conn.Load().cas.Store(uint32(casSetIfEq | casDelEx))
}

// NoCompareAndSet makes the client's writes under a lease scripts.
func NoCompareAndSet(c *Client) { c.conn.Load().cas.Store(0) }
