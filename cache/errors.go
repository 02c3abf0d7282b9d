package cache

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/rueidis"

	"github.com/aside-go/aside/loader"
)

var (
	// ErrNotFound is returned (wrapped) by Get when the key has no value: the
	// loader reported [loader.ErrNotFound], a not-found marker is cached for
	// the key, or the cache has no loader. It is loader.ErrNotFound itself,
	// so errors.Is works with either name.
	ErrNotFound = loader.ErrNotFound

	// ErrUnavailable is wrapped by errors that come from Redis being
	// unreachable or not answering in time (connection refused or reset,
	// I/O timeouts, a closed client) or saying it cannot serve now
	// (LOADING, TRYAGAIN, CLUSTERDOWN, MASTERDOWN). A context that ends
	// stays context.Canceled or context.DeadlineExceeded instead.
	ErrUnavailable = errors.New("cache: redis unavailable")

	// ErrKeyMissing is returned by [Cache.TTL] for a key that does not
	// exist in Redis (PTTL's -2).
	ErrKeyMissing = errors.New("cache: no such key")

	// ErrCorrupt is wrapped when a Redis key of the cache holds bytes that
	// are not a value aside can read: garbage, a value of another codec, or
	// an entry written by a newer version of aside. Get reloads such keys
	// through the loader when it has one.
	ErrCorrupt = errors.New("cache: unreadable value in redis")
)

// errNotFoundHit is returned for not-found markers served from process
// memory: prebuilt, so the hit path allocates nothing.
var errNotFoundHit = fmt.Errorf("cache: cached not-found marker: %w", ErrNotFound)

// classify wraps errors of the connection in ErrUnavailable and leaves context
// errors and Redis error replies as they are.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, ErrUnavailable):
		return err
	}
	if re, ok := rueidis.IsRedisErr(err); ok {
		// Replies that say the server cannot serve right now.
		if re.IsLoading() || re.IsTryAgain() || re.IsClusterDown() || strings.HasPrefix(re.Error(), "MASTERDOWN") {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
