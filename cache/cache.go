package cache

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/aside-go/aside/codec"
	"github.com/aside-go/aside/internal/envelope"
	"github.com/aside-go/aside/loader"
	"github.com/aside-go/aside/ttlpolicy"
)

// Cache is a typed cache-aside view of one namespace of Redis. Build it with
// [New]; it is safe for concurrent use.
//
// Values returned by Get are shared: a value served from process memory is
// the same V for every caller until Redis invalidates it, so callers must
// treat it as read-only (values holding pointers, slices or maps included),
// or set [Options].Clone.
type Cache[K comparable, V any] struct {
	client    *Client
	rc        rueidis.Client
	ns        string // namespace + ":"
	keyFn     func(K) string
	codec     codec.Codec[V]
	ttl       ttlpolicy.Policy
	valueTTL  ttlpolicy.ValuePolicy[V] // ttl, when it also looks at values
	load      loader.Func[K, V]
	batch     loader.BatchFunc[K, V]
	leaseTTL  time.Duration
	leaseWait time.Duration
	onDown    RedisDownPolicy
	localTTL  time.Duration
	clone     func(V) V
	now       func() time.Time
	// nanos is the hit path's clock: the client's coarse clock, or Now
	// when the options inject one.
	nanos func() int64

	local   *local[K, V] // nil when copies are off
	written written
	waits   waits
	// tracking holds the Redis keys with a background tracking read
	// under way (trackInBackground).
	tracking sync.Map
	flights  loader.Group[V]
	stats    counters
	// tagWrites counts writes with tags, to sample their indexes.
	tagWrites atomic.Uint64

	breaker       breaker
	fallbackSlots chan struct{} // one token per running fallback load

	refreshMode    RefreshMode
	refreshTimeout time.Duration
	refreshSlots   chan struct{} // one token per running background refresh

	// bg counts the cache's background goroutines; bgClosed, set by the
	// client's Close, stops new ones from starting. bgMu makes the check of
	// bgClosed and bg.Add one step, so that Close's bg.Wait never races
	// with an Add.
	bgMu     sync.Mutex
	bgClosed bool
	bg       sync.WaitGroup
}

// New builds a cache on a client made by [Connect]. It returns an error
// wrapping [ErrInvalidOptions] that names the field when an option is invalid.
func New[K comparable, V any](client *Client, opts Options[K, V]) (*Cache[K, V], error) {
	if client == nil {
		return nil, fmt.Errorf("%w: client: nil (build one with cache.Connect)", ErrInvalidOptions)
	}
	injected := opts.Now
	if err := opts.resolve(); err != nil {
		return nil, err
	}
	c := &Cache[K, V]{
		client:         client,
		rc:             client.rc,
		ns:             opts.Namespace + ":",
		keyFn:          opts.Key,
		codec:          opts.Codec,
		ttl:            opts.TTL,
		load:           opts.Loader,
		batch:          opts.BatchLoader,
		leaseTTL:       opts.LeaseTTL,
		leaseWait:      opts.LeaseWait,
		refreshMode:    opts.Refresh,
		refreshTimeout: opts.RefreshTimeout,
		refreshSlots:   make(chan struct{}, opts.RefreshConcurrency),
		fallbackSlots:  make(chan struct{}, opts.FallbackConcurrency),
		breaker: breaker{
			threshold: opts.BreakerThreshold,
			cooldown:  opts.BreakerCooldown,
			now:       opts.Now,
		},
		onDown:   opts.OnRedisDown,
		localTTL: opts.LocalTTL,
		clone:    opts.Clone,
		now:      opts.Now,
	}
	switch {
	case c.batch == nil && c.load != nil:
		c.batch = c.load.Batch(opts.BatchConcurrency)
	case c.load == nil && c.batch != nil:
		c.load = c.batch.One()
	}
	c.nanos = client.clock.now
	if injected != nil {
		c.nanos = func() int64 { return injected().UnixNano() }
	}
	if vp, ok := opts.TTL.(ttlpolicy.ValuePolicy[V]); ok {
		c.valueTTL = vp
	}
	c.written.now = opts.Now
	if client.tracking && opts.LocalCapacity > 0 {
		c.local = newLocal[K, V](opts.LocalCapacity)
	}
	client.subscribe(opts.Namespace, c)
	return c, nil
}

