package cache

import (
	"errors"
	"fmt"
	"time"

	"github.com/aside-go/aside/codec"
	"github.com/aside-go/aside/loader"
	"github.com/aside-go/aside/ttlpolicy"
)

// Options configures a [Cache]. The zero value of every field is a documented
// default; [New] validates the rest and names the field at fault.
type Options[K comparable, V any] struct {
	// Namespace prefixes every key of the cache as "<Namespace>:<key>". It is
	// required, and made of letters, digits and "_-." only, so that no key of
	// one cache can be a key of another (a ':' in a namespace would let
	// namespace "a" with key "b:c" collide with namespace "a:b" with key "c")
	// and so that a namespace never means anything to Redis' glob patterns.
	Namespace string

	// Key turns a typed key into the part of the Redis key after the
	// namespace. Default: the key itself for string kinds and its decimal
	// form for integer kinds; other key types must set it. Whatever it
	// returns stays inside the namespace.
	Key func(K) string

	// Codec encodes values. Default: [codec.MsgPack].
	Codec codec.Codec[V]

	// TTL decides the expiry of each write. Default: ttlpolicy.Minutes(5),
	// that is five minutes with ±10% jitter. A [ttlpolicy.ValuePolicy] for V
	// is asked with the value too.
	TTL ttlpolicy.Policy

	// Loader loads a missing key from the source of truth. Without one (and
	// without BatchLoader), Get of a missing key returns an error wrapping
	// [ErrNotFound].
	Loader loader.Func[K, V]

	// BatchLoader loads many missing keys in one call: GetMany hands it all
	// the keys it misses at once. Keys absent from its map are not found,
	// unless its error names them with a [loader.KeyError]. When only Loader
	// is set, GetMany runs it for the missing keys concurrently, at most
	// BatchConcurrency at a time; when only BatchLoader is set, Get uses it
	// with one key.
	BatchLoader loader.BatchFunc[K, V]

	// BatchConcurrency bounds the concurrent Loader calls of one GetMany
	// when there is no BatchLoader. Default: [loader.DefaultBatchLimit].
	BatchConcurrency int

	// LeaseTTL is how long a process loading a missing key holds its lease
	// in Redis, during which the other processes wait for its value instead
	// of loading it too. A holder that dies is taken over after it. It is
	// independent of the value's TTL; make it longer than a load takes.
	// Default: 5s.
	LeaseTTL time.Duration

	// LeaseWait, when positive, bounds how long a Get waits for another
	// process's load: past it, the Get loads by itself and returns that
	// value without writing it (it holds no lease). Default: 0, wait until
	// the value arrives or the lease expires and this process takes over.
	LeaseWait time.Duration

	// Refresh decides what Get does with a value past its soft TTL (set the
	// soft TTL with the policy, e.g. ttlpolicy.Minutes(5).WithSoft(0.8)).
	// Default: [RefreshBackground].
	Refresh RefreshMode

	// RefreshConcurrency bounds the background refreshes running at once
	// in this cache; a due value whose refresh finds no free slot is served
	// and refreshed on a later hit. Default: 4.
	RefreshConcurrency int

	// RefreshTimeout bounds one refresh: a background one, and a
	// synchronous one, which runs detached from its callers (one that stops
	// waiting, its context ending or its SoftTimeout reached, leaves it
	// running, to write for every process). Default: LeaseTTL, how long its
	// claim keeps other processes from refreshing the value too.
	RefreshTimeout time.Duration

	// SoftTimeout bounds how long a read waits for a refresh when a
	// previous value of the key is at hand: a value past its soft TTL under
	// RefreshSync (or one [Options].FailSafe could serve). Past it, the Get
	// returns that value, reported as [SourceStale] and counted in
	// [Stats].StaleServed, while the refresh goes on in the background under
	// its claim and writes its value for every process as usual. A value
	// too old to be served stale ([Options].FailSafeMaxAge) is not at hand:
	// HardTimeout bounds its wait instead. Default: 0, wait for the refresh
	// (with HardTimeout set, at most HardTimeout, and then the value at hand
	// is served the same way). [LoadTimeouts] sets it for one read.
	SoftTimeout time.Duration

	// HardTimeout bounds how long a read waits for a load when no value of
	// the key is at hand: the load this read holds the lease of, a load of
	// the process it joined, or another process's load it waits for (its
	// lease in Redis). Counted from the start of the Get, past it the key
	// fails with an error wrapping [ErrLoadTimeout] (counted in
	// [Stats].LoadTimeouts); the load goes on in the background under its
	// lease, and its value is written to Redis and reaches every process as
	// usual, so a later Get finds it. A load that writes nothing (Redis
	// unavailable under FailOpen, or after LeaseWait) runs on the caller's
	// context, which bounds it instead. Default: 0, wait as long as the
	// caller's context allows. [LoadTimeouts] sets it for one read.
	HardTimeout time.Duration

	// FailSafe, under RefreshSync, makes a refresh whose loader fails serve
	// the value at hand instead of failing the Get, as RefreshBackground
	// always does (stale-if-error): the value is within its hard TTL, and
	// within FailSafeMaxAge of its soft expiry. Such Gets are counted in
	// [Stats].FailSafeServed (and StaleServed) and report [SourceStale]. A
	// loader that says the record is gone ([ErrNotFound]) is no failure: the
	// value goes. Default: false, a failing refresh fails the Get.
	FailSafe bool

	// FailSafeThrottle is how long, after a refresh of a key failed (in
	// either refresh mode), no process of the fleet calls the loader for
	// that key again: the failed refresh moves the value's soft expiry in
	// Redis to the failure's time plus FailSafeThrottle (only if its claim
	// still stands), and the value at hand is served meanwhile, until its
	// hard TTL. Default: LeaseTTL, which is where the refresh's claim moved
	// the soft expiry already.
	FailSafeThrottle time.Duration

	// FailSafeMaxAge bounds how long past its soft expiry a value may be
	// served stale. A value whose soft expiry passed more than FailSafeMaxAge
	// ago is refreshed synchronously, in either refresh mode, its wait
	// bounded by HardTimeout, and a failure fails the Get. So that no
	// process serves it either while a refresh is throttled or its
	// refresher died, a refresh that claims a value also cuts the key's TTL
	// in Redis to end FailSafeMaxAge after the value's soft expiry (a
	// successful refresh writes a fresh TTL), and a failed refresh of a value
	// past it deletes it. While a refresh runs, other processes serve the
	// value it claimed, as always (at most RefreshTimeout). Default: 0, a
	// value may be served stale until its hard TTL.
	FailSafeMaxAge time.Duration

	// RedisTimeout is the time budget of every Redis call a Get, GetMany or
	// write makes (one round trip: a command, a script, or a pipeline, which
	// gets RedisTimeout for each 100 commands), whatever the caller's context
	// allows: a call without an answer by then fails with [ErrUnavailable]
	// (a context error only when the caller's own context ended first),
	// counts toward the breaker and Stats.RedisErrors, and a read falls back
	// to the loader under [FailOpen]. With Redis hung or slow, a Get costs
	// at most about this budget plus the load: a Get that loads makes one
	// call (its visit), and its load's write goes on in the background,
	// bounded by LeaseTTL. Default: 250ms — a hundred times a
	// Redis round trip in one region, so GC pauses and busy networks do not
	// trip it, and short enough that a request survives a Redis that hangs.
	RedisTimeout time.Duration

	// OnRedisDown decides what Get does when Redis is unavailable. Default:
	// [FailOpen].
	OnRedisDown RedisDownPolicy

	// BreakerThreshold is the number of consecutive reads that find Redis
	// unavailable after which the cache stops asking it for
	// BreakerCooldown, so that requests do not each pay a timeout; then one
	// read probes it. Default: 5. A negative value turns the breaker off.
	// A TRYAGAIN (a command of several keys of a cluster slot being moved)
	// fails its call with ErrUnavailable but does not count: the node
	// answered.
	BreakerThreshold int

	// BreakerCooldown is how long the breaker stays open. Default: 1s.
	BreakerCooldown time.Duration

	// OutageStaleness, when positive, keeps an outage of Redis from moving
	// every read onto the loader: while Redis is unavailable (a read of it
	// failed, or the breaker is open), Get serves the copy that process
	// memory held when Redis was last heard from — for at most
	// OutageStaleness after that — instead of loading, counted in
	// [Stats].StaleServed. Such a copy may be older than the source by up
	// to OutageStaleness: that is the trade. Keys without a copy load as
	// [Options].OnRedisDown says. Default: 0, off.
	OutageStaleness time.Duration

	// StaleWhileReloading, when positive, keeps another process's change
	// of a key from holding this process's reads of it: when Redis pushes
	// the change, the copy of the key's previous value stays in process
	// memory, flagged stale, and for at most StaleWhileReloading after the
	// push reached this process, reads get it at once (counted in
	// Stats.StaleServed) while the first of them starts one load of the
	// key in the background (the fleet's lease as usual: one load across
	// the processes). Once that reload stored the new value, or the bound
	// passed, reads get the new value as without this option. The trade:
	// a read may return a value older than a change that returned up to
	// StaleWhileReloading (plus the push delay) before it began; G2 and G4
	// hold only past that bound. What stays: a load that read the source
	// before a change never writes (G1); this process's own writes,
	// invalidations and Clear are read by its next read at once (G3: only
	// changes pushed by Redis keep a copy); one load per key (G5); a
	// flush, a dropped connection or a Clear drops every copy as before;
	// not-found markers are not kept. Default: 0, off.
	StaleWhileReloading time.Duration

	// FallbackConcurrency bounds the loader calls running at once because
	// Redis is unavailable (FailOpen), so that a dead Redis does not become
	// a flood on the source of truth; further Gets wait for a slot or their
	// context. Default: 16.
	FallbackConcurrency int

	// LocalBytes bounds the process memory the decoded copies take, as
	// the sum of their weights: a copy weighs the size of its encoded form
	// in Redis, plus its Redis key, plus 160 bytes for the bookkeeping. A
	// decoded value may take more or less memory than its encoding; the
	// weight is an estimate, not a measure of the heap. Past the bound, the
	// copies least likely to be read again are evicted (otter's W-TinyLFU:
	// a new copy is admitted only if it is read more often than the one it
	// would evict); Redis still holds them. Default: 64 MiB. A negative
	// value keeps no copies at all.
	LocalBytes int64

	// MaxValueBytes bounds the size of a value's encoded form (the codec's
	// bytes, compressed if the codec compresses, in their envelope): a Set
	// of a larger value fails with an error wrapping [ErrTooLarge] before
	// anything is sent, and a larger loaded value is returned to its
	// callers but neither written to Redis nor kept (Stats.TooLarge).
	// Default: 0, no bound but Redis' own (512 MiB). Whatever the bound, a
	// write's time budget grows with its size: RedisTimeout plus 1ms per
	// 64 KiB, so that a large value is not taken for Redis in trouble.
	MaxValueBytes int

	// LocalTTL bounds how long process memory keeps a copy of a value whose
	// Redis key has no expiry; copies of keys with an expiry are kept until
	// it, or until Redis invalidates them. Default: one hour.
	LocalTTL time.Duration

	// MaxSilence bounds how long copies in process memory are served while
	// Redis is silent: the client PINGs every node every 200ms (a client
	// without tracking keeps no copies and sends none), and a copy
	// is served only while every node answered a round that began at most
	// MaxSilence ago; otherwise the read goes to Redis (within
	// RedisTimeout). A network partition that silences the connections
	// without closing them therefore stops stale copies within MaxSilence,
	// where rueidis alone would notice after ConnWriteTimeout (10s).
	// Default: 1s. A negative value serves copies whatever the heartbeat
	// says.
	MaxSilence time.Duration

	// Clone, when set, is applied to every value Get returns. Values served
	// from process memory are shared between callers and must be treated as
	// read-only; a Clone that deep-copies lifts that rule, at its cost.
	Clone func(V) V

	// Now is the clock. Default: time.Now. Tests inject their own.
	Now func() time.Time

	// Plain stores exactly the codec's bytes under each key, nothing
	// around them, so that other programs read the cache's values as they
	// are (with codec.JSON or codec.String, a redis-py GET returns the JSON
	// document or the string). Default: false, every value goes in aside's
	// envelope, 11 bytes in front of the codec's bytes (see the package
	// documentation, "What Redis holds").
	//
	// Plain mode gives up what the envelope carries: no not-found markers
	// (the policy's negative TTL is not used: a key the loader does not
	// find is loaded again by the next Get), no soft TTL, so no
	// refresh-ahead and no stale-if-error refresh (New refuses a TTL
	// policy with a soft TTL, in a ttlpolicy.ByPrefix rule too, and
	// Refresh, RefreshConcurrency, RefreshTimeout, SoftTimeout and the
	// FailSafe options; a soft TTL that a
	// ttlpolicy.ValuePolicy decides from a value is not stored), and Set
	// refuses a value whose encoding begins with
	// the envelope's magic byte 0xC1 (only raw bytes or invalid UTF-8
	// can). The lease of a load lives in a sibling key of the same
	// cluster slot, "<Namespace>#lease{...}", which no other program
	// reads as a value; one load per key across processes still holds.
	// Delete, Invalidate, InvalidateTag and [Client.Invalidate] delete it
	// before the value, InvalidatePattern and InvalidatePrefix every lease
	// of the namespace before the values, and Set as it writes, so that a
	// load under way does not write a value read before them; another
	// program that
	// deletes a key to invalidate it while aside is loading it must delete
	// its lease key too for the same guarantee (a value it writes is never
	// overwritten by the load). Reads are the
	// same in both modes: bytes beginning with the magic are aside's
	// entries, any others a plain value.
	Plain bool

	// ReplaceUnreadable lets a Get that finds bytes it cannot read under a
	// key — neither an aside entry nor anything the codec decodes — delete
	// them (only if they are still there) and load the key as if it were
	// missing. Default: false, such bytes are another program's and stay
	// in Redis: the Get fails with an error wrapping [ErrCorrupt], counted
	// in [Stats].DecodeErrors, and nothing is loaded or written for the
	// key until they change or expire.
	ReplaceUnreadable bool

	// Recorder, when set, receives the cache's counters and the operations
	// that leave process memory, for metrics and traces (see [Recorder]; the
	// module github.com/aside-go/aside/otel is one for OpenTelemetry). The
	// hit path never calls it. Default: nil, no calls.
	Recorder Recorder
}

