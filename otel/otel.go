// Package asideotel reports what aside caches do to OpenTelemetry: metrics
// and spans, through the [cache.Recorder] hook. It is a module of its own
// (github.com/aside-go/aside/otel), so that a program that imports only
// cache needs no OpenTelemetry module.
//
//	rec, err := asideotel.New() // the global MeterProvider and TracerProvider
//	...
//	users, err := cache.New(client, cache.Options[int64, User]{
//		Namespace: "users",
//		Recorder:  rec,
//		...
//	})
//
// One Recorder serves any number of caches; the namespace is an attribute.
//
// # Metrics
//
// There are no stable OpenTelemetry semantic conventions for caches, so the
// names are aside's own, under the aside.cache prefix, and follow the
// general naming rules: lower-case dot-separated namespaces, snake case
// within a component, units in UCUM and not in the name, plural nouns only
// for counts of discrete things, no _total suffix (exporters add theirs).
// Every metric carries aside.cache.namespace; the other attributes have a
// few fixed values each, so cardinality is the number of caches times at
// most four. No key and no value is ever an attribute.
//
//	aside.cache.requests        counter  {request}  aside.cache.result = local | redis | miss
//	aside.cache.not_found_hits  counter  {request}  hits (local or redis) that were not-found markers
//	aside.cache.fallbacks       counter  {request}  reads loaded directly because Redis was down
//	aside.cache.stale_served    counter  {request}  values served past their soft TTL
//	aside.cache.fail_safe_served counter {request}  of those, served because their refresh failed (Options.FailSafe)
//	aside.cache.not_modified    counter  {refresh}  refreshes whose loader said not modified (cache.ErrNotModified)
//	aside.cache.load.timeouts   counter  {key}      reads that gave up on a load (Options.HardTimeout)
//	aside.cache.redis.errors    counter  {error}    aside.cache.error.class = unavailable | short_circuit | decode | write
//	aside.cache.load.duration   histogram s         aside.cache.load.outcome = ok | not_found | error
//	aside.cache.load.errors     counter  {key}      keys whose load failed
//	aside.cache.refreshes       counter  {refresh}  refreshes ahead of expiry run by this process
//	aside.cache.refresh.errors  counter  {refresh}  refreshes whose load failed
//	aside.cache.invalidations   counter  {key}      keys dropped from process memory by invalidations
//	aside.cache.lease.waits     counter  {wait}     waits for another load's lease
//	aside.cache.lease.timeouts  counter  {wait}     waits that ran out (LeaseWait)
//	aside.cache.discarded_fills counter  {key}      loaded values not written, to prevent a stale write
//	aside.cache.breaker.trips   counter  {trip}     times the circuit breaker opened
//	aside.cache.breaker.open    gauge    1          1 while the breaker is open, else 0
//	aside.cache.local.entries   updown   {entry}    values held in process memory
//	aside.cache.local.usage     updown   By         their weight against Options.LocalBytes
//
// aside.cache.requests is one counter split by result, rather than hits
// and misses apart, so that a hit ratio is one query (result != miss over
// all) and a new result would not be a new metric. The counters are
// asynchronous: they are [cache.Stats] read when the reader collects, which
// keeps the hit path free of any recorder call (see [cache.Recorder]).
// aside.cache.load.duration is the one synchronous instrument, recorded
// when a loader call ends, in seconds as OpenTelemetry recommends for
// durations, with buckets from 0.5 ms to 10 s.
//
// # Spans
//
// aside.get, aside.get_many, aside.load, aside.delete, aside.invalidate,
// aside.invalidate_pattern and aside.invalidate_tag, of kind internal, with
// aside.cache.namespace and aside.cache.keys (none for a pattern or tags; and aside.cache.local_hits for aside.get_many,
// aside.cache.load.outcome for aside.load). A span for Get or GetMany is
// started only when the call leaves process memory: a Get answered from
// memory makes no span (it takes tens of nanoseconds, a span costs more
// than the hit), and the caller's own span covers it. A load's span is a
// child of the Get that started it, also when the load runs on a background
// goroutine (its context keeps the caller's values). A refresh ahead of
// expiry starts from a Get that process memory answered, which has no span:
// its load's span is a child of the span the Get was called with, also when
// the refresh runs in the background after the Get returned. The loader's
// own spans are children of aside.load. A failed
// operation has status Error and error.type (unavailable, timeout,
// canceled, corrupt, panic or _OTHER), never the error's message, which
// names keys.
package asideotel