// Key returns the Redis key of k: the namespace, a colon, and the key
// function's output.
func (c *Cache[K, V]) Key(k K) string { return c.ns + c.keyFn(k) }

// Get returns the value of k: from process memory when a fresh copy is
// there, else from Redis, else from the loader, whose value is then written
// to Redis with the policy's TTL. Concurrent Gets of one key in a process
// share one read and one load.
//
// A key the loader reports as absent returns an error wrapping [ErrNotFound]
// and is remembered as absent for the policy's negative TTL. When Redis is
// unavailable the result follows [Options].OnRedisDown.
func (c *Cache[K, V]) Get(ctx context.Context, k K) (V, error) {
	if c.local != nil {
		now := c.nanos()
		if e, ok := c.local.get(k, now); ok {
			if e.due(now) {
				return c.hitDue(ctx, k, e)
			}
			c.stats.localHits.Add(1)
			if e.stale {
				c.stats.staleServed.Add(1)
			}
			if e.notFound {
				c.stats.notFoundHits.Add(1)
				var zero V
				return zero, errNotFoundHit
			}
			if c.clone != nil {
				return c.clone(e.v), nil
			}
			return e.v, nil
		}
	}
	return c.getSlow(ctx, k)
}

// hitDue serves a copy past its soft expiry, as the refresh mode says.
func (c *Cache[K, V]) hitDue(ctx context.Context, k K, e *entry[V]) (V, error) {
	c.stats.localHits.Add(1)
	v, err := c.whenDue(ctx, k, e)
	if err != nil {
		return v, err
	}
	return c.cloned(v), nil
}

// whenDue serves e, past its soft expiry: RefreshSync refreshes it first,
// sharing the refresh with the process's other Gets of the key, and returns
// the current value when another process holds the claim (it is within its
// hard TTL, and its refresh is under way); RefreshBackground returns it at
// once and refreshes it in the background.
func (c *Cache[K, V]) whenDue(ctx context.Context, k K, e *entry[V]) (V, error) {
	if c.refreshMode == RefreshBackground {
		c.stats.staleServed.Add(1)
		c.refreshInBackground(ctx, k, e)
		return e.v, nil
	}
	v, _, err := c.flights.Do(ctx, "refresh\x00"+e.key, func(ctx context.Context) (V, error) {
		return c.refresh(ctx, k, e.key, e.softAt)
	})
	if errors.Is(err, errNotClaimed) {
		return e.v, nil
	}
	return v, err
}

// spawn runs f on a background goroutine that Client.Close waits for, and
// reports whether it did: once the client is closing, it starts nothing and
// the caller does the work itself or skips it.
func (c *Cache[K, V]) spawn(f func()) bool {
	c.bgMu.Lock()
	if c.bgClosed {
		c.bgMu.Unlock()
		return false
	}
	c.bg.Add(1)
	c.bgMu.Unlock()
	go func() {
		defer c.bg.Done()
		f()
	}()
	return true
}

// waitBackground stops new background work and waits for the running one.
func (c *Cache[K, V]) waitBackground() {
	c.bgMu.Lock()
	c.bgClosed = true
	c.bgMu.Unlock()
	c.bg.Wait()
}

// detached returns a context with ctx's values but not its cancellation,
// ended by the client's Close and, when d > 0, after d: for work that must
// finish for everyone once begun, such as a load others wait for or the
// release of a lease.
func (c *Cache[K, V]) detached(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	if d > 0 {
		var cancelTimeout context.CancelFunc
		dctx, cancelTimeout = context.WithTimeout(dctx, d)
		cancelParent := cancel
		cancel = func() { cancelTimeout(); cancelParent() }
	}
	stop := context.AfterFunc(c.client.closing, cancel)
	return dctx, func() {
		stop()
		cancel()
	}
}

