package benchmarks

import (
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
type Source struct {
	start    time.Time
	versions []atomic.Int64
	done     []atomic.Pointer[Completion]
}

// Completion is an update that completed: the version it wrote and when its
// invalidation returned, as time since the source was made.
type Completion struct {
	Version int64
	At      time.Duration
}

// NewSource returns records 0..n-1, all at version 0 and never updated.
func NewSource(n int) *Source {
	return &Source{
		start:    time.Now(),
		versions: make([]atomic.Int64, n),
		done:     make([]atomic.Pointer[Completion], n),
	}
}

// Now is the time since the source was made, on the monotonic clock.
func (s *Source) Now() time.Duration { return time.Since(s.start) }

// Load is the loader: the record as the source holds it now.
func (s *Source) Load(id int64) User { return NewUser(id, s.versions[id].Load()) }

// Update changes record id and returns its new version. The caller then
// invalidates the cached copies and reports the update with Complete.
func (s *Source) Update(id int64) int64 { return s.versions[id].Add(1) }

// Complete records that the update of id to version v completed at. Updates of
// one record that complete out of order keep the highest version.
func (s *Source) Complete(id, v int64, at time.Duration) {
	c := &Completion{Version: v, At: at}
	for {
		old := s.done[id].Load()
		if old != nil && old.Version >= v {
			return
		}
		if s.done[id].CompareAndSwap(old, c) {
			return
		}
	}
}

// Completed returns the last completed update of id, the zero Completion when
// there was none.
func (s *Source) Completed(id int64) Completion {
	if c := s.done[id].Load(); c != nil {
		return *c
	}
	return Completion{}
}

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
