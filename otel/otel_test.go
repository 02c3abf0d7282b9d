package asideotel_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/internal/redistest"
	"github.com/aside-go/aside/loader"
	"github.com/aside-go/aside/ttlpolicy"

	asideotel "github.com/aside-go/aside/otel"
)

var (
	srv *redistest.Server
	seq atomic.Int64 // namespaces: one per run of a test
)

func TestMain(m *testing.M) {
	s, err := redistest.Launch(redistest.Config{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "otel tests need redis-server:", err)
		os.Exit(1)
	}
	srv = s
	code := m.Run()
	_ = srv.Close()
	os.Exit(code)
}

var errSource = errors.New("source down")

// load is the source: negative ids are absent, 99 fails.
func load(_ context.Context, id int64) (string, error) {
	switch {
	case id < 0:
		return "", loader.ErrNotFound
	case id == 99:
		return "", errSource
	}
	return fmt.Sprintf("v%d", id), nil
}

type harness struct {
	reader *sdkmetric.ManualReader
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	rec    *asideotel.Recorder
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{reader: sdkmetric.NewManualReader(), spans: tracetest.NewSpanRecorder()}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(h.reader))
	h.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(h.spans))
	t.Cleanup(func() {
		_ = mp.Shutdown(context.Background())
		_ = h.tp.Shutdown(context.Background())
	})
	rec, err := asideotel.New(asideotel.WithMeterProvider(mp), asideotel.WithTracerProvider(h.tp))
	require.NoError(t, err)
	t.Cleanup(func() { _ = rec.Close() })
	h.rec = rec
	return h
}

func newCache(t *testing.T, ns string, rec cache.Recorder, opts ...func(*cache.Options[int64, string])) *cache.Cache[int64, string] {
	t.Helper()
	client, err := cache.Connect(srv.ClientOption())
	require.NoError(t, err)
	t.Cleanup(client.Close)
	o := cache.Options[int64, string]{
		Namespace: ns,
		TTL:       ttlpolicy.Minutes(5),
		Loader:    load,
		Recorder:  rec,
	}
	for _, f := range opts {
		f(&o)
	}
	c, err := cache.New(client, o)
	require.NoError(t, err)
	return c
}

// point is one data point of a metric: its attributes (namespace left out)
// and value.
type point struct {
	attrs string
	value float64
}

// collect returns every metric's points by name; a histogram's value is its
// count, its sum in sums.
func (h *harness) collect(t *testing.T, ns string) (map[string][]point, map[string]metricdata.Metrics) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, h.reader.Collect(context.Background(), &rm))
	out := map[string][]point{}
	raw := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		require.Equal(t, asideotel.ScopeName, sm.Scope.Name)
		for _, m := range sm.Metrics {
			raw[m.Name] = m
			add := func(set attribute.Set, v float64) {
				got, ok := set.Value(asideotel.KeyNamespace)
				require.True(t, ok, "%s: no namespace", m.Name)
				if got.AsString() != ns {
					return
				}
				var kvs []string
				for _, kv := range set.ToSlice() {
					if kv.Key != asideotel.KeyNamespace {
						kvs = append(kvs, string(kv.Key)+"="+kv.Value.String())
					}
				}
				sort.Strings(kvs)
				out[m.Name] = append(out[m.Name], point{fmt.Sprint(kvs), v})
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					add(p.Attributes, float64(p.Value))
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					add(p.Attributes, float64(p.Value))
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					add(p.Attributes, float64(p.Count))
				}
			default:
				t.Fatalf("%s: unexpected data %T", m.Name, m.Data)
			}
		}
	}
	for _, ps := range out {
		sort.Slice(ps, func(i, j int) bool { return ps[i].attrs < ps[j].attrs })
	}
	return out, raw
}

// settle makes a round trip on c's client: the invalidations Redis pushed
// to it before are handled when it returns.
func settle(t *testing.T, c *cache.Cache[int64, string]) {
	t.Helper()
	_, err := c.Exists(context.Background(), 1_000_000)
	require.NoError(t, err)
}