// getSlow serves a Get that process memory could not answer.
//
// With a loader, one command both reads and leases: SET key <lease> NX GET
// returns what the key holds, or takes the key's lease when it holds nothing
// (see lease.go). A value found this way is returned at once, and a
// client-side cached read in the background tracks the key and keeps a
// decoded copy for the next Gets (a write command cannot be tracked). A miss
// costs the round trip of that command, the load, and the write that replaces
// the lease: as many as a hand-written GET and SET. Only keys Redis cannot
// answer at once (leased by another, unreadable, Redis failing) enter the
// flight group. Without a loader there is nothing to lease: the read is a
// client-side cached GET.
func (c *Cache[K, V]) getSlow(ctx context.Context, k K) (V, error) {
	key := c.Key(k)
	if c.breaker.allow() {
		var (
			v    V
			err  error
			done bool
		)
		if c.load != nil {
			v, err, done = c.readOrLease(ctx, k, key)
		} else {
			v, err, done = c.readTracked(ctx, k, key)
		}
		if done {
			if err != nil {
				return v, err
			}
			return c.cloned(v), nil
		}
	}
	v, _, err := c.flights.Do(ctx, key, func(ctx context.Context) (V, error) {
		return c.fill(ctx, k, key)
	})
	if err != nil {
		var zero V
		return zero, err
	}
	return c.cloned(v), nil
}

// readOrLease is getSlow's first step with a loader. It reports done unless
// the key needs the flight group.
func (c *Cache[K, V]) readOrLease(ctx context.Context, k K, key string) (V, error, bool) {
	var zero V
	lease := newLease()
	raw, err := c.rc.Do(ctx, c.acquireCmd(key, lease)).AsBytes()
	c.breaker.record(classify(nilIfRedisNil(err)))
	switch {
	case rueidis.IsRedisNil(err):
		c.stats.misses.Add(1)
		v, err := c.loadHeld(ctx, k, key, lease)
		return v, err, true
	case err == nil:
		e, derr := c.decode(key, raw)
		if derr != nil {
			return zero, nil, false // leased by another, or unreadable
		}
		c.trackInBackground(ctx, k, key)
		v, err := c.served(ctx, k, e, rueidis.RedisResult{}, false, 0)
		return v, err, true
	}
	if _, ok := rueidis.IsRedisErr(err); ok {
		// Redis refused the write (out of memory, an ACL without SET):
		// the flight's fill reads with GET.
		return zero, nil, false
	}
	c.releaseLater(ctx, []string{key}, [][]byte{lease})
	failed := err
	v, _, err := c.flights.Do(ctx, key, func(ctx context.Context) (V, error) {
		return c.redisFailed(ctx, k, key, failed)
	})
	return v, err, true
}

// readTracked is getSlow's first step without a loader: a client-side cached
// GET in the caller's goroutine. It reports done unless the key needs the
// flight group.
func (c *Cache[K, V]) readTracked(ctx context.Context, k K, key string) (V, error, bool) {
	var zero V
	var snap uint64
	if c.local != nil {
		// Before the read: see the comment on local.
		snap = c.local.snapshot(key)
	}
	res, tracked := c.read(ctx, key)
	raw, err := res.AsBytes()
	c.breaker.record(classify(nilIfRedisNil(err)))
	switch {
	case err == nil:
		if e, derr := c.decode(key, raw); derr == nil {
			v, err := c.served(ctx, k, e, res, tracked, snap)
			return v, err, true
		}
		return zero, nil, false
	case rueidis.IsRedisNil(err):
		c.stats.misses.Add(1)
		return zero, fmt.Errorf("cache: %s: %w (no loader)", key, ErrNotFound), true
	}
	return zero, fmt.Errorf("cache: get %s: %w", key, classify(err)), true
}