// RedisDownPolicy is what Get does when Redis is unavailable.
type RedisDownPolicy int

const (
	// FailOpen calls the loader directly and returns its value, without
	// writing it anywhere. The error is counted in [Stats].Fallbacks.
	FailOpen RedisDownPolicy = iota
	// FailFast returns an error wrapping [ErrUnavailable].
	FailFast
)

// ErrInvalidOptions is wrapped by every error [New] returns for a bad option.
var ErrInvalidOptions = errors.New("invalid options")

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("cache: %w: %s: %s", ErrInvalidOptions, field, fmt.Sprintf(format, args...))
}

// Option varies one call of a write.
type Option func(*callOptions)

type callOptions struct {
	ttl  time.Duration // 0: the policy's
	tags []string
	err  error // the first invalid option
}

// WithTTL sets the expiry of this write, overriding the policy: SETEX/PSETEX
// semantics with millisecond precision (d is truncated to whole milliseconds
// and must be at least 1ms: a smaller d, zero or negative included, fails the
// write with an error wrapping [ErrInvalidOptions] that names WithTTL).
func WithTTL(d time.Duration) Option {
	return func(o *callOptions) {
		if d < time.Millisecond {
			o.invalid(fmt.Errorf("%w: WithTTL(%v): the TTL must be at least 1ms", ErrInvalidOptions, d))
			return
		}
		o.ttl = d
	}
}

// WithTags attaches tags to the keys of this write, so that
// [Cache.InvalidateTag] of any of them removes the keys. See InvalidateTag for
// how tag indexes are kept bounded. An empty tag fails the write with an
// error wrapping [ErrInvalidOptions] that names WithTags.
func WithTags(tags ...string) Option {
	return func(o *callOptions) {
		for _, tag := range tags {
			if tag == "" {
				o.invalid(fmt.Errorf("%w: WithTags: an empty tag", ErrInvalidOptions))
				return
			}
		}
		o.tags = append(o.tags, tags...)
	}
}

func (o *callOptions) invalid(err error) {
	if o.err == nil {
		o.err = err
	}
}
