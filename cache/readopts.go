package cache

import (
	"fmt"
	"time"
)

// Source is where a read found the value it returned.
type Source uint8

const (
	// SourceNone: no value was returned (an error, or a key not found).
	SourceNone Source = iota
	// SourceLocal: a fresh copy in process memory.
	SourceLocal
	// SourceRedis: Redis, read by this call or by the read it joined, or
	// after waiting for another process's load.
	SourceRedis
	// SourceLoader: the loader, called for this read or for the load it
	// joined (a synchronous refresh's included).
	SourceLoader
	// SourceStale: a value past its soft TTL, wherever it was read: served
	// while its refresh runs (RefreshBackground, or past
	// [Options].SoftTimeout, or while another process refreshes it), after
	// its refresh failed (stale-if-error, [Options].FailSafe), or during a
	// refresh's throttle ([Options].FailSafeThrottle); and a copy served
	// through an outage of Redis ([Options].OutageStaleness), which may be
	// older than the source too. Each is counted in [Stats].StaleServed.
	SourceStale
)

// String returns "none", "local", "redis", "loader" or "stale".
func (s Source) String() string {
	switch s {
	case SourceStale:
		return "stale"
	case SourceLocal:
		return "local"
	case SourceRedis:
		return "redis"
	case SourceLoader:
		return "loader"
	}
	return "none"
}

// ReadOption tunes one [Cache.Get] or [Cache.GetMany]. A read without options
// is the hit path: options cost only the reads that are given some.
type ReadOption struct {
	skipLocal bool
	reload    bool
	source    *Source
	timeouts  *timeouts // nil: the cache's
	err       error     // an invalid option
}

// SkipLocal makes the read ignore the copies in process memory: it visits
// Redis (and the loader, for a key Redis does not hold) as a read of a key
// without a copy does, with every guarantee of that path, and the value it
// finds is kept in process memory as usual. For a read that must see
// Redis's own state, such as a health check.
func SkipLocal() ReadOption { return ReadOption{skipLocal: true} }

// Reload makes the read return a value loaded from the source after the call
// began: it first invalidates the keys (as [Cache.Invalidate] does, in every
// process, one more round trip), then reads them, so the value comes from
// this read's load or from another process's load that began after the
// invalidation. For a value the application knows changed at the source
// without an invalidation, or an operator's "refresh".
func Reload() ReadOption { return ReadOption{reload: true} }

// SourceOf makes the read report in *s where its value came from. For
// GetMany it reports the farthest source of any value returned: SourceStale
// if one of them was served stale, else SourceLoader if the loader produced
// one of them, else SourceRedis if Redis did, else SourceLocal; SourceNone
// when it returned no value.
func SourceOf(s *Source) ReadOption { return ReadOption{source: s} }

// LoadTimeouts sets, for this read, how long it waits for a load or a
// refresh: soft when a previous value of the key is at hand (it is then
// served, reported as [SourceStale]), hard when none is (the key then fails
// with an error wrapping [ErrLoadTimeout]), in place of [Options].SoftTimeout
// and [Options].HardTimeout; 0 turns either off for this read. Either way
// the load goes on in the background and writes its value. A negative
// duration fails the read with an error wrapping [ErrInvalidOptions] that
// names LoadTimeouts.
func LoadTimeouts(soft, hard time.Duration) ReadOption {
	if soft < 0 || hard < 0 {
		return ReadOption{err: fmt.Errorf("%w: LoadTimeouts(%v, %v): a timeout is negative", ErrInvalidOptions, soft, hard)}
	}
	return ReadOption{timeouts: &timeouts{soft: soft, hard: hard}}
}

// mergeReadOptions merges a read's options into one.
func mergeReadOptions(opts []ReadOption) ReadOption {
	var ro ReadOption
	for _, o := range opts {
		ro.skipLocal = ro.skipLocal || o.skipLocal
		ro.reload = ro.reload || o.reload
		if o.source != nil {
			ro.source = o.source
		}
		if o.timeouts != nil {
			ro.timeouts = o.timeouts
		}
		if ro.err == nil {
			ro.err = o.err
		}
	}
	if ro.source != nil {
		*ro.source = SourceNone
	}
	return ro
}

// report records s as the read's source, if asked, keeping the farthest.
func (ro *ReadOption) report(s Source) {
	if ro.source != nil && s > *ro.source {
		*ro.source = s
	}
}
