package cache

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/aside-go/aside/internal/envelope"
)

// NoExpiry is what [Cache.TTL] returns for a key that exists without an
// expiry (PTTL's -1). It is the longest duration there is, so comparisons
// such as ttl > time.Hour read naturally.
const NoExpiry time.Duration = math.MaxInt64

// Markers are not values. A key that holds a not-found marker (the loader
// said the record does not exist, and the cache remembers it for the
// policy's negative TTL), a lease (a process is loading it) or an entry a
// Clear cleared (see Cache.Clear) holds no value,
// and every operation below treats it as a key that does not exist: Exists
// does not count it, TTL returns [ErrKeyMissing], Expire, ExpireAt and
// Persist return false and leave it as it is, and Delete removes it (so that
// the next Get loads again) without counting it. Each of them reads the key
// and acts in one atomic step (a script on the key's node), so a write that
// races with it is either wholly before it or wholly after. Anything else
// the key holds, a value of any codec or bytes another program wrote, is a
// value. Invalidations (Invalidate, InvalidatePattern, InvalidateTag and
// [Client.Invalidate]) are not asked about values: they remove whatever the
// keys hold and count what Redis removed, markers included.

// keyOpScript runs one operation of a cache on KEYS[1] as the rule above
// says: ARGV[1] names it (del, pttl, pexpire, pexpireat, persist), ARGV[2]
// is its argument, and ARGV[3] the namespace's generation (see clear.go): an
// entry of an older one was cleared, and is handled as a marker. A key of
// another type than string is not a marker (GET's error is a table, not
// bytes). It returns the command's integer reply, or what the command would
// reply for a missing key when KEYS[1] holds a marker: del deletes it and
// returns 0, pttl returns -2, the others 0 without touching it.
var (
	keyOpScript = rueidis.NewLuaScript(keyOpSrc)
	keyOpSHA    = scriptSHA(keyOpSrc)
)

var keyOpSrc = envelope.MarkerLua + envelope.ClearedLua + `
local v = redis.pcall('GET', KEYS[1])
local marker = is_marker(v) or is_cleared(v, tonumber(ARGV[3]))
local op = ARGV[1]
if op == 'del' then
	local n = redis.call('DEL', KEYS[1])
	if marker then
		return 0
	end
	return n
end
if marker then
	if op == 'pttl' then
		return -2
	end
	return 0
end
if op == 'pttl' then
	return redis.call('PTTL', KEYS[1])
elseif op == 'pexpire' then
	return redis.call('PEXPIRE', KEYS[1], ARGV[2])
elseif op == 'pexpireat' then
	return redis.call('PEXPIREAT', KEYS[1], ARGV[2])
elseif op == 'persist' then
	return redis.call('PERSIST', KEYS[1])
end
return redis.error_reply('aside: unknown key operation ' .. op)`

// keyOpExec is keyOpScript's execution of op with arg on key, gen the
// namespace's generation as keyOpGen gives it.
func keyOpExec(key, op, arg, gen string) rueidis.LuaExec {
	return rueidis.LuaExec{Keys: []string{key}, Args: []string{op, arg, gen}}
}

// keyOpGen is the namespace's generation for keyOpScript: the one this
// process knows when a Clear would have pushed to it (as Set does, see
// trackGen), read from Redis otherwise; "0" (nothing is cleared) in plain
// mode, whose values carry no generation.
func (c *Cache[K, V]) keyOpGen(ctx context.Context, rc rueidis.Client) string {
	if c.plain {
		return "0"
	}
	if !c.tracks() || !c.gen.isTracked() {
		c.trackGen(ctx, rc)
	}
	return strconv.FormatUint(c.gen.known.Load(), 10)
}

// Delete removes keys and returns how many held a value, as DEL counts
// existing keys: a key holding a not-found marker or a lease is removed but
// not counted (see the rule above). It works on any topology: each key is
// its own script execution, sent in one pipeline, so keys of different
// cluster slots never form a cross-slot command.
func (c *Cache[K, V]) Delete(ctx context.Context, ks ...K) (int, error) {
	if c.rec == nil || len(ks) == 0 {
		return c.delete(ctx, ks...)
	}
	ctx, end := c.start(ctx, OpDelete, len(ks), 0)
	n, err := c.delete(ctx, ks...)
	end(Result{Err: err})
	return n, err
}

