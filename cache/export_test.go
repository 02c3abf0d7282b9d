package cache

// LeaseKey is leaseKey, for the black-box tests: the lease key in plain mode
// of value key key of namespace ns (without its ':').
func LeaseKey(ns, key string) string { return leaseKey(ns+":", key) }

// ValueKeyOf is valueKeyOf, for the black-box tests.
func ValueKeyOf(key string) (valueKey, ns string, ok bool) { return valueKeyOf(key) }
