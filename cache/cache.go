package cache

import (
	"errors"
	"fmt"
	"strconv"
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
	ns        string // namespace + ":"
	keyFn     func(K) string
	codec     codec.Codec[V]
	ttl       ttlpolicy.Policy
	valueTTL  ttlpolicy.ValuePolicy[V] // ttl, when it also looks at values
	load      loader.Func[K, V]
	batch     loader.BatchFunc[K, V]
	leaseTTL  time.Duration
	leasePX   string // leaseTTL in milliseconds, the visit's PX argument
	leaseWait time.Duration
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
	flights loader.Group[*entry[V]]
	// held maps a Redis key to the load this process runs under its lease
	// (*heldLoad[V]); a read that finds that very lease waits for it.
	held sync.Map
	// refreshes shares a synchronous refresh between the Gets of a key.
	refreshes loader.Group[V]
	stats     counters
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
	refreshSlots   chan struct{} // one token per running background refresh

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
	if err := opts.validate(); err != nil {
		return nil, err
	}
	injected := opts.Now
	o := opts.withDefaults()
	c := &Cache[K, V]{
		client:         client,
		ns:             o.Namespace + ":",
		keyFn:          o.Key,
		codec:          o.Codec,
		ttl:            o.TTL,
		load:           o.Loader,
		batch:          o.BatchLoader,
		leaseTTL:       o.LeaseTTL,
		leasePX:        strconv.FormatInt(ms(o.LeaseTTL), 10),
		leaseWait:      o.LeaseWait,
		redisTimeout:   o.RedisTimeout,
		maxSilence:     o.MaxSilence,
		outage:         o.OutageStaleness,
		refreshMode:    o.Refresh,
		refreshTimeout: o.RefreshTimeout,
		refreshSlots:   make(chan struct{}, o.RefreshConcurrency),
		fallbackSlots:  make(chan struct{}, o.FallbackConcurrency),
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
	c.background.closing = client.closing
	switch {
	case c.batch == nil && c.load != nil:
		c.batch = c.load.Batch(o.BatchConcurrency)
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

// stash is the copies a flush took out of local, kept for outageCopy.
type stash[K comparable, V any] struct {
	mu    sync.Mutex
	since int64           // when Redis was last heard from before the flush (client clock); guarded by mu
	made  int64           // when the first flush filled it (Unix nanoseconds); guarded by mu
	items map[K]*entry[V] // guarded by mu; nil when empty
	index map[string][]K  // Redis key -> typed keys in items; guarded by mu
	any   atomic.Bool     // items is not empty: lets unstash skip the mutex
}

// stashCopies keeps the copies of local aside for outageCopy, before a
// flush drops them: Redis may be going away, and they are the last values it
// confirmed — as of when it was last heard from.
func (c *Cache[K, V]) stashCopies() {
	s := &c.stash
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.items == nil {
		s.items, s.index = make(map[K]*entry[V]), make(map[string][]K)
		s.since = min(c.client.clock.now(), c.client.heard.Load())
		s.made = time.Now().UnixNano()
	}
	for k, e := range c.local.all() {
		s.items[k] = e
		s.index[e.key] = append(s.index[e.key], k)
	}
	s.any.Store(len(s.items) > 0)
}

// unstash forgets the stashed copies of the Redis key: it changed, or this
// process wrote it.
func (c *Cache[K, V]) unstash(key string) {
	s := &c.stash
	if !s.any.Load() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.index[key] {
		delete(s.items, k)
	}
	delete(s.index, key)
}

// unstashWhere is unstash for every Redis key match reports true of.
func (c *Cache[K, V]) unstashWhere(match func(key string) bool) {
	s := &c.stash
	if !s.any.Load() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, ks := range s.index {
		if match(key) {
			for _, k := range ks {
				delete(s.items, k)
			}
			delete(s.index, key)
		}
	}
}

// verified is called by the client's heartbeat when every node answered a
// round that began at start: copies stashed before it are never served again.
// (A stash made after the round began is kept: the flush that made it may be
// Redis going away right after answering.)
func (c *Cache[K, V]) verified(start int64) {
	s := &c.stash
	if !s.any.Load() {
		return
	}
	s.mu.Lock()
	if s.made < start {
		s.items, s.index = nil, nil
		s.any.Store(false)
	}
	s.mu.Unlock()
}

// outageCopy returns, for a read that found Redis unavailable, the copy of k
// that OutageStaleness lets it serve: the copy in local while Redis was
// heard from at most OutageStaleness ago, or one stashed by a flush when
// Redis was last heard from at most that long ago before it; nil when there
// is none.
func (c *Cache[K, V]) outageCopy(k K) *entry[V] {
	if c.outage <= 0 || c.local == nil {
		return nil
	}
	now, nanos := c.client.clock.now(), c.nanos()
	var e *entry[V]
	if le, ok := c.local.peek(k); ok && now-c.client.heard.Load() <= int64(c.outage) {
		e = le
	} else {
		s := &c.stash
		s.mu.Lock()
		if se, ok := s.items[k]; ok && now-s.since <= int64(c.outage) {
			e = se
		}
		s.mu.Unlock()
	}
	if e == nil || e.expireAt != 0 && nanos >= e.expireAt {
		return nil
	}
	// Served as stale, and never refreshed from here.
	return &entry[V]{v: e.v, notFound: e.notFound, stale: true, key: e.key, expireAt: e.expireAt, src: SourceLocal}
}

var (
	errLeaseHeld    = errors.New("key is leased by a loader")
	errNewerVersion = envelope.ErrVersion
	errBadReply     = errors.New("unexpected reply from redis")
)

// errForeign is the cause of the ErrCorrupt of bytes that are not an entry
// and that the codec cannot decode.
var errForeign = errors.New("not an aside entry, and the codec cannot decode it as a value")

// decode turns the bytes of a Redis key into an entry. Bytes that do not
// begin with the envelope's magic byte are a value as another program (or a
// cache in plain mode) stores it: the codec's bytes alone, decoded as such,
// without soft expiry.
func (c *Cache[K, V]) decode(key string, raw []byte) (*entry[V], error) {
	if !envelope.IsEntry(raw) {
		e := &entry[V]{key: key, size: uint32(len(raw)), src: SourceRedis}
		if err := c.codec.Unmarshal(raw, &e.v); err != nil {
			return nil, fmt.Errorf("cache: %s: %w: %w: %w", key, ErrCorrupt, errForeign, err)
		}
		return e, nil
	}
	env, err := envelope.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("cache: %s: %w: %w", key, ErrCorrupt, err)
	}
	e := &entry[V]{key: key, stale: env.Stale, size: uint32(len(raw)), src: SourceRedis}
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
			return nil, fmt.Errorf("cache: %s: %w: %w", key, ErrCorrupt, err)
		}
	}
	return e, nil
}