func (c *Cache[K, V]) delete(ctx context.Context, ks ...K) (int, error) {
	if len(ks) == 0 {
		return 0, nil
	}
	rc, err := c.redis()
	if err != nil {
		return 0, fmt.Errorf("cache: delete: %w", err)
	}
	keys := make([]string, len(ks))
	for i, k := range ks {
		keys[i] = c.Key(k)
	}
	if err := c.awaitWrites(ctx, keys...); err != nil {
		return 0, fmt.Errorf("cache: delete: %w", err)
	}
	gen := c.keyOpGen(ctx, rc)
	execs := make([]rueidis.LuaExec, len(ks))
	for i, key := range keys {
		execs[i] = keyOpExec(key, "del", "", gen)
	}
	var errs []error
	var leaseFailed map[int]bool
	// Plain mode: the loads' leases go first (see Client.invalidate).
	if lds := c.leaseDels(rc, keys); len(lds) > 0 {
		for i, res := range c.doMulti(ctx, rc, lds...) {
			if err := res.Error(); err != nil {
				if leaseFailed == nil {
					leaseFailed = make(map[int]bool)
				}
				leaseFailed[i] = true
				errs = append(errs, fmt.Errorf("cache: delete %s: %w", leaseKey(c.ns, keys[i]), c.redisErr(ctx, err)))
			}
		}
	}
	rctx, cancel := c.budget(ctx, len(execs))
	results := evalMany(rctx, rc, keyOpScript, keyOpSHA, execs)
	cancel()
	n := 0
	for i, res := range results {
		d, err := res.AsInt64()
		c.client.deleted(keys[i], c, err == nil && !leaseFailed[i])
		if err != nil {
			errs = append(errs, fmt.Errorf("cache: delete %s: %w", keys[i], c.redisErr(ctx, err)))
			continue
		}
		n += int(d)
	}
	return n, errors.Join(errs...)
}

// Invalidate removes keys so that the next Get of each reloads it, in every
// process: Redis pushes the invalidation to every client caching them. It
// removes whatever the keys hold, markers included. To invalidate keys of
// several caches in one round trip, see [Client.Invalidate].
func (c *Cache[K, V]) Invalidate(ctx context.Context, ks ...K) (err error) {
	if len(ks) == 0 {
		return nil
	}
	if c.rec != nil {
		var end func(Result)
		ctx, end = c.start(ctx, OpInvalidate, len(ks), 0)
		defer func() { end(Result{Err: err}) }()
	}
	keys := make([]string, len(ks))
	for i, k := range ks {
		keys[i] = c.Key(k)
	}
	_, err = c.client.invalidate(ctx, []Target{{c: c, keys: keys}})
	return err
}

// Exists returns how many of the keys hold a value, as EXISTS does: a key
// named twice counts twice. A key holding a not-found marker or a lease does
// not count (see the rule above). Copies in process memory answer first; the
// others are read in one round trip of GETs.
func (c *Cache[K, V]) Exists(ctx context.Context, ks ...K) (int, error) {
	n := 0
	var rest []string
	now := c.nanos()
	for _, k := range ks {
		if e, ok := c.localCopy(k, now); ok {
			if !e.notFound {
				n++
			}
			continue
		}
		rest = append(rest, c.Key(k))
	}
	if len(rest) == 0 {
		return n, nil
	}
	rc, err := c.redis()
	if err != nil {
		return n, fmt.Errorf("cache: exists: %w", err)
	}
	if err := c.awaitWrites(ctx, rest...); err != nil {
		return n, fmt.Errorf("cache: exists: %w", err)
	}
	var errs []error
	// In envelope mode, the namespace's generation first: an entry of an
	// older one was cleared (see clear.go).
	cmds := make(rueidis.Commands, 0, 1+len(rest))
	if !c.plain {
		genCmd, _ := c.gen.read(rc)
		cmds = append(cmds, genCmd)
	}
	for _, key := range rest {
		cmds = append(cmds, rc.B().Get().Key(key).Build())
	}
	results := c.doMulti(ctx, rc, cmds...)
	var gen uint64
	if !c.plain {
		gen, results = c.learnGen(results[0], 0), results[1:]
	}
	for i, res := range results {
		raw, err := res.AsBytes()
		switch {
		case err == nil:
			if holdsValue(raw, gen) {
				n++
			}
		case rueidis.IsRedisNil(err):
		case isWrongType(err):
			n++ // a key of another type: not a marker
		default:
			errs = append(errs, fmt.Errorf("cache: exists %s: %w", rest[i], c.redisErr(ctx, err)))
		}
	}
	return n, errors.Join(errs...)
}

