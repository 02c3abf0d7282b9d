package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/aside-go/aside/internal/envelope"
)

// Through slow and failing sources: load timeouts, fail-safe, the throttle
// of failed refreshes, the maximum age of a stale value, and conditional
// refreshes (after FusionCache).
//
// A read waits for a load in three places: for the load it holds the lease
// of (awaitLoad), for a load of the process it joined (fetchAll), and for
// another process's load, whose lease it finds (awaitLeases). Each is
// bounded by the fetch's loadBy (HardTimeout after the read began); past
// it, the key fails with ErrLoadTimeout, and the load goes on: a held load
// runs on a goroutine of its own whenever the read has a hard timeout
// (loadHeld), writes under its lease, and finishes its flight for the reads
// that joined it; a read that gave up on another's load leaves that load
// alone. A flight whose leader timed out is abandoned, not failed, for the
// reads that joined it (finish): they try again, under their own timeouts.
//
// A read that has a value at hand, past its soft expiry, waits for its
// synchronous refresh (whenDue) at most the soft timeout, then serves the
// value stale. The refresh runs in refreshes.Do, detached from the callers
// (a caller leaving does not cancel it), bounded by RefreshTimeout; it goes
// on under its claim and writes as usual.
//
// The throttle and the maximum age are kept in Redis, so that they hold for
// every process: a failed refresh moves the claimed value's soft expiry to
// the failure plus FailSafeThrottle (with the claim script, so only while
// its claim stands), and a refresh that claims a value cuts the key's TTL to
// end FailSafeMaxAge after the value's soft expiry (capScript, only while
// the key holds the claimed bytes).

// timeouts are a read's load timeouts (see Options.SoftTimeout and
// Options.HardTimeout); 0 is none.
type timeouts struct{ soft, hard time.Duration }

// atHand is how long a read with a value at hand waits for its refresh:
// the shorter of the timeouts set, or 0 for no bound.
func (t timeouts) atHand() time.Duration {
	switch {
	case t.soft > 0 && t.hard > 0:
		return min(t.soft, t.hard)
	case t.soft > 0:
		return t.soft
	}
	return t.hard
}

// timeoutsOf returns the timeouts of a read with options ro.
func (c *Cache[K, V]) timeoutsOf(ro *ReadOption) timeouts {
	if ro.timeouts != nil {
		return *ro.timeouts
	}
	return c.timeouts
}

// errLoadTimeout is the cause of a key that waited d for a load.
func errLoadTimeout(d time.Duration) error {
	return fmt.Errorf("%w: no value within %v (the load goes on in the background)", ErrLoadTimeout, d)
}

// bound sets the deadline of the loads that fetches fs wait for, when the
// read has a hard timeout.
func bound[K comparable, V any](fs []*fetch[K, V], tm timeouts) {
	if tm.hard <= 0 {
		return
	}
	by := time.Now().Add(tm.hard)
	for _, f := range fs {
		f.hard, f.loadBy = tm.hard, by
	}
}

// anyBound reports whether a fetch of fs has a hard timeout.
func anyBound[K comparable, V any](fs []*fetch[K, V]) bool {
	for _, f := range fs {
		if f.hard > 0 {
			return true
		}
	}
	return false
}

// timedOut fails f with ErrLoadTimeout.
func (c *Cache[K, V]) timedOut(ctx context.Context, f *fetch[K, V]) {
	c.stats.loadTimeouts.Add(1)
	c.finish(ctx, f, nil, errLoadTimeout(f.hard))
}

// waitJoined waits for the flight f joined, at most until f.loadBy.
func (c *Cache[K, V]) waitJoined(ctx context.Context, f *fetch[K, V]) (*entry[V], error) {
	if f.loadBy.IsZero() {
		return f.fl.Wait(ctx)
	}
	wctx, cancel := context.WithDeadline(ctx, f.loadBy)
	defer cancel()
	e, err := f.fl.Wait(wctx)
	if err != nil && ctx.Err() == nil && wctx.Err() != nil {
		c.stats.loadTimeouts.Add(1)
		return nil, errLoadTimeout(f.hard)
	}
	return e, err
}

// tooOld reports whether e, due at now, is past its soft expiry by more than
// FailSafeMaxAge: it is not to be served stale.
func (c *Cache[K, V]) tooOld(e *entry[V], now int64) bool {
	return c.failSafeMaxAge > 0 && now-e.softAt > int64(c.failSafeMaxAge)
}