// TestMetricsAndSpans runs a scripted sequence of operations on two caches
// of one namespace (two clients, as two processes would) and asserts every
// metric's value and every span.
func TestMetricsAndSpans(t *testing.T) {
	h := newHarness(t)
	ns := fmt.Sprintf("otel-script-%d", seq.Add(1))
	a := newCache(t, ns, h.rec)
	b := newCache(t, ns, h.rec)

	ctx, root := h.tp.Tracer("test").Start(context.Background(), "request")

	_, err := a.Get(ctx, 1) // a: miss, load ok
	require.NoError(t, err)
	v, err := a.Get(ctx, 1) // a: local hit (the loaded value is kept at once)
	require.NoError(t, err)
	require.Equal(t, "v1", v)
	_, err = a.TTL(ctx, 1) // waits for a's write of 1 (no span, no counter)
	require.NoError(t, err)
	_, err = b.Get(ctx, 1) // b: Redis hit
	require.NoError(t, err)
	_, err = a.Get(ctx, -1) // a: miss, load not found
	require.ErrorIs(t, err, cache.ErrNotFound)
	_, err = a.Get(ctx, 99) // a: miss, load error
	require.ErrorIs(t, err, errSource)
	got, err := a.GetMany(ctx, []int64{1, 2, 3}) // a: 1 local hit, a batch load of 2 and 3
	require.NoError(t, err)
	require.Len(t, got, 3)
	_, err = a.GetMany(ctx, []int64{1}) // a: local hit, no span
	require.NoError(t, err)
	require.NoError(t, a.Invalidate(ctx, 1)) // b holds a copy of 1: its push counts there
	n, err := a.Delete(ctx, 2)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	_, err = a.InvalidatePrefix(ctx, "3")
	require.NoError(t, err)
	_, err = a.InvalidateTag(ctx, "team")
	require.NoError(t, err)
	root.End()
	// A round trip on each client's connection (one per node): Redis sends
	// the pushes of the writes above before its reply, and the client
	// handles each push before it reads on.
	settle(t, a)
	settle(t, b)

	sa, sb := a.Stats(), b.Stats()
	// b's one copy (of 1) was invalidated; how many pushes a received for
	// its own writes depends on how they interleaved with its reads
	// (Redis pushes a key once per read that tracked it), so the metric is
	// checked against the caches' own counter for it.
	require.Equal(t, uint64(1), sb.Invalidations)
	require.NotZero(t, sa.Invalidations)
	t.Logf("a: %+v", sa)
	t.Logf("b: %+v", sb)
	metrics, raw := h.collect(t, ns)

	p := func(attrs string, v float64) point { return point{attrs, v} }
	none := "[]"
	want := map[string][]point{
		"aside.cache.requests": {
			p("[aside.cache.result=local]", 3),
			p("[aside.cache.result=miss]", 5),
			p("[aside.cache.result=redis]", 1),
		},
		"aside.cache.not_found_hits":   {p(none, 0)},
		"aside.cache.fallbacks":        {p(none, 0)},
		"aside.cache.stale_served":     {p(none, 0)},
		"aside.cache.fail_safe_served": {p(none, 0)},
		"aside.cache.not_modified":     {p(none, 0)},
		"aside.cache.load.timeouts":    {p(none, 0)},
		"aside.cache.redis.errors": {
			p("[aside.cache.error.class=decode]", 0),
			p("[aside.cache.error.class=short_circuit]", 0),
			p("[aside.cache.error.class=unavailable]", 0),
			p("[aside.cache.error.class=write]", 0),
		},
		"aside.cache.load.duration": {
			p("[aside.cache.load.outcome=error]", 1),
			p("[aside.cache.load.outcome=not_found]", 1),
			p("[aside.cache.load.outcome=ok]", 2),
		},
		"aside.cache.load.errors":     {p(none, 1)},
		"aside.cache.refreshes":       {p(none, 0)},
		"aside.cache.refresh.errors":  {p(none, 0)},
		"aside.cache.invalidations":   {p(none, float64(sa.Invalidations+sb.Invalidations))},
		"aside.cache.lease.waits":     {p(none, 0)},
		"aside.cache.lease.timeouts":  {p(none, 0)},
		"aside.cache.discarded_fills": {p(none, 0)},
		"aside.cache.breaker.trips":   {p(none, 0)},
		"aside.cache.breaker.open":    {p(none, 0)},
		"aside.cache.local.entries":   {p(none, float64(sa.LocalEntries+sb.LocalEntries))},
		"aside.cache.local.usage":     {p(none, float64(sa.LocalBytes+sb.LocalBytes))},
	}
	assert.Equal(t, want, metrics)
	for name, m := range raw {
		assert.NotEmpty(t, m.Unit, "%s: unit", name)
		assert.NotEmpty(t, m.Description, "%s: description", name)
	}
	assert.Equal(t, "s", raw["aside.cache.load.duration"].Unit)
	assert.Equal(t, "By", raw["aside.cache.local.usage"].Unit)

	// The spans, in the order they ended.
	type span struct {
		name, parent string
		attrs        map[string]string
		status       codes.Code
	}
	byID := map[trace.SpanID]string{}
	ended := h.spans.Ended()
	for _, s := range ended {
		byID[s.SpanContext().SpanID()] = s.Name()
	}
	var spans []span
	for _, s := range ended {
		require.Equal(t, root.SpanContext().TraceID(), s.SpanContext().TraceID(), "%s: trace", s.Name())
		attrs := map[string]string{}
		for _, kv := range s.Attributes() {
			attrs[string(kv.Key)] = kv.Value.String()
		}
		assert.Equal(t, trace.SpanKindInternal, s.SpanKind(), s.Name())
		spans = append(spans, span{s.Name(), byID[s.Parent().SpanID()], attrs, s.Status().Code})
	}
	nsKeys := func(keys string, more ...string) map[string]string {
		m := map[string]string{"aside.cache.namespace": ns}
		if keys != "" {
			m["aside.cache.keys"] = keys
		}
		for i := 0; i < len(more); i += 2 {
			m[more[i]] = more[i+1]
		}
		return m
	}
	unset, failed := codes.Unset, codes.Error
	wantSpans := []span{
		{"aside.load", "aside.get", nsKeys("1", "aside.cache.load.outcome", "ok"), unset},
		{"aside.get", "request", nsKeys("1"), unset},
		{"aside.get", "request", nsKeys("1"), unset}, // b's Redis hit
		{"aside.load", "aside.get", nsKeys("1", "aside.cache.load.outcome", "not_found"), unset},
		{"aside.get", "request", nsKeys("1"), unset},
		{"aside.load", "aside.get", nsKeys("1", "aside.cache.load.outcome", "error", "error.type", "_OTHER"), failed},
		{"aside.get", "request", nsKeys("1", "error.type", "_OTHER"), failed},
		{"aside.load", "aside.get_many", nsKeys("2", "aside.cache.load.outcome", "ok"), unset},
		{"aside.get_many", "request", nsKeys("3", "aside.cache.local_hits", "1"), unset},
		{"aside.invalidate", "request", nsKeys("1"), unset},
		{"aside.delete", "request", nsKeys("1"), unset},
		{"aside.invalidate_pattern", "request", nsKeys(""), unset},
		{"aside.invalidate_tag", "request", nsKeys(""), unset},
		{"request", "", map[string]string{}, unset},
	}
	assert.Equal(t, wantSpans, spans)
	for _, s := range ended {
		for _, kv := range s.Attributes() {
			assert.NotContains(t, kv.Value.String(), "v1", "%s: a value in %s", s.Name(), kv.Key)
			assert.NotContains(t, kv.Value.String(), ns+":", "%s: a key in %s", s.Name(), kv.Key)
		}
		assert.Empty(t, s.Status().Description, "%s: an error message (it names keys)", s.Name())
	}
}