import (
	"context"
	"errors"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/loader"
)

// ScopeName is the instrumentation scope of the meter and the tracer.
const ScopeName = "github.com/aside-go/aside/otel"

// Attribute keys.
const (
	KeyNamespace    = attribute.Key("aside.cache.namespace")
	KeyResult       = attribute.Key("aside.cache.result")
	KeyErrorClass   = attribute.Key("aside.cache.error.class")
	KeyLoadOutcome  = attribute.Key("aside.cache.load.outcome")
	KeyKeys         = attribute.Key("aside.cache.keys")
	KeyLocalHits    = attribute.Key("aside.cache.local_hits")
	KeyErrorType    = attribute.Key("error.type")
	spanNamePrefix  = "aside."
	loadDurationDoc = "Duration of loader calls."
)

// loadBuckets are the bounds of aside.cache.load.duration, in seconds.
var loadBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Option configures a Recorder.
type Option func(*config)

type config struct {
	mp metric.MeterProvider
	tp trace.TracerProvider
}

// WithMeterProvider sets the MeterProvider. Default: otel.GetMeterProvider().
func WithMeterProvider(mp metric.MeterProvider) Option { return func(c *config) { c.mp = mp } }

// WithTracerProvider sets the TracerProvider. Default:
// otel.GetTracerProvider().
func WithTracerProvider(tp trace.TracerProvider) Option { return func(c *config) { c.tp = tp } }

// Recorder is a [cache.Recorder] that reports to OpenTelemetry. Build it
// with [New]; it is safe for concurrent use.
type Recorder struct {
	tracer trace.Tracer
	load   metric.Float64Histogram
	reg    metric.Registration

	mu     sync.Mutex
	caches map[string]*observed // by namespace; guarded by mu
	order  []string             // namespaces in the order observed; guarded by mu

	requests, notFound, fallbacks, stale, redisErrors  metric.Int64ObservableCounter
	loadErrors, refreshes, refreshErrors, invalidation metric.Int64ObservableCounter
	leaseWaits, leaseTimeouts, discarded, trips        metric.Int64ObservableCounter
	failSafe, notModified, loadTimeouts                metric.Int64ObservableCounter
	open                                               metric.Int64ObservableGauge
	entries, usage                                     metric.Int64ObservableUpDownCounter
}

// observed is what the Recorder reads of the caches of one namespace.
type observed struct {
	stats []func() cache.Stats
	// attribute sets, built once.
	ns, local, redis, miss                  attribute.Set
	unavailable, shortCircuit, decode, writ attribute.Set
}

var _ cache.Recorder = (*Recorder)(nil)