// loadHeld loads key, whose lease this caller took, as the process's flight
// for key, so that its other Gets of key share the load. Should another
// flight of key be under way already (it began between this caller's SET and
// its claim, and is most likely waiting for this very lease), the lease is
// released first, then this caller waits for that flight.
//
// The load runs on a goroutine of its own, detached from the caller's
// cancellation (it writes for everyone, and must release the lease), so that
// a caller whose context ends returns at once.
func (c *Cache[K, V]) loadHeld(ctx context.Context, k K, key string, lease []byte) (V, error) {
	fl, leader := c.flights.Claim(key)
	if !leader {
		c.releaseLeases(ctx, []string{key}, [][]byte{lease})
		return fl.Wait(ctx)
	}
	load := func() {
		lctx, cancel := c.detached(ctx, 0)
		defer cancel()
		v, err := c.loadUnderLease(lctx, k, key, lease)
		fl.Finish(v, err)
	}
	if !c.spawn(load) {
		load() // the client is closing: no background work
	}
	return fl.Wait(ctx)
}

// trackInBackground reads key through the client-side cache on a background
// goroutine, so that Redis tracks it for this process and the next Gets find
// a decoded copy. One such read per key at a time.
func (c *Cache[K, V]) trackInBackground(ctx context.Context, k K, key string) {
	c.trackManyInBackground(ctx, []K{k}, []string{key}, []int{0})
}

// fill reads key from Redis and, when it holds nothing usable, loads it under
// the key's lease (see lease.go), waiting instead while another process holds
// the lease.
func (c *Cache[K, V]) fill(ctx context.Context, k K, key string) (V, error) {
	var zero V
	var wt *wait            // this fill's registered wait, once it saw a lease
	var waitUntil time.Time // when a waiter loads by itself (LeaseWait)
	sawLease, missed := false, false
	defer func() {
		if wt != nil {
			c.waits.unregister(key, wt)
		}
	}()
	for spins := 0; ; spins++ {
		if spins > maxSpins {
			// Bounded: the state changes under us faster than we can read
			// it. Back off before reading again.
			if err := sleepCtx(ctx, leasePoll); err != nil {
				return zero, err
			}
			spins = 0
		}
		var snap uint64
		if c.local != nil {
			// Before the read: see the comment on local.
			snap = c.local.snapshot(key)
		}
		if !c.breaker.allow() {
			c.stats.shortCircuits.Add(1)
			return c.redisFailed(ctx, k, key, errCircuitOpen)
		}
		res, tracked := c.read(ctx, key)
		raw, err := res.AsBytes()
		c.breaker.record(classify(nilIfRedisNil(err)))
		switch {
		case err == nil:
			e, derr := c.decode(key, raw)
			switch {
			case derr == nil:
				return c.served(ctx, k, e, res, tracked, snap)
			case errors.Is(derr, errLeaseHeld):
				sawLease = true
				if wt == nil || closed(wt) {
					// Register, then read again: an invalidation after the
					// registration wakes the wait; one before it already
					// dropped the cached reply, so the read asks Redis.
					wt = c.rewait(key, wt)
					continue
				}
				if v, err, done := c.awaitLease(ctx, k, key, wt, res.CachePTTL(), tracked, &waitUntil); done {
					return v, err
				}
				continue
			case errors.Is(derr, errNewerVersion):
				// A newer aside wrote it: load, but leave its value alone.
				c.stats.decodeErrors.Add(1)
				if c.load == nil {
					return zero, derr
				}
				return c.callLoader(ctx, k, key)
			default:
				// Unreadable bytes: remove them if nobody changed them
				// meanwhile, and go on as for a missing key.
				c.stats.decodeErrors.Add(1)
				if c.load == nil {
					return zero, derr
				}
				if _, err := c.replace(ctx, key, raw, nil, 0); err != nil {
					return c.redisFailed(ctx, k, key, err)
				}
				continue
			}
		case rueidis.IsRedisNil(err):
			if sawLease && res.IsCacheHit() {
				// The push that invalidates this cached "missing" is on
				// its way (a lease was seen after it): it wakes the wait
				// registered when the lease was seen. Bounded by a poll.
				if wt == nil || closed(wt) {
					wt = c.rewait(key, wt)
					continue
				}
				if err := c.waitWake(ctx, wt, leasePoll); err != nil {
					return zero, err
				}
				continue
			}
			if !missed {
				missed = true
				c.stats.misses.Add(1)
			}
			if c.load == nil {
				return zero, fmt.Errorf("cache: %s: %w (no loader)", key, ErrNotFound)
			}
			v, err, done := c.acquireAndLoad(ctx, k, key)
			if done {
				return v, err
			}
			sawLease = true
			wt = c.rewait(key, wt)
		default:
			return c.redisFailed(ctx, k, key, err)
		}
	}
}

