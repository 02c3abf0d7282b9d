package cache

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/aside-go/aside/codec"
	"github.com/aside-go/aside/internal/flight"
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
	client        *Client
	ns            string // namespace + ":"
	keyFn         func(K) string
	codec         codec.Codec[V]
	ttl           ttlpolicy.Policy
	valueTTL      ttlpolicy.ValuePolicy[V] // ttl, when it also looks at values
	load          loader.Func[K, V]
	batch         loader.BatchFunc[K, V]
	maxValueBytes int // see Options.MaxValueBytes; 0: no bound
	// userLoad is the Loader that batch calls once per key (see
	// scopedLoad), when there is no BatchLoader.
	userLoad loader.Func[K, V]
	// loaderPerKey: batch calls Loader once per key (no BatchLoader).
	loaderPerKey bool
	leaseTTL     time.Duration
	leasePX      string // leaseTTL in milliseconds, the visit's PX argument
	leaseWait    time.Duration
	// redisTimeout bounds each Redis call (see budget).
	redisTimeout time.Duration
	maxSilence   time.Duration // see Options.MaxSilence
	outage       time.Duration // see Options.OutageStaleness
	// stash keeps, when outage > 0, the copies a flush or a dropped
	// connection took out of local, for reads while Redis is down; the
	// client's heartbeat empties it once Redis answers.
	stash    stash[K, V]
	onDown   RedisDownPolicy
	localTTL time.Duration
	// plain stores the codec's bytes alone, leases in sibling keys (see
	// plain.go); replaceUnreadable lets a read delete bytes it cannot read.
	plain             bool
	replaceUnreadable bool
	clone             func(V) V
	now               func() time.Time
	// nanos is the hit path's clock: the client's coarse clock, or Now
	// when the options inject one.
	nanos func() int64

	// local holds the decoded copies (none when Options.LocalBytes is
	// negative, or while the client has no tracking: nothing would keep
	// copies fresh; its counters still order reads and waits).
	local *local[K, V]
	waits waits
	// flights shares one resolution of a key (the Redis visit, and the
	// load when there is one) between the Gets of the process. Only with
	// tracking: a push forgets the flight of a key that changed.
	flights flight.Group[*entry[V]]
	// held maps a Redis key to the load this process runs under its lease;
	// a read that finds that very lease waits for it.
	held *heldTable[V]
	// refreshes shares a synchronous refresh between the Gets of a key.
	refreshes flight.Group[V]
	stats     counters
	// gen is the namespace's generation (see clear.go).
	gen *generation
	// refusalLogged is when a refused lease was last logged (Unix nanoseconds).
	refusalLogged atomic.Int64
	// tagWrites counts writes with tags, to sample their indexes.
	tagWrites atomic.Uint64

	breaker       breaker
	fallbackSlots chan struct{} // one token per running fallback load
	// blind orders the loads that no push would tell of a change (see
	// fallback.go).
	blind blindLoads[K, V]

	refreshMode    RefreshMode
	refreshTimeout time.Duration
	// staleWhileReloading: Options.StaleWhileReloading (see reloading.go).
	staleWhileReloading time.Duration
	refreshSlots        chan struct{} // one token per running background refresh
	// refreshWrites lets AwaitWrites wait for the refreshes running.
	refreshWrites refreshWrites

	// The load timeouts and the fail-safe options (see failsafe.go).
	timeouts         timeouts
	failSafe         bool
	failSafeThrottle time.Duration
	failSafeMaxAge   time.Duration

	// rec is Options.Recorder: nil, or told of the operations that leave
	// process memory (see recorder.go).
	rec Recorder

	background
}