// failSafeServes reports whether a synchronous refresh of e that failed
// with err leaves e to be served: FailSafe is on, the loader failed (the
// record being gone is no failure, and the caller's own context ending is
// the caller's), and e is within its hard TTL.
func (c *Cache[K, V]) failSafeServes(ctx context.Context, e *entry[V], err error, now int64) bool {
	return c.failSafe && ctx.Err() == nil && !errors.Is(err, ErrNotFound) &&
		(e.expireAt == 0 || now < e.expireAt)
}

// capScript cuts the TTL of KEYS[1] to ARGV[2] milliseconds (never
// lengthens it: PEXPIRE LT), only if the key holds exactly ARGV[1], the
// bytes a refresh claimed. It reads the key first, so the change is pushed
// back to this connection as any write of the process is.
var capScript = rueidis.NewLuaScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
	return 0
end
return redis.call('PEXPIRE', KEYS[1], ARGV[2], 'LT')`)

// capAge makes the value of key, whose refresh just claimed it (claimed),
// expire in Redis FailSafeMaxAge after its soft expiry softAt (Unix
// nanoseconds), so that no process serves it stale past that, whatever
// becomes of its refresh. Best effort: Redis failing it leaves the TTL.
func (c *Cache[K, V]) capAge(ctx context.Context, rc rueidis.Client, key string, claimed []byte, softAt int64, now time.Time) {
	left := time.Unix(0, softAt).Add(c.failSafeMaxAge).Sub(now)
	if left < time.Millisecond {
		return // too old already: no process serves it stale (tooOld)
	}
	cctx, cancel := c.budget(ctx, 1)
	defer cancel()
	err := capScript.Exec(cctx, rc, []string{key}, []string{rueidis.BinaryString(claimed), fmt.Sprint(ms(left))}).Error()
	c.client.wrote(key)
	if err != nil {
		c.logEvent(slog.LevelWarn, "cache: the TTL of a value being refreshed could not be cut to Options.FailSafeMaxAge", err, []string{key})
	}
}

// dropScript deletes KEYS[1] only if it holds exactly ARGV[1], the bytes a
// refresh claimed. It reads the key first (see capScript).
var dropScript = rueidis.NewLuaScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
	return 0
end
return redis.call('DEL', KEYS[1])`)

// dropOld deletes the value of key that a refresh claimed (claimed) and
// failed to refresh, too old to be served stale by any process (its TTL
// could not be cut: its maximum age had passed when it was claimed). Best
// effort, as capAge.
func (c *Cache[K, V]) dropOld(ctx context.Context, rc rueidis.Client, key string, claimed []byte) {
	cctx, cancel := c.detached(ctx, c.budgetFor(1))
	defer cancel()
	err := dropScript.Exec(cctx, rc, []string{key}, []string{rueidis.BinaryString(claimed)}).Error()
	c.client.wrote(key)
	if err != nil {
		c.logEvent(slog.LevelWarn, "cache: a value past Options.FailSafeMaxAge whose refresh failed could not be deleted", err, []string{key})
	}
}

// throttle moves the soft expiry of the value of key, claimed until next
// (Unix milliseconds) by a refresh whose loader failed, to now plus
// FailSafeThrottle, while that claim stands: no process refreshes it before.
// The default throttle, LeaseTTL, is where the claim put it already.
func (c *Cache[K, V]) throttle(ctx context.Context, rc rueidis.Client, key string, next int64) {
	if c.failSafeThrottle == c.leaseTTL {
		return
	}
	until := c.now().Add(c.failSafeThrottle).UnixMilli()
	cctx, cancel := c.detached(ctx, c.budgetFor(1))
	defer cancel()
	err := claimScript.Exec(cctx, rc, []string{key}, []string{be64(next), be64(until)}).Error()
	c.client.wrote(key)
	if err != nil && !rueidis.IsRedisNil(err) {
		c.logEvent(slog.LevelWarn, "cache: a failed refresh could not be throttled: the value comes due again after LeaseTTL", err, []string{key})
	}
}