// onEnd is a span processor that hands every ended span to a channel: a test
// waits for a span that ends on a background goroutine without polling.
type onEnd struct {
	sdktrace.SpanProcessor
	ended chan sdktrace.ReadOnlySpan
}

func (p onEnd) OnEnd(s sdktrace.ReadOnlySpan) {
	p.SpanProcessor.OnEnd(s)
	p.ended <- s
}

// fakeClock is the caches' clock, moved by the test.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Add(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

// TestBackgroundRefresh: a refresh ahead of expiry runs on a background
// goroutine after the Get returned; its load's span is a child of the span
// the Get was called with, and the refresh and the stale value served are
// counted.
func TestBackgroundRefresh(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	spans := tracetest.NewSpanRecorder()
	proc := onEnd{spans, make(chan sdktrace.ReadOnlySpan, 16)}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(proc))
	t.Cleanup(func() {
		_ = mp.Shutdown(context.Background())
		_ = tp.Shutdown(context.Background())
	})
	rec, err := asideotel.New(asideotel.WithMeterProvider(mp), asideotel.WithTracerProvider(tp))
	require.NoError(t, err)
	t.Cleanup(func() { _ = rec.Close() })
	h := &harness{reader: reader, spans: spans, tp: tp, rec: rec}

	clock := &fakeClock{now: time.Now()}
	ns := fmt.Sprintf("otel-refresh-%d", seq.Add(1))
	c := newCache(t, ns, rec, func(o *cache.Options[int64, string]) {
		o.TTL = ttlpolicy.Fixed(10 * time.Minute).WithSoft(0.5)
		o.Now = clock.Now
		o.Refresh = cache.RefreshBackground
	})
	ctx := context.Background()
	_, err = c.Get(ctx, 1) // miss: aside.load, aside.get
	require.NoError(t, err)
	for range 2 {
		<-proc.ended
	}
	_, err = c.TTL(ctx, 1) // the load's write ended
	require.NoError(t, err)

	clock.Add(6 * time.Minute) // past the soft TTL, within the hard one
	ctx, root := tp.Tracer("test").Start(ctx, "request")
	v, err := c.Get(ctx, 1) // a local hit, due: served, refreshed in the background
	require.NoError(t, err)
	require.Equal(t, "v1", v)
	root.End()
	var load sdktrace.ReadOnlySpan
	for range 2 { // request and the refresh's load, in either order
		if s := <-proc.ended; s.Name() != "request" {
			load = s
		}
	}
	require.Equal(t, "aside.load", load.Name())
	assert.Equal(t, root.SpanContext().SpanID(), load.Parent().SpanID(), "the refresh's load is a child of the Get's caller")
	assert.Equal(t, root.SpanContext().TraceID(), load.SpanContext().TraceID())

	metrics, _ := h.collect(t, ns)
	assert.Equal(t, []point{
		{"[aside.cache.result=local]", 1},
		{"[aside.cache.result=miss]", 1},
		{"[aside.cache.result=redis]", 0},
	}, metrics["aside.cache.requests"])
	assert.Equal(t, []point{{"[]", 1}}, metrics["aside.cache.refreshes"])
	assert.Equal(t, []point{{"[]", 0}}, metrics["aside.cache.refresh.errors"])
	assert.Equal(t, []point{{"[]", 1}}, metrics["aside.cache.stale_served"])
	assert.Equal(t, []point{{"[aside.cache.load.outcome=ok]", 2}}, metrics["aside.cache.load.duration"])
}