const (
	// maxSpins bounds the reads a fill makes without waiting.
	maxSpins = 64
	// leasePoll is how often a waiter reads a leased key that Redis will
	// not invalidate for it (tracking off, or a reply that was not tracked).
	leasePoll = 10 * time.Millisecond
)

// served returns what a read from Redis found, keeping a decoded copy when
// the reply was tracked.
func (c *Cache[K, V]) served(ctx context.Context, k K, e *entry[V], res rueidis.RedisResult, tracked bool, snap uint64) (V, error) {
	c.stats.redisHits.Add(1)
	if c.local != nil && tracked {
		if pxat := res.CachePXAT(); pxat > 0 {
			e.expireAt = pxat * int64(time.Millisecond)
		}
		c.local.store(k, e, snap)
	}
	if e.notFound {
		c.stats.notFoundHits.Add(1)
		var zero V
		return zero, fmt.Errorf("cache: %s: %w", e.key, ErrNotFound)
	}
	if e.stale {
		c.stats.staleServed.Add(1)
	}
	if e.due(c.nanos()) {
		return c.whenDue(ctx, k, e)
	}
	return e.v, nil
}

// acquireAndLoad tries to take key's lease. Holding it, it loads and writes,
// and reports done. When the key holds a value, it returns it, done. When
// another process holds the lease (or the key holds something unreadable), it
// reports not done: the caller reads again and waits.
func (c *Cache[K, V]) acquireAndLoad(ctx context.Context, k K, key string) (V, error, bool) {
	var zero V
	lease := newLease()
	old, err := c.rc.Do(ctx, c.acquireCmd(key, lease)).AsBytes()
	switch {
	case rueidis.IsRedisNil(err):
		v, err := c.loadUnderLease(ctx, k, key, lease)
		return v, err, true
	case err != nil:
		if _, ok := rueidis.IsRedisErr(err); !ok {
			c.releaseLater(ctx, []string{key}, [][]byte{lease})
		}
		v, err := c.redisFailed(ctx, k, key, err)
		return v, err, true
	}
	e, derr := c.decode(key, old)
	if derr != nil {
		return zero, nil, false
	}
	// Written by another process between our GET and our SET. The reply
	// is not tracked: keep no copy.
	v, err := c.served(ctx, k, e, rueidis.RedisResult{}, false, 0)
	return v, err, true
}

// loadUnderLease loads key while holding lease, then replaces the lease with
// the value (or a not-found marker), or releases it when the load failed. The
// value is written only if the key still holds this lease: an invalidation
// during the load deleted it, and the value, read before that invalidation,
// must not be cached.
func (c *Cache[K, V]) loadUnderLease(ctx context.Context, k K, key string, lease []byte) (V, error) {
	v, err := c.safeLoad(ctx, k, key)
	data, ttl := c.resultEntry(key, v, err)
	c.commit(ctx, key, lease, data, ttl)
	return v, err
}

// safeLoad is callLoader with a loader panic turned into an error wrapping
// loader.ErrPanic, so that whoever holds a lease for the load releases it
// and the load's waiters get an answer.
func (c *Cache[K, V]) safeLoad(ctx context.Context, k K, key string) (v V, err error) {
	defer func() {
		if r := recover(); r != nil {
			c.stats.loadErrors.Add(1)
			var zero V
			v, err = zero, fmt.Errorf("cache: load %s: %w", key, &loader.PanicError{Value: r, Stack: debug.Stack()})
		}
	}()
	return c.callLoader(ctx, k, key)
}