// renew rewrites the value of key that a refresh claimed (claimed), whose
// loader said it is not modified: the same payload bytes, with a fresh soft
// expiry and the policy's TTL, in place of the claimed bytes only (as a
// refresh writes). v is the value, for a ValuePolicy.
func (c *Cache[K, V]) renew(ctx context.Context, rc rueidis.Client, key string, claimed []byte, v V) {
	env, err := envelope.Decode(claimed)
	if err != nil {
		return // cannot be: the claim script checked the layout
	}
	ttls := c.ttl.TTL(c.keyPart(key))
	if c.valueTTL != nil {
		ttls = c.valueTTL.TTLOf(c.keyPart(key), v)
	}
	var soft time.Time
	if ttls.Soft > 0 {
		soft = c.now().Add(ttls.Soft)
	}
	// Of the claimed value's generation: a Clear since leaves it cleared.
	data := envelope.EncodeGen(envelope.Value, env.Compressed, soft, env.Gen, env.Payload)
	wctx, cancel := c.detached(ctx, c.budgetFor(1))
	defer cancel()
	w := c.casWrites(wctx, rc, []rueidis.LuaExec{writeExec(newExecArena(1, writeExecStrings), key, claimed, data, ttls.Hard)})[0]
	wrote, err := w.wrote, w.err
	c.client.wrote(key)
	switch {
	case err != nil:
		c.stats.writeErrors.Add(1)
		c.logEvent(slog.LevelWarn, "cache: a not-modified value could not be renewed", err, []string{key})
	case !wrote:
		c.stats.discardedFills.Add(1)
	default:
		c.stats.notModified.Add(1)
	}
}

// Previous returns, inside a loader call made by a refresh of a value past
// its soft TTL (either refresh mode), the value being refreshed, so that
// the loader can ask its source whether it changed (an ETag or a version
// stored in V) and return an error wrapping [ErrNotModified] when it did
// not. It returns false anywhere else: in a load of a missing key, or when
// ctx is not a loader call's, or V is not the cache's value type. Refreshes
// are of one key: in a BatchLoader called by a refresh (a batch of that one
// key) it returns that key's value.
func Previous[V any](ctx context.Context) (V, bool) {
	p, _ := ctx.Value(previousKey{}).(*previous)
	if p == nil {
		var zero V
		return zero, false
	}
	v, ok := p.v.(V)
	return v, ok
}

type previousKey struct{}

// previous is the value a refresh of key by a cache (owner) replaces, for
// Previous.
type previous struct {
	owner any
	key   string
	v     any
}

// withPrevious is ctx for the loader call of c's refresh of key, holding v.
func (c *Cache[K, V]) withPrevious(ctx context.Context, key string, v V) context.Context {
	return context.WithValue(ctx, previousKey{}, &previous{owner: c, key: key, v: v})
}

// scopePrevious returns the context of a loader call of c for refs, and
// whether it is a refresh's: one that c's refresh of that one key made.
// Anything else — a load of another cache inside a refresh's loader
// included — sees no previous value.
func (c *Cache[K, V]) scopePrevious(ctx context.Context, refs []keyRef[K]) (context.Context, bool) {
	p, _ := ctx.Value(previousKey{}).(*previous)
	switch {
	case p == nil:
		return ctx, false
	case p.owner == any(c) && len(refs) == 1 && p.key == refs[0].key:
		return ctx, true
	}
	return context.WithValue(ctx, previousKey{}, (*previous)(nil)), false
}

// refreshWrites tracks the refreshes of each key running in the process,
// for AwaitWrites.
type refreshWrites struct {
	mu sync.Mutex
	m  map[string]*refreshing // guarded by mu
}

// refreshing is the refreshes of one key running: done is closed when the
// last of them ends.
type refreshing struct {
	n    int
	done chan struct{}
}

// begin records a refresh of key, and returns the function that ends it.
func (r *refreshWrites) begin(key string) func() {
	r.mu.Lock()
	if r.m == nil {
		r.m = make(map[string]*refreshing)
	}
	g := r.m[key]
	if g == nil {
		g = &refreshing{done: make(chan struct{})}
		r.m[key] = g
	}
	g.n++
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if g.n--; g.n == 0 {
			close(g.done)
			delete(r.m, key)
		}
	}
}

// await waits until no refresh of keys runs, or ctx ends.
func (r *refreshWrites) await(ctx context.Context, keys ...string) error {
	for _, key := range keys {
		r.mu.Lock()
		g := r.m[key]
		r.mu.Unlock()
		if g == nil {
			continue
		}
		select {
		case <-g.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
