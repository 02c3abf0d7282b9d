package cache

import (
	"sync/atomic"
	"unsafe"
)

// Stats is an immutable snapshot of a cache's counters since it was built.
type Stats struct {
	// LocalHits counts Gets served from process memory (values and
	// not-found markers).
	LocalHits uint64
	// RedisHits counts reads that found a value or a not-found marker in
	// Redis (a round trip).
	RedisHits uint64
	// Misses counts reads that found nothing usable in Redis.
	Misses uint64
	// NotFoundHits counts the hits, local or Redis, that were not-found
	// markers.
	NotFoundHits uint64
	// Loads counts the calls of the loader functions: of Loader, once per
	// key (a GetMany of ten missing keys with only a Loader calls it ten
	// times); of BatchLoader, once per batch. KeysLoaded counts the keys
	// they were asked for. LoadErrors counts the keys whose load failed
	// with an error other than loader.ErrNotFound.
	Loads, KeysLoaded, LoadErrors uint64
	// Invalidations counts keys dropped from process memory because Redis
	// or this cache invalidated them.
	Invalidations uint64
	// Fallbacks counts Gets that went straight to the loader because Redis
	// was unavailable (the FailOpen policy).
	Fallbacks uint64
	// DecodeErrors counts values in Redis that could not be read.
	DecodeErrors uint64
	// WriteErrors counts write-backs of loaded values that Redis refused or
	// never acknowledged; the loaded value was still returned.
	WriteErrors uint64
	// LeaseWaits counts the waits of fills for a key another process (or
	// another fill of this one) was loading under its lease.
	LeaseWaits uint64
	// LeaseTimeouts counts waiters that loaded by themselves after
	// LeaseWait, without writing.
	LeaseTimeouts uint64
	// DiscardedFills counts loaded values that were not written because the
	// key was invalidated (or its lease taken over) during the load: each is
	// a stale write prevented.
	DiscardedFills uint64
	// Refreshes counts refreshes ahead of expiry this process ran (it
	// claimed the value); RefreshErrors those whose load failed.
	Refreshes, RefreshErrors uint64
	// StaleServed counts Gets that returned a value past its soft TTL,
	// within its hard TTL: while its refresh ran (RefreshBackground, or
	// past Options.SoftTimeout, or while another process refreshed it),
	// after the refresh failed (stale-if-error, Options.FailSafe), or during
	// a refresh's throttle; and copies served through an outage
	// (Options.OutageStaleness). Each such Get reports SourceStale.
	StaleServed uint64
	// FailSafeServed counts the Gets under RefreshSync with
	// Options.FailSafe whose refresh failed and that served the value at
	// hand instead (counted in StaleServed too).
	FailSafeServed uint64
	// NotModified counts refreshes whose loader returned ErrNotModified:
	// the value was kept, with a fresh soft expiry and TTL.
	NotModified uint64
	// LoadTimeouts counts the keys of reads that failed with
	// ErrLoadTimeout (Options.HardTimeout).
	LoadTimeouts uint64
	// RedisErrors counts the reads (and Set or SetMany calls) that found
	// Redis unavailable.
	RedisErrors uint64
	// ShortCircuits counts reads that skipped Redis because the circuit
	// breaker was open; BreakerTrips the times it opened; BreakerOpen
	// whether it is open now.
	ShortCircuits, BreakerTrips uint64
	BreakerOpen                 bool
	// Refusals counts reads whose lease Redis refused (out of memory, an
	// ACL that forbids writes, a read-only replica): under FailOpen the
	// loader answered and nothing was written; under FailFast the read
	// failed with ErrUnavailable.
	Refusals uint64
	// TooLarge counts values larger than Options.MaxValueBytes: Sets
	// refused, and loaded values returned but not written.
	TooLarge uint64
	// FailedInvalidations counts invalidations of this cache's keys (and
	// Sets and Deletes) whose outcome Redis never confirmed; each key is
	// then pending (see [Client.Invalidate]). PendingInvalidations is the
	// number of keys of the client pending now.
	FailedInvalidations  uint64
	PendingInvalidations int
	// LocalEntries is the number of decoded values held in process memory,
	// and LocalBytes their weight against [Options].LocalBytes.
	LocalEntries int
	LocalBytes   int64
	// Tracking reports whether client-side caching is on. When it is off
	// (the server refused it), every Get reads Redis.
	Tracking bool
}