// holdsValue reports whether raw, the bytes of a key of the cache, is a
// value: not a not-found marker nor a lease. Bytes that are not an entry are
// another program's value.
func holdsValue(raw []byte) bool {
	if !envelope.IsEntry(raw) {
		return true
	}
	env, err := envelope.Decode(raw)
	return err == nil && env.Kind == envelope.Value
}

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

// entryBytes is an encoded entry and the expiry to write it with.
type entryBytes struct {
	data   []byte
	ttl    time.Duration
	softAt int64 // Unix nanoseconds; 0 = no soft expiry
	err    error
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
	if c.plain {
		if envelope.IsEntry(payload) {
			return entryBytes{err: fmt.Errorf("cache: encode %s: %w: in plain mode a value may not begin with byte %#x, the envelope's magic: aside would read it as its own entry", key, codec.ErrEncode, envelope.Magic)}
		}
		return entryBytes{data: payload, ttl: ttls.Hard}
	}
	var soft time.Time
	var softAt int64
	if ttls.Soft > 0 {
		soft = c.now().Add(ttls.Soft)
		// The envelope keeps milliseconds: so does the copy, so that it
		// comes due when a copy decoded from Redis would.
		softAt = time.UnixMilli(soft.UnixMilli()).UnixNano()
	}
	return entryBytes{data: envelope.Encode(envelope.Value, false, soft, payload), ttl: ttls.Hard, softAt: softAt}
}

// notFoundBytes is the not-found marker of key, or nil when the policy caches
// no absence.
func (c *Cache[K, V]) notFoundBytes(key string) ([]byte, time.Duration) {
	if c.plain {
		return nil, 0 // no marker: another program would read it as a value
	}
	if d := c.ttl.NegativeTTL(c.keyPart(key)); d > 0 {
		return envelope.Encode(envelope.NotFound, false, time.Time{}, nil), d
	}
	return nil, 0
}

// ms converts to whole milliseconds for PX, never below 1.
func ms(d time.Duration) int64 {
	if m := d.Milliseconds(); m > 0 {
		return m
	}
	return 1
}

// cloned applies the Clone option.
func (c *Cache[K, V]) cloned(v V) V {
	if c.clone != nil {
		return c.clone(v)
	}
	return v
}