func isWrongType(err error) bool {
	re, ok := rueidis.IsRedisErr(err)
	return ok && strings.HasPrefix(re.Error(), "WRONGTYPE")
}

// Expire sets the expiry of k to d from now (PEXPIRE, whole milliseconds) and
// reports whether k held a value. As in Redis, a d of zero or less deletes k.
// A key holding a not-found marker or a lease is left as it is, and Expire
// returns false.
func (c *Cache[K, V]) Expire(ctx context.Context, k K, d time.Duration) (bool, error) {
	return c.expiryOp(ctx, "expire", c.Key(k), "pexpire", strconv.FormatInt(d.Milliseconds(), 10))
}

// ExpireAt sets k to expire at t (PEXPIREAT, whole milliseconds) and reports
// whether k held a value. As in Redis, a t in the past deletes k. A key
// holding a not-found marker or a lease is left as it is, and ExpireAt
// returns false.
func (c *Cache[K, V]) ExpireAt(ctx context.Context, k K, t time.Time) (bool, error) {
	return c.expiryOp(ctx, "expireat", c.Key(k), "pexpireat", strconv.FormatInt(t.UnixMilli(), 10))
}

// Persist removes the expiry of k and reports whether it had one (PERSIST).
// A not-found marker or a lease keeps its expiry, and Persist returns false.
func (c *Cache[K, V]) Persist(ctx context.Context, k K) (bool, error) {
	return c.expiryOp(ctx, "persist", c.Key(k), "persist", "")
}

func (c *Cache[K, V]) expiryOp(ctx context.Context, op, key, scriptOp, arg string) (bool, error) {
	rc, err := c.redis()
	if err != nil {
		return false, fmt.Errorf("cache: %s %s: %w", op, key, err)
	}
	if err := c.awaitWrites(ctx, key); err != nil {
		return false, fmt.Errorf("cache: %s %s: %w", op, key, err)
	}
	n, err := c.evalOne(ctx, rc, keyOpScript, keyOpExec(key, scriptOp, arg, c.keyOpGen(ctx, rc))).AsInt64()
	// An expiry change is a write: it may delete the key (a TTL of zero or
	// a past instant) or shorten its life below the copy's.
	c.client.wrote(key)
	if err != nil {
		return false, fmt.Errorf("cache: %s %s: %w", op, key, c.redisErr(ctx, err))
	}
	return n == 1, nil
}

// TTL returns the time k has left to live, to the millisecond (PTTL). A key
// without an expiry returns [NoExpiry]; a key that does not exist, or holds
// a not-found marker or a lease, returns an error wrapping [ErrKeyMissing].
func (c *Cache[K, V]) TTL(ctx context.Context, k K) (time.Duration, error) {
	key := c.Key(k)
	rc, err := c.redis()
	if err != nil {
		return 0, fmt.Errorf("cache: ttl %s: %w", key, err)
	}
	if err := c.awaitWrites(ctx, key); err != nil {
		return 0, fmt.Errorf("cache: ttl %s: %w", key, err)
	}
	n, err := c.evalOne(ctx, rc, keyOpScript, keyOpExec(key, "pttl", "", c.keyOpGen(ctx, rc))).AsInt64()
	switch {
	case err != nil:
		return 0, fmt.Errorf("cache: ttl %s: %w", key, c.redisErr(ctx, err))
	case n == -2:
		return 0, fmt.Errorf("cache: ttl %s: %w", key, ErrKeyMissing)
	case n == -1:
		return NoExpiry, nil
	case n < 0:
		return 0, fmt.Errorf("cache: ttl %s: %w: PTTL %d", key, errBadReply, n)
	}
	return time.Duration(n) * time.Millisecond, nil
}