// New returns a Recorder on the providers of opts.
func New(opts ...Option) (*Recorder, error) {
	cfg := config{}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.mp == nil {
		cfg.mp = otel.GetMeterProvider()
	}
	if cfg.tp == nil {
		cfg.tp = otel.GetTracerProvider()
	}
	m := cfg.mp.Meter(ScopeName)
	r := &Recorder{tracer: cfg.tp.Tracer(ScopeName), caches: map[string]*observed{}}
	var errs []error
	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		c, err := m.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	r.requests = counter("aside.cache.requests", "{request}", "Reads by where they were answered: process memory (local), Redis, or neither (miss).")
	r.notFound = counter("aside.cache.not_found_hits", "{request}", "Hits, local or Redis, that were not-found markers.")
	r.fallbacks = counter("aside.cache.fallbacks", "{request}", "Reads loaded directly because Redis was unavailable.")
	r.stale = counter("aside.cache.stale_served", "{request}", "Values served past their soft TTL.")
	r.failSafe = counter("aside.cache.fail_safe_served", "{request}", "Values served past their soft TTL because their refresh failed (FailSafe).")
	r.notModified = counter("aside.cache.not_modified", "{refresh}", "Refreshes whose loader said the value is not modified.")
	r.loadTimeouts = counter("aside.cache.load.timeouts", "{key}", "Reads that gave up waiting for a load (HardTimeout).")
	r.redisErrors = counter("aside.cache.redis.errors", "{error}", "Redis failures by class.")
	r.loadErrors = counter("aside.cache.load.errors", "{key}", "Keys whose load failed.")
	r.refreshes = counter("aside.cache.refreshes", "{refresh}", "Refreshes ahead of expiry this process ran.")
	r.refreshErrors = counter("aside.cache.refresh.errors", "{refresh}", "Refreshes whose load failed.")
	r.invalidation = counter("aside.cache.invalidations", "{key}", "Keys dropped from process memory by invalidations.")
	r.leaseWaits = counter("aside.cache.lease.waits", "{wait}", "Waits for a key another load held the lease of.")
	r.leaseTimeouts = counter("aside.cache.lease.timeouts", "{wait}", "Lease waits that ran out.")
	r.discarded = counter("aside.cache.discarded_fills", "{key}", "Loaded values not written because the key changed during the load.")
	r.trips = counter("aside.cache.breaker.trips", "{trip}", "Times the circuit breaker opened.")
	var err error
	r.open, err = m.Int64ObservableGauge("aside.cache.breaker.open", metric.WithUnit("1"), metric.WithDescription("1 while the circuit breaker is open, else 0."))
	errs = append(errs, err)
	r.entries, err = m.Int64ObservableUpDownCounter("aside.cache.local.entries", metric.WithUnit("{entry}"), metric.WithDescription("Values held in process memory."))
	errs = append(errs, err)
	r.usage, err = m.Int64ObservableUpDownCounter("aside.cache.local.usage", metric.WithUnit("By"), metric.WithDescription("Weight of the values held in process memory."))
	errs = append(errs, err)
	r.load, err = m.Float64Histogram("aside.cache.load.duration", metric.WithUnit("s"), metric.WithDescription(loadDurationDoc), metric.WithExplicitBucketBoundaries(loadBuckets...))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	r.reg, err = m.RegisterCallback(r.observe,
		r.requests, r.notFound, r.fallbacks, r.stale, r.redisErrors, r.loadErrors, r.refreshes,
		r.refreshErrors, r.invalidation, r.leaseWaits, r.leaseTimeouts, r.discarded, r.trips,
		r.failSafe, r.notModified, r.loadTimeouts, r.open, r.entries, r.usage)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Close stops reporting the caches' counters (the recorder lets go of
// them). Spans and load durations are still reported.
func (r *Recorder) Close() error { return r.reg.Unregister() }

// Observe implements [cache.Recorder].
func (r *Recorder) Observe(namespace string, stats func() cache.Stats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.caches[namespace]
	if o == nil {
		ns := KeyNamespace.String(namespace)
		set := func(kv attribute.KeyValue) attribute.Set { return attribute.NewSet(ns, kv) }
		o = &observed{
			ns:           attribute.NewSet(ns),
			local:        set(KeyResult.String("local")),
			redis:        set(KeyResult.String("redis")),
			miss:         set(KeyResult.String("miss")),
			unavailable:  set(KeyErrorClass.String("unavailable")),
			shortCircuit: set(KeyErrorClass.String("short_circuit")),
			decode:       set(KeyErrorClass.String("decode")),
			writ:         set(KeyErrorClass.String("write")),
		}
		r.caches[namespace] = o
		r.order = append(r.order, namespace)
	}
	o.stats = append(o.stats, stats)
}

// observe is the callback of the asynchronous instruments: the sum of the
// stats of each namespace's caches.
func (r *Recorder) observe(_ context.Context, obs metric.Observer) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ns := range r.order {
		o := r.caches[ns]
		var s cache.Stats
		open := int64(0)
		for _, f := range o.stats {
			t := f()
			s.LocalHits += t.LocalHits
			s.RedisHits += t.RedisHits
			s.Misses += t.Misses
			s.NotFoundHits += t.NotFoundHits
			s.Fallbacks += t.Fallbacks
			s.StaleServed += t.StaleServed
			s.FailSafeServed += t.FailSafeServed
			s.NotModified += t.NotModified
			s.LoadTimeouts += t.LoadTimeouts
			s.RedisErrors += t.RedisErrors
			s.ShortCircuits += t.ShortCircuits
			s.DecodeErrors += t.DecodeErrors
			s.WriteErrors += t.WriteErrors
			s.LoadErrors += t.LoadErrors
			s.Refreshes += t.Refreshes
			s.RefreshErrors += t.RefreshErrors
			s.Invalidations += t.Invalidations
			s.LeaseWaits += t.LeaseWaits
			s.LeaseTimeouts += t.LeaseTimeouts
			s.DiscardedFills += t.DiscardedFills
			s.BreakerTrips += t.BreakerTrips
			s.LocalEntries += t.LocalEntries
			s.LocalBytes += t.LocalBytes
			if t.BreakerOpen {
				open = 1
			}
		}
		n := func(v uint64) int64 { return int64(v) }
		with := metric.WithAttributeSet
		obs.ObserveInt64(r.requests, n(s.LocalHits), with(o.local))
		obs.ObserveInt64(r.requests, n(s.RedisHits), with(o.redis))
		obs.ObserveInt64(r.requests, n(s.Misses), with(o.miss))
		obs.ObserveInt64(r.redisErrors, n(s.RedisErrors), with(o.unavailable))
		obs.ObserveInt64(r.redisErrors, n(s.ShortCircuits), with(o.shortCircuit))
		obs.ObserveInt64(r.redisErrors, n(s.DecodeErrors), with(o.decode))
		obs.ObserveInt64(r.redisErrors, n(s.WriteErrors), with(o.writ))
		nsOnly := with(o.ns)
		obs.ObserveInt64(r.notFound, n(s.NotFoundHits), nsOnly)
		obs.ObserveInt64(r.fallbacks, n(s.Fallbacks), nsOnly)
		obs.ObserveInt64(r.stale, n(s.StaleServed), nsOnly)
		obs.ObserveInt64(r.failSafe, n(s.FailSafeServed), nsOnly)
		obs.ObserveInt64(r.notModified, n(s.NotModified), nsOnly)
		obs.ObserveInt64(r.loadTimeouts, n(s.LoadTimeouts), nsOnly)
		obs.ObserveInt64(r.loadErrors, n(s.LoadErrors), nsOnly)
		obs.ObserveInt64(r.refreshes, n(s.Refreshes), nsOnly)
		obs.ObserveInt64(r.refreshErrors, n(s.RefreshErrors), nsOnly)
		obs.ObserveInt64(r.invalidation, n(s.Invalidations), nsOnly)
		obs.ObserveInt64(r.leaseWaits, n(s.LeaseWaits), nsOnly)
		obs.ObserveInt64(r.leaseTimeouts, n(s.LeaseTimeouts), nsOnly)
		obs.ObserveInt64(r.discarded, n(s.DiscardedFills), nsOnly)
		obs.ObserveInt64(r.trips, n(s.BreakerTrips), nsOnly)
		obs.ObserveInt64(r.open, open, nsOnly)
		obs.ObserveInt64(r.entries, int64(s.LocalEntries), nsOnly)
		obs.ObserveInt64(r.usage, s.LocalBytes, nsOnly)
	}
	return nil
}

