package cache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

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
	ErrUnavailable = errors.New("redis unavailable")

	// ErrClosed is wrapped by the errors of every call of a [Cache] and of
	// [Client.Invalidate] and [Client.Ping] made after [Client.Close], and
	// of [New] on a closed Client. It is not ErrUnavailable: FailOpen does
	// not answer from the loader for a closed client.
	ErrClosed = errors.New("client closed")

	// ErrTooLarge is wrapped by the error of a Set or SetMany of a value
	// whose encoded form is larger than [Options].MaxValueBytes.
	ErrTooLarge = errors.New("value too large")

	// ErrLoadTimeout is wrapped by the error of a Get (or of a key of a
	// GetMany) that waited for a load as long as [Options].HardTimeout (or
	// [LoadTimeouts]) allows, with no value of the key at hand. The load
	// goes on in the background under its lease, and writes its value for
	// every process as usual.
	ErrLoadTimeout = errors.New("load timed out")

	// ErrNotModified is what a loader called by a refresh returns (wrapped)
	// to say that the value being refreshed ([Previous]) is still current:
	// the entry is rewritten with the same bytes, a fresh soft expiry and the
	// policy's TTL, under the refresh's claim, and counted in
	// [Stats].NotModified. Returned by a loader call that is not a refresh (a
	// miss has no previous value), it is a load error like any other.
	ErrNotModified = errors.New("not modified")

	// ErrKeyMissing is returned by [Cache.TTL] for a key that does not
	// exist in Redis (PTTL's -2).
	ErrKeyMissing = errors.New("no such key")

	// ErrCorrupt is wrapped when a Redis key of the cache holds bytes that
	// are not a value aside can read: neither an aside entry nor bytes the
	// codec decodes (garbage, a value of another codec). The bytes stay in
	// Redis unless [Options].ReplaceUnreadable lets Get delete them and
	// load; an entry of a newer version of aside is loaded around, and left.
	ErrCorrupt = errors.New("unreadable value in redis")
)

// errNotFoundMarker is the cause of the error of a read that met a
// not-found marker.
var errNotFoundMarker = fmt.Errorf("%w (a cached not-found marker)", ErrNotFound)

// getError is the error of a read of one key: "cache: get <key>: <cause>",
// the package and the key named once. The cause says what happened, and
// names neither.
type getError struct {
	key string // the Redis key
	err error
}

func (e *getError) Error() string { return "cache: get " + e.key + ": " + e.err.Error() }
func (e *getError) Unwrap() error { return e.err }

// NamesKey tells loader.KeyError that this error's text names the key.
func (e *getError) NamesKey() bool { return true }

// getErr is the error a Get of k (Redis key key) returns for cause: a
// getError, which errors.Is finds ErrNotFound in when the key has no value;
// for any other failure, inside a *loader.KeyError naming k, as the API
// promises.
func (c *Cache[K, V]) getErr(k K, key string, cause error) error {
	err := &getError{key: key, err: cause}
	if errors.Is(cause, ErrNotFound) {
		return err
	}
	return &loader.KeyError[K]{Key: k, Err: err}
}

// budget bounds one Redis call of n commands (one round trip) by the cache's
// time budget for it, within ctx.
func (c *Cache[K, V]) budget(ctx context.Context, n int) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.budgetFor(n))
}

// budgetForBytes is budgetFor(n) plus 1ms per budgetBytesPerMs of the
// bytes sent: a large value takes its time on the wire, and is not Redis in
// trouble.
func (c *Cache[K, V]) budgetForBytes(n, bytes int) time.Duration {
	return c.budgetFor(n) + time.Duration(bytes/budgetBytesPerMs)*time.Millisecond
}

// budgetBytesPerMs is how many bytes of a write one millisecond of budget
// covers beyond RedisTimeout: 64 MB/s, well under what loopback and a LAN
// carry.
const budgetBytesPerMs = 64 << 10

// budgetFor is the time budget of a round trip of n commands: RedisTimeout
// for each budgetBatch of them, so that a pipeline of a thousand keys is
// not held to the time of one.
func (c *Cache[K, V]) budgetFor(n int) time.Duration { return budgetFor(c.redisTimeout, n) }

func budgetFor(timeout time.Duration, n int) time.Duration {
	return timeout * time.Duration(max(1, (n+budgetBatch-1)/budgetBatch))
}

// budgetBatch is how many commands of a pipeline one RedisTimeout covers.
const budgetBatch = 100

// redisErr classifies the error of a Redis call made under budget(ctx): the
// budget running out is ErrUnavailable, while ctx's own end stays a context
// error.
func (c *Cache[K, V]) redisErr(ctx context.Context, err error) error {
	return budgetErr(ctx, err, c.redisTimeout)
}

// budgetErr classifies the error of a Redis call made under a budget of
// timeout within ctx.
func budgetErr(ctx context.Context, err error, timeout time.Duration) error {
	if err == nil {
		return nil
	}
	if ctx.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
		return fmt.Errorf("%w: no answer within Options.RedisTimeout (%v)", ErrUnavailable, timeout)
	}
	return classifyErr(err)
}

// do is rc.Do under the budget.
func (c *Cache[K, V]) do(ctx context.Context, rc rueidis.Client, cmd rueidis.Completed) rueidis.RedisResult {
	rctx, cancel := c.budget(ctx, 1)
	defer cancel()
	return rc.Do(rctx, cmd)
}

// doMulti is rc.DoMulti under the budget.
func (c *Cache[K, V]) doMulti(ctx context.Context, rc rueidis.Client, cmds ...rueidis.Completed) []rueidis.RedisResult {
	rctx, cancel := c.budget(ctx, len(cmds))
	defer cancel()
	return rc.DoMulti(rctx, cmds...)
}

// evalOne is script.Exec under the budget.
func (c *Cache[K, V]) evalOne(ctx context.Context, rc rueidis.Client, script *rueidis.Lua, e rueidis.LuaExec) rueidis.RedisResult {
	rctx, cancel := c.budget(ctx, 1)
	defer cancel()
	return script.Exec(rctx, rc, e.Keys, e.Args)
}

// retryable reports whether a write that failed with err may succeed when
// sent again once Redis is back: Redis was unreachable or could not serve,
// rather than answering something aside cannot read.
func retryable(err error) bool {
	return !errors.Is(err, errBadReply) && errors.Is(classifyErr(err), ErrUnavailable)
}

// classifyErr wraps errors of the connection in ErrUnavailable and leaves context
// errors and Redis error replies as they are.
func classifyErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrClosed):
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