// New builds a cache on a client made by [Connect]. It returns an error
// wrapping [ErrInvalidOptions] that names the field when an option is invalid.
func New[K comparable, V any](client *Client, opts Options[K, V]) (*Cache[K, V], error) {
	if client == nil {
		return nil, fmt.Errorf("cache: %w: client: nil (build one with cache.Connect)", ErrInvalidOptions)
	}
	if client.isClosed.Load() {
		return nil, fmt.Errorf("cache: new: %w", ErrClosed)
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	injected := opts.Now
	o := opts.withDefaults()
	c := &Cache[K, V]{
		client:              client,
		ns:                  o.Namespace + ":",
		held:                newHeldTable[V](),
		gen:                 newGeneration(o.Namespace),
		keyFn:               o.Key,
		codec:               o.Codec,
		ttl:                 o.TTL,
		load:                o.Loader,
		batch:               o.BatchLoader,
		leaseTTL:            o.LeaseTTL,
		leasePX:             strconv.FormatInt(ms(o.LeaseTTL), 10),
		leaseWait:           o.LeaseWait,
		maxValueBytes:       o.MaxValueBytes,
		redisTimeout:        o.RedisTimeout,
		maxSilence:          o.MaxSilence,
		outage:              o.OutageStaleness,
		refreshMode:         o.Refresh,
		refreshTimeout:      o.RefreshTimeout,
		staleWhileReloading: o.StaleWhileReloading,
		refreshSlots:        make(chan struct{}, o.RefreshConcurrency),
		fallbackSlots:       make(chan struct{}, o.FallbackConcurrency),
		breaker: breaker{
			threshold: o.BreakerThreshold,
			cooldown:  o.BreakerCooldown,
			now:       o.Now,
			log:       client.logger(),
			namespace: o.Namespace,
		},
		onDown:   o.OnRedisDown,
		localTTL: o.LocalTTL,
		plain:    o.Plain,
		clone:    o.Clone,
		now:      o.Now,
	}
	c.replaceUnreadable = o.ReplaceUnreadable
	c.timeouts = timeouts{soft: o.SoftTimeout, hard: o.HardTimeout}
	c.failSafe, c.failSafeThrottle, c.failSafeMaxAge = o.FailSafe, o.FailSafeThrottle, o.FailSafeMaxAge
	c.background.closing = client.closing
	switch {
	case c.batch == nil && c.load != nil:
		c.userLoad = c.load
		c.batch = loader.Func[K, V](c.scopedLoad).Batch(o.BatchConcurrency)
		c.loaderPerKey = true
	case c.load == nil && c.batch != nil:
		c.load = c.batch.One()
	}
	c.nanos = client.clock.now
	if injected != nil {
		c.nanos = func() int64 { return injected().UnixNano() }
	}
	if vp, ok := o.TTL.(ttlpolicy.ValuePolicy[V]); ok {
		c.valueTTL = vp
	}
	c.local = newLocal[K, V](o.LocalBytes)
	client.subscribe(o.Namespace, c)
	if c.rec = o.Recorder; c.rec != nil {
		c.rec.Observe(o.Namespace, c.Stats)
	}
	return c, nil
}

// tracks reports whether the client is connected with tracking: copies may
// be kept, and flights shared.
func (c *Cache[K, V]) tracks() bool { return c.client.Tracking() }

// redis returns the rueidis client, or an error wrapping ErrUnavailable
// while the client has not reached Redis yet.
func (c *Cache[K, V]) redis() (rueidis.Client, error) {
	if c.client.isClosed.Load() {
		return nil, ErrClosed
	}
	if rc, ok := c.client.redis(); ok {
		return rc, nil
	}
	return nil, errNotConnected
}

// errNotConnected is the error of every call before the client reached Redis.
var errNotConnected = fmt.Errorf("%w: not connected yet", ErrUnavailable)

// Key returns the Redis key of k: the namespace, a colon, and the key
// function's output.
func (c *Cache[K, V]) Key(k K) string { return c.ns + c.keyFn(k) }

// keyPart strips the namespace from a Redis key of the cache.
func (c *Cache[K, V]) keyPart(key string) string { return key[len(c.ns):] }

// expiryFrom is the hard expiry (Unix nanoseconds) of a copy whose key's
// PTTL Redis answered to a command sent at sent: the key's, or LocalTTL for
// a key without one. Counted from before the command was sent, it ends no
// later than the key in Redis, however late the reply was read.
func (c *Cache[K, V]) expiryFrom(sent time.Time, pttl int64) int64 {
	if pttl > 0 {
		return sent.Add(time.Duration(pttl) * time.Millisecond).UnixNano()
	}
	return sent.Add(c.localTTL).UnixNano()
}

// cloned applies the Clone option.
func (c *Cache[K, V]) cloned(v V) V {
	if c.clone != nil {
		return c.clone(v)
	}
	return v
}