// Start implements [cache.Recorder]: a span for the operation, and for a
// load its duration in aside.cache.load.duration.
func (r *Recorder) Start(ctx context.Context, op cache.Op) (context.Context, func(cache.Result)) {
	ns := KeyNamespace.String(op.Namespace)
	attrs := []attribute.KeyValue{ns}
	if op.Operation != cache.OpInvalidatePattern && op.Operation != cache.OpInvalidateTag {
		attrs = append(attrs, KeyKeys.Int(op.Keys))
	}
	if op.Operation == cache.OpGetMany {
		attrs = append(attrs, KeyLocalHits.Int(op.LocalHits))
	}
	ctx, span := r.tracer.Start(ctx, spanNamePrefix+op.Operation.String(),
		trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...))
	return ctx, func(res cache.Result) {
		if op.Operation == cache.OpLoad {
			outcome := KeyLoadOutcome.String(res.LoadOutcome())
			span.SetAttributes(outcome)
			r.load.Record(context.WithoutCancel(ctx), res.Duration.Seconds(), metric.WithAttributes(ns, outcome))
		}
		if res.Err != nil {
			span.SetAttributes(KeyErrorType.String(errorType(res.Err)))
			span.SetStatus(codes.Error, "")
		}
		span.End()
	}
}

// errorType is the error.type of err: a few fixed words, never its message
// (which names keys).
func errorType(err error) string {
	switch {
	case errors.Is(err, cache.ErrUnavailable):
		return "unavailable"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, cache.ErrCorrupt):
		return "corrupt"
	case errors.Is(err, loader.ErrPanic):
		return "panic"
	}
	return "_OTHER"
}