// TestRedisDown: with Redis gone, a read finds it unavailable (the breaker
// opens, threshold 1) and loads directly; the next one skips Redis (short
// circuit) and loads directly too.
func TestRedisDown(t *testing.T) {
	h := newHarness(t)
	own := redistest.Start(t, redistest.Config{})
	client, err := cache.Connect(own.ClientOption())
	require.NoError(t, err)
	t.Cleanup(client.Close)
	ns := fmt.Sprintf("otel-down-%d", seq.Add(1))
	c, err := cache.New(client, cache.Options[int64, string]{
		Namespace:        ns,
		Loader:           load,
		Recorder:         h.rec,
		BreakerThreshold: 1,
		BreakerCooldown:  time.Hour,
		OnRedisDown:      cache.FailOpen,
	})
	require.NoError(t, err)
	require.NoError(t, own.Kill())

	ctx := context.Background()
	for _, id := range []int64{1, 2} {
		v, err := c.Get(ctx, id)
		require.NoError(t, err, "get %d", id)
		require.Equal(t, fmt.Sprintf("v%d", id), v)
	}
	metrics, _ := h.collect(t, ns)
	assert.Equal(t, []point{
		{"[aside.cache.error.class=decode]", 0},
		{"[aside.cache.error.class=short_circuit]", 1},
		{"[aside.cache.error.class=unavailable]", 1},
		{"[aside.cache.error.class=write]", 0},
	}, metrics["aside.cache.redis.errors"])
	assert.Equal(t, []point{{"[]", 2}}, metrics["aside.cache.fallbacks"])
	assert.Equal(t, []point{{"[]", 1}}, metrics["aside.cache.breaker.trips"])
	assert.Equal(t, []point{{"[]", 1}}, metrics["aside.cache.breaker.open"])
	assert.Equal(t, []point{{"[aside.cache.load.outcome=ok]", 2}}, metrics["aside.cache.load.duration"])
	assert.Equal(t, []point{
		{"[aside.cache.result=local]", 0},
		{"[aside.cache.result=miss]", 0},
		{"[aside.cache.result=redis]", 0},
	}, metrics["aside.cache.requests"])

	var names []string
	for _, s := range h.spans.Ended() {
		names = append(names, s.Name())
		assert.Equal(t, codes.Unset, s.Status().Code, "%s: the fallback answered", s.Name())
	}
	assert.Equal(t, []string{"aside.load", "aside.get", "aside.load", "aside.get"}, names)
}
