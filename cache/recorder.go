package cache

import (
	"context"
	"errors"
	"time"
)

// Recorder receives what a cache does, for metrics and traces: set it in
// [Options].Recorder (the module github.com/aside-go/aside/otel provides one
// for OpenTelemetry). Nil, the default, makes no call at all.
//
// # Cost
//
// The hit path (a Get answered from process memory) never calls the
// recorder and does not even look at it: it only increments the sharded
// counters that [Cache.Stats] reads, as it does without a recorder. The
// counters (hits, misses, errors by class, breaker trips, stale values
// served, refreshes, invalidations received, the entries and bytes in
// process memory) reach the recorder through the stats function that
// Observe receives, which the recorder calls when it exports — for
// OpenTelemetry, from the callbacks of observable instruments. Per-call
// hooks (Start) are reserved for the calls that leave process memory: a Get
// that goes to Redis, a GetMany with keys process memory did not hold, a
// loader call, and the application's invalidations; each of those costs a
// network round trip or a loader call anyway.
//
// A Recorder may be shared by many caches: every call names the namespace.
// Its methods are called from many goroutines at once.
type Recorder interface {
	// Observe is called once, by [New], with the cache's namespace and a
	// function returning its [Stats]. The function may be called at any
	// time from any goroutine, for as long as the recorder likes (it holds
	// the cache).
	Observe(namespace string, stats func() Stats)

	// Start is called when an operation begins, with the caller's context
	// (a load's context is the caller's, detached from its cancellation
	// when the load runs in the background, so a trace it carries carries
	// over). It returns the context the operation goes on with — the one
	// passed to the loader, for a load — and a function that the cache
	// calls exactly once, when the operation ends.
	Start(ctx context.Context, op Op) (context.Context, func(Result))
}

// Operation names an operation reported to [Recorder].Start.
type Operation uint8

const (
	// OpGet is a Get that process memory did not answer: it visited Redis,
	// and maybe loaded.
	OpGet Operation = iota + 1
	// OpGetMany is a GetMany with keys process memory did not answer (a
	// GetMany answered from memory alone is not reported).
	OpGetMany
	// OpLoad is a loader call: Loader for one key, BatchLoader for several.
	OpLoad
	// OpDelete is a Delete.
	OpDelete
	// OpInvalidate is an Invalidate.
	OpInvalidate
	// OpInvalidatePattern is an InvalidatePattern or InvalidatePrefix.
	OpInvalidatePattern
	// OpInvalidateTag is an InvalidateTag.
	OpInvalidateTag
	// OpClear is a Clear.
	OpClear
)

// String returns the operation's name in snake case: get, get_many, load,
// delete, invalidate, invalidate_pattern, invalidate_tag, clear.
func (o Operation) String() string {
	switch o {
	case OpGet:
		return "get"
	case OpGetMany:
		return "get_many"
	case OpLoad:
		return "load"
	case OpDelete:
		return "delete"
	case OpInvalidate:
		return "invalidate"
	case OpInvalidatePattern:
		return "invalidate_pattern"
	case OpInvalidateTag:
		return "invalidate_tag"
	case OpClear:
		return "clear"
	}
	return "unknown"
}

// Op describes an operation that begins. It holds no key nor value.
type Op struct {
	Namespace string
	Operation Operation
	// Keys is the number of keys: asked for (GetMany: all of them, those
	// process memory answered included), loaded, deleted or invalidated. 0
	// for a pattern or tags.
	Keys int
	// LocalHits is, for GetMany, the number of keys process memory
	// answered.
	LocalHits int
}

// Result describes how an operation ended.
type Result struct {
	// Err is the operation's error, nil when it succeeded. For a load, the
	// first key's failure (keys the source does not have are no failure).
	Err error
	// Duration is how long the operation took.
	Duration time.Duration
	// Found, NotFound and Failed count, for a load, the keys the loader
	// returned, those the source does not have, and those that failed.
	Found, NotFound, Failed int
}

// LoadOutcome is the outcome of a load as a low-cardinality word: "error"
// when a key failed, "not_found" when the source had none of the keys,
// "ok" otherwise.
func (r Result) LoadOutcome() string {
	switch {
	case r.Failed > 0:
		return "error"
	case r.Found == 0 && r.NotFound > 0:
		return "not_found"
	}
	return "ok"
}

// noEnd is the end of an operation when there is no recorder.
func noEnd(Result) {}

// start reports an operation to the recorder, if there is one.
func (c *Cache[K, V]) start(ctx context.Context, op Operation, keys, localHits int) (context.Context, func(Result)) {
	if c.rec == nil {
		return ctx, noEnd
	}
	began := time.Now()
	ctx, end := c.rec.Start(ctx, Op{Namespace: c.ns[:len(c.ns)-1], Operation: op, Keys: keys, LocalHits: localHits})
	return ctx, func(r Result) {
		r.Duration = time.Since(began)
		end(r)
	}
}

// endErr ends an operation with its error, a key the source does not have
// being no failure.
func endErr(end func(Result), err error) {
	if errors.Is(err, ErrNotFound) {
		err = nil
	}
	end(Result{Err: err})
}

// loadResult summarises a load's results for the recorder.
func loadResult[V any](out []loaded[V]) Result {
	var r Result
	for _, l := range out {
		switch {
		case l.err != nil:
			r.Failed++
			if r.Err == nil {
				r.Err = l.err
			}
		case l.e != nil && l.e.notFound:
			r.NotFound++
		default:
			r.Found++
		}
	}
	return r
}
