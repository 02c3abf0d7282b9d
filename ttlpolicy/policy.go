package ttlpolicy

import (
	"errors"
	"time"
)

// ErrInvalid is wrapped by every error that Validate returns. The message
// around it names the setting (and, for [ByPrefix], the rule) at fault.
var ErrInvalid = errors.New("ttlpolicy: invalid policy")

// TTLs is what a policy decided for one write.
//
// Both durations are whole milliseconds, because Redis is given PX: the
// decided value is truncated to the millisecond, but a positive TTL is never
// truncated to 0 (1ms is the minimum), since PX 0 is an error in Redis and
// "no expiry" must never happen by accident.
type TTLs struct {
	// Hard is the Redis expiry of the entry (PX).
	Hard time.Duration
	// Soft is the age after which a read still returns the value but
	// refreshes it ahead of expiry. 0 means no refresh-ahead. When it is not
	// 0 it is always less than Hard, so a refresh has a window to run in.
	Soft time.Duration
}

// Policy decides the TTLs of cache writes. Implementations must be safe for
// concurrent use: the cache calls them from every goroutine that writes.
type Policy interface {
	// TTL returns the TTLs of a value written under key (the cache key
	// without the namespace). Jitter, if any, is applied here, so two calls
	// may return different TTLs.
	TTL(key string) TTLs
	// NegativeTTL returns the TTL of a not-found marker for key, with the
	// same millisecond precision and jitter as TTL. 0 means not-found results
	// are not cached.
	NegativeTTL(key string) time.Duration
	// Validate returns nil, or an error wrapping [ErrInvalid] that names the
	// invalid setting. The cache calls it once, when it is built; the TTLs of
	// a policy that does not validate are unspecified.
	Validate() error
}

// ValuePolicy is a [Policy] that can also decide a TTL from the value being
// written, such as a token that must not outlive its own expiry. The cache
// checks for it with a type assertion on its Policy and, when present, calls
// TTLOf instead of TTL for every write of a value.
type ValuePolicy[V any] interface {
	Policy
	// TTLOf returns the TTLs of v written under key.
	TTLOf(key string, v V) TTLs
}
