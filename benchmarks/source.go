package benchmarks

import (
	"fmt"
	"sync/atomic"
	"time"
)

// Source is the source of truth of the mixed workload: records 0..n-1, each
// with a version that every update increments, and for each record the last
// update that completed, that is whose invalidation returned.
//
// A read is stale when it returns a version older than the last update that
// had completed when the read started, and that update completed more than
// the invalidation delay before it (see [Stale]). Reads that overlap an update
// may return either version.
//
// A Source is held in words that are only accessed atomically: in process
// memory ([NewSource]), or in a file mapped by several processes
// ([CreateSharedSource], [OpenSharedSource]), which then judge their reads
// against one source of truth and one clock.
type Source struct {
	versions []atomic.Int64
	// done holds the last completed update of each record, packed into one
	// word (see pack) so that a process reads its version and its time
	// together.
	done []atomic.Uint64
	// base and epoch make Now: the time since the source was created, on
	// this process's monotonic clock, shifted by where this process's
	// clock stood (by the wall clock) when the source was created.
	base  time.Time
	epoch time.Duration
	// close unmaps a shared source.
	close func() error
}

// Completion is an update that completed: the version it wrote and when its
// invalidation returned, as time since the source was made.
type Completion struct {
	Version int64
	At      time.Duration
}

// A completion is packed into one word: the version in the high bits, the
// time in microseconds in the low ones.
const (
	completionTimeBits = 40                             // 12.7 days in µs
	maxVersion         = 1<<(64-completionTimeBits) - 1 // 16.7 million updates of one record
)

func pack(c Completion) uint64 {
	return uint64(c.Version)<<completionTimeBits | uint64(c.At/time.Microsecond)&(1<<completionTimeBits-1)
}

func unpack(w uint64) Completion {
	return Completion{
		Version: int64(w >> completionTimeBits),
		At:      time.Duration(w&(1<<completionTimeBits-1)) * time.Microsecond,
	}
}

// NewSource returns records 0..n-1, all at version 0 and never updated, held
// in this process's memory.
func NewSource(n int) *Source {
	return &Source{
		versions: make([]atomic.Int64, n),
		done:     make([]atomic.Uint64, n),
		base:     time.Now(),
		close:    func() error { return nil },
	}
}

// Len is the number of records.
func (s *Source) Len() int { return len(s.versions) }

// Now is the time since the source was made, on the monotonic clock.
func (s *Source) Now() time.Duration { return s.epoch + time.Since(s.base) }

// Load is the loader: the record as the source holds it now.
func (s *Source) Load(id int64) User { return NewUser(id, s.versions[id].Load()) }

// Update changes record id and returns its new version. The caller then
// invalidates the cached copies and reports the update with Complete.
func (s *Source) Update(id int64) int64 {
	v := s.versions[id].Add(1)
	if v > maxVersion {
		panic(fmt.Sprintf("benchmarks: record %d updated more than %d times", id, maxVersion))
	}
	return v
}

// Complete records that the update of id to version v completed at. Updates of
// one record that complete out of order keep the highest version.
func (s *Source) Complete(id, v int64, at time.Duration) {
	w := pack(Completion{Version: v, At: at})
	for {
		old := s.done[id].Load()
		if unpack(old).Version >= v || s.done[id].CompareAndSwap(old, w) {
			return
		}
	}
}

// Completed returns the last completed update of id, the zero Completion when
// there was none.
func (s *Source) Completed(id int64) Completion { return unpack(s.done[id].Load()) }

// Close releases a shared source's mapping; it does nothing for one in
// process memory. The source must not be used afterwards.
func (s *Source) Close() error { return s.close() }

// Stale reports whether a read that started at start, when before was the
// last completed update of the record, and returned got, is stale: got is
// older than before, and before completed more than delay ahead of the read.
// age is how long before the read the update had completed.
func Stale(got User, before Completion, start, delay time.Duration) (age time.Duration, stale bool) {
	if got.Version >= before.Version {
		return 0, false
	}
	age = start - before.At
	return age, age > delay
}