// releaseLeases deletes each key that still holds its lease (a
// compare-and-delete, right whether the lease was ever set or not). It is not
// a write of this process's in the sense of wrote(): that would Forget the
// flights the callers may wait on next, and Redis' push of the deletion
// drops any copy anyway.
func (c *Cache[K, V]) releaseLeases(ctx context.Context, keys []string, leases [][]byte) {
	rctx, cancel := c.detached(ctx, writeTimeout)
	defer cancel()
	execs := make([]rueidis.LuaExec, len(keys))
	for i, key := range keys {
		execs[i] = rueidis.LuaExec{Keys: []string{key}, Args: []string{string(leases[i]), "", "0"}}
	}
	evalMany(rctx, c.rc, replaceScript, replaceSHA, execs)
}

// releaseLater releases, in the background, leases whose SET NX GET may or
// may not have reached Redis (its reply was lost: the caller's context
// ended, or the connection broke). Left alone, such a lease would make every
// process wait LeaseTTL for a load that never comes.
func (c *Cache[K, V]) releaseLater(ctx context.Context, keys []string, leases [][]byte) {
	if !c.spawn(func() { c.releaseLeases(ctx, keys, leases) }) {
		c.releaseLeases(ctx, keys, leases)
	}
}

// resultEntry is what the result of a load writes: the value's entry, a
// not-found marker, or nothing (nil data) for a failed load or a not-found
// that the policy does not cache.
func (c *Cache[K, V]) resultEntry(key string, v V, err error) ([]byte, time.Duration) {
	switch {
	case err == nil:
		eb := c.encodeValue(key, v)
		if eb.err != nil {
			c.stats.writeErrors.Add(1)
			return nil, 0
		}
		return eb.data, eb.ttl
	case errors.Is(err, ErrNotFound):
		if d := c.ttl.NegativeTTL(c.keyPart(key)); d > 0 {
			return envelope.Encode(envelope.NotFound, false, time.Time{}, nil), d
		}
	}
	return nil, 0
}

// commit puts data (for ttl) in place of old — or deletes the key when data
// is nil — only if the key still holds old, and counts what happened: a value
// not written because something replaced old meanwhile is a prevented stale
// write.
func (c *Cache[K, V]) commit(ctx context.Context, key string, old, data []byte, ttl time.Duration) {
	ok, err := c.replace(ctx, key, old, data, ttl)
	switch {
	case err != nil:
		c.stats.writeErrors.Add(1)
	case !ok && data != nil:
		c.stats.discardedFills.Add(1)
	}
}

// awaitLease waits until key's invalidation, the lease's expiry, or ctx. It
// reports done, with the loader's result, when LeaseWait ran out and the
// waiter loaded by itself (writing nothing: it holds no lease).
func (c *Cache[K, V]) awaitLease(ctx context.Context, k K, key string, wt *wait, pttl int64, tracked bool, waitUntil *time.Time) (V, error, bool) {
	var zero V
	c.stats.leaseWaits.Add(1)
	d := c.leaseTTL
	if pttl > 0 {
		d = time.Duration(pttl)*time.Millisecond + time.Millisecond
	}
	if !tracked || !c.client.tracking {
		d = min(d, leasePoll)
	}
	if c.leaseWait > 0 {
		now := time.Now()
		if waitUntil.IsZero() {
			*waitUntil = now.Add(c.leaseWait)
		}
		if !now.Before(*waitUntil) {
			c.stats.leaseTimeouts.Add(1)
			v, err := c.callLoader(ctx, k, key)
			return v, err, true
		}
		d = min(d, waitUntil.Sub(now))
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-wt.ch:
	case <-t.C:
	case <-ctx.Done():
		return zero, ctx.Err(), true
	}
	return zero, nil, false
}

// redisFailed decides what a fill does when Redis failed: the loader's value
// when Redis is unavailable and the policy is FailOpen, the error otherwise.
func (c *Cache[K, V]) redisFailed(ctx context.Context, k K, key string, err error) (V, error) {
	err = classify(err)
	if errors.Is(err, ErrUnavailable) && !errors.Is(err, errCircuitOpen) {
		c.stats.redisErrors.Add(1)
	}
	if !errors.Is(err, ErrUnavailable) || c.onDown == FailFast || c.load == nil {
		var zero V
		return zero, fmt.Errorf("cache: get %s: %w", key, err)
	}
	return c.fallbackLoad(ctx, k, key)
}