// HitRatio is the share of reads answered without a loader call: local and
// Redis hits (not-found markers included) over those plus misses. It is 0
// before the first read.
func (s Stats) HitRatio() float64 {
	hits := s.LocalHits + s.RedisHits
	total := hits + s.Misses
	if total == 0 {
		return 0
	}
	return float64(hits) / float64(total)
}

type counters struct {
	// localHits and notFoundHits count on the hit path, from every
	// goroutine at once: sharded, so that parallel hits do not queue for
	// one cache line.
	localHits, notFoundHits                   shardedCounter
	redisHits, misses                         atomic.Uint64
	loads, keysLoaded, loadErrors             atomic.Uint64
	invalidations                             atomic.Uint64
	fallbacks, decodeErrors, writeErrors      atomic.Uint64
	leaseWaits, leaseTimeouts, discardedFills atomic.Uint64
	refreshes, refreshErrors, staleServed     atomic.Uint64
	redisErrors, shortCircuits                atomic.Uint64
	refusals, failedInvalidations, tooLarge   atomic.Uint64
	failSafeServed, notModified, loadTimeouts atomic.Uint64
}

// shardedCounter is a counter spread over cache-line-sized shards, so that
// hits on different CPUs do not write one line. The shard of an Add is drawn,
// without any state of its own, from the calling goroutine's stack address:
// goroutines that run at once have different stacks, so each CPU keeps
// writing the line of the goroutine it runs, which stays in its cache. (A
// shard drawn from the entry served, as before, made every goroutine that
// reads many keys write every shard, and the lines went back and forth
// between the CPUs: BenchmarkHitLocalParallel took 42 ns against 15 ns now.)
// Two goroutines whose stacks draw the same shard share its line while both
// run, as every hit did with a single counter. (Redrawing on a collision,
// seen as a failed compare-and-swap, measured slower than this.)
type shardedCounter struct {
	shards [counterShards]struct {
		n atomic.Uint64
		_ [56]byte // the rest of a 64-byte cache line
	}
}

// counterShards is a power of two above the CPU counts that share a cache's
// hit path in practice.
const (
	counterShardBits = 5
	counterShards    = 1 << counterShardBits
)

// Add adds n to the shard of the calling goroutine's stack.
func (c *shardedCounter) Add(n uint64) {
	var onStack byte
	// Stacks are at least 2 KiB and apart by their size; the multiplication
	// (Fibonacci hashing) spreads them over the top bits.
	h := uint64(uintptr(unsafe.Pointer(&onStack))>>11) * 0x9E3779B97F4A7C15
	c.shards[h>>(64-counterShardBits)].n.Add(n)
}

func (c *shardedCounter) Load() uint64 {
	var sum uint64
	for i := range c.shards {
		sum += c.shards[i].n.Load()
	}
	return sum
}

// Stats returns a snapshot of the cache's counters.
func (c *Cache[K, V]) Stats() Stats {
	s := Stats{
		LocalHits:      c.stats.localHits.Load(),
		RedisHits:      c.stats.redisHits.Load(),
		Misses:         c.stats.misses.Load(),
		NotFoundHits:   c.stats.notFoundHits.Load(),
		Loads:          c.stats.loads.Load(),
		KeysLoaded:     c.stats.keysLoaded.Load(),
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
		FailSafeServed: c.stats.failSafeServed.Load(),
		NotModified:    c.stats.notModified.Load(),
		LoadTimeouts:   c.stats.loadTimeouts.Load(),
		RedisErrors:    c.stats.redisErrors.Load(),
		ShortCircuits:  c.stats.shortCircuits.Load(),
		BreakerTrips:   c.breaker.trips.Load(),
		BreakerOpen:    c.breaker.open.Load(),
		Tracking:       c.client.Tracking(),

		Refusals:             c.stats.refusals.Load(),
		TooLarge:             c.stats.tooLarge.Load(),
		FailedInvalidations:  c.stats.failedInvalidations.Load(),
		PendingInvalidations: c.client.pending.len(),
	}
	s.LocalEntries = c.local.len()
	s.LocalBytes = c.local.weight()
	return s
}