// nilIfRedisNil maps Redis' nil reply, an answer, to no error.
func nilIfRedisNil(err error) error {
	if rueidis.IsRedisNil(err) {
		return nil
	}
	return err
}

// rewait replaces a fill's wait for key (none, or one already woken) with a
// fresh registration.
func (c *Cache[K, V]) rewait(key string, wt *wait) *wait {
	if wt != nil && !closed(wt) {
		return wt
	}
	if wt != nil {
		c.waits.unregister(key, wt)
	}
	return c.waits.register(key)
}

// waitWake waits for wt's wake, at most d.
func (c *Cache[K, V]) waitWake(ctx context.Context, wt *wait, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-wt.ch:
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

func closed(wt *wait) bool {
	select {
	case <-wt.ch:
		return true
	default:
		return false
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// read is readMany for one key.
func (c *Cache[K, V]) read(ctx context.Context, key string) (rueidis.RedisResult, bool) {
	res, tracked := c.readMany(ctx, []string{key})
	return res[0], tracked[0]
}

// callLoader runs the loader for a key that Redis could not answer.
func (c *Cache[K, V]) callLoader(ctx context.Context, k K, key string) (V, error) {
	var zero V
	if c.load == nil {
		return zero, fmt.Errorf("cache: %s: %w (no loader)", key, ErrNotFound)
	}
	c.stats.loads.Add(1)
	v, err := c.load(ctx, k)
	switch {
	case err == nil:
		return v, nil
	case errors.Is(err, ErrNotFound):
		return zero, fmt.Errorf("cache: %s: %w", key, err)
	default:
		c.stats.loadErrors.Add(1)
		return zero, fmt.Errorf("cache: load %s: %w", key, err)
	}
}

var (
	errLeaseHeld    = errors.New("cache: key is leased by a loader")
	errNewerVersion = envelope.ErrVersion
)

// decode turns the bytes of a Redis key into an entry.
func (c *Cache[K, V]) decode(key string, raw []byte) (*entry[V], error) {
	env, err := envelope.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, key, err)
	}
	e := &entry[V]{key: key, stale: env.Stale}
	if !env.SoftExpiry.IsZero() {
		e.softAt = env.SoftExpiry.UnixNano()
	}
	switch env.Kind {
	case envelope.NotFound:
		e.notFound = true
	case envelope.Lease:
		return nil, errLeaseHeld
	default:
		if err := c.codec.Unmarshal(env.Payload, &e.v); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, key, err)
		}
	}
	return e, nil
}

// entryBytes is an encoded entry and the expiry to write it with.
type entryBytes struct {
	data []byte
	ttl  time.Duration
	err  error
}

// encodeValue encodes v with the TTLs the policy gives it.
func (c *Cache[K, V]) encodeValue(key string, v V) entryBytes {
	payload, err := c.codec.Marshal(v)
	if err != nil {
		return entryBytes{err: fmt.Errorf("cache: encode %s: %w", key, err)}
	}
	var ttls ttlpolicy.TTLs
	if c.valueTTL != nil {
		ttls = c.valueTTL.TTLOf(c.keyPart(key), v)
	} else {
		ttls = c.ttl.TTL(c.keyPart(key))
	}
	var soft time.Time
	if ttls.Soft > 0 {
		soft = c.now().Add(ttls.Soft)
	}
	return entryBytes{data: envelope.Encode(envelope.Value, false, soft, payload), ttl: ttls.Hard}
}

// setCmd is SET key entry PX ttl.
func (c *Cache[K, V]) setCmd(key string, eb entryBytes) rueidis.Completed {
	return c.rc.B().Set().Key(key).Value(rueidis.BinaryString(eb.data)).PxMilliseconds(ms(eb.ttl)).Build()
}

// keyPart strips the namespace from a Redis key of the cache.
func (c *Cache[K, V]) keyPart(key string) string { return key[len(c.ns):] }

// ms converts to whole milliseconds for PX, never below 1.
func ms(d time.Duration) int64 {
	if m := d.Milliseconds(); m > 0 {
		return m
	}
	return 1
}

// Stats returns a snapshot of the cache's counters.
func (c *Cache[K, V]) Stats() Stats {
	s := Stats{
		LocalHits:      c.stats.localHits.Load(),
		RedisHits:      c.stats.redisHits.Load(),
		Misses:         c.stats.misses.Load(),
		NotFoundHits:   c.stats.notFoundHits.Load(),
		Loads:          c.stats.loads.Load(),
		LoadErrors:     c.stats.loadErrors.Load(),
		Invalidations:  c.stats.invalidations.Load(),
		Fallbacks:      c.stats.fallbacks.Load(),
		DecodeErrors:   c.stats.decodeErrors.Load(),
		WriteErrors:    c.stats.writeErrors.Load(),
		LeaseWaits:     c.stats.leaseWaits.Load(),
		LeaseTimeouts:  c.stats.leaseTimeouts.Load(),
		DiscardedFills: c.stats.discardedFills.Load(),
		Refreshes:      c.stats.refreshes.Load(),
		RefreshErrors:  c.stats.refreshErrors.Load(),
		StaleServed:    c.stats.staleServed.Load(),
		RedisErrors:    c.stats.redisErrors.Load(),
		ShortCircuits:  c.stats.shortCircuits.Load(),
		BreakerTrips:   c.breaker.trips.Load(),
		BreakerOpen:    c.breaker.open.Load(),
		Tracking:       c.client.tracking,
	}
	if c.local != nil {
		s.LocalEntries = c.local.len()
	}
	return s
}

// invalidateKey is called by the client for every invalidation Redis pushes
// for a key of this namespace.
func (c *Cache[K, V]) invalidateKey(key string) {
	c.stats.invalidations.Add(1)
	if c.local != nil {
		c.local.invalidate(key)
	}
	c.written.done(key)
	c.waits.wake(key)
	// A load that started before the invalidation must not be shared with
	// reads that start after it.
	c.flights.Forget(key)
}

// invalidateAll is called when a connection dropped: Redis forgot what it
// tracked for it, so no copy can be trusted any more.
func (c *Cache[K, V]) invalidateAll() {
	if c.local != nil {
		c.local.invalidateAll()
	}
	c.written.clear()
	c.waits.wakeAll()
}

// readMany GETs keys through the client-side cache, in one round. When this
// process wrote a key and the invalidation of that write has not arrived yet
// (see written), a reply served from the client-side cache may hold the bytes
// from before the write: it is dropped, and a plain GET in a second round asks
// Redis. A reply that made its own round trip was read after the write, so it
// is good, and the client-side cache now holds it too. readMany reports for
// each key whether its reply came through client-side caching, that is
// whether Redis will invalidate it.
func (c *Cache[K, V]) readMany(ctx context.Context, keys []string) ([]rueidis.RedisResult, []bool) {
	cmds := make([]rueidis.CacheableTTL, len(keys))
	tracked := make([]bool, len(keys))
	var wrote []bool
	for i, key := range keys {
		cmds[i] = rueidis.CT(c.rc.B().Get().Key(key).Cache(), c.localTTL)
		tracked[i] = true
		if c.written.has(key) {
			if wrote == nil {
				wrote = make([]bool, len(keys))
			}
			wrote[i] = true
		}
	}
	out := c.rc.DoMultiCache(ctx, cmds...)
	var again rueidis.Commands
	var at []int
	for i, key := range keys {
		if wrote != nil && wrote[i] {
			if out[i].IsCacheHit() {
				again = append(again, c.rc.B().Get().Key(key).Build())
				at = append(at, i)
			} else if out[i].NonRedisError() == nil {
				c.written.done(key)
			}
		}
	}
	if len(again) > 0 {
		for j, res := range c.rc.DoMulti(ctx, again...) {
			out[at[j]] = res
			tracked[at[j]] = false
		}
	}
	return out, tracked
}
