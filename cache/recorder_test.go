package cache_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/cache"
)

// countingRecorder records the operations reported to it.
type countingRecorder struct {
	mu      sync.Mutex
	ns      []string
	stats   []func() cache.Stats
	started []cache.Op
	ended   []cache.Result
}

func (r *countingRecorder) Observe(ns string, stats func() cache.Stats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ns = append(r.ns, ns)
	r.stats = append(r.stats, stats)
}

func (r *countingRecorder) Start(ctx context.Context, op cache.Op) (context.Context, func(cache.Result)) {
	r.mu.Lock()
	r.started = append(r.started, op)
	r.mu.Unlock()
	return ctx, func(res cache.Result) {
		r.mu.Lock()
		r.ended = append(r.ended, res)
		r.mu.Unlock()
	}
}

func (r *countingRecorder) ops() ([]cache.Op, []cache.Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]cache.Op(nil), r.started...), append([]cache.Result(nil), r.ended...)
}

// TestRecorderHitPath: a Get served from process memory makes no recorder
// call and allocates nothing, recorder or not; the counters reach the
// recorder through the stats function it observes.
func TestRecorderHitPath(t *testing.T) {
	rec := &countingRecorder{}
	ns := namespace(t)
	c := userCache(t, nil, ns, nil, func(o *cache.Options[int64, User]) { o.Recorder = rec })
	require.Equal(t, []string{ns}, rec.ns)
	warm(t, c, 1)
	before, _ := rec.ops()
	hits := c.Stats().LocalHits
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := c.Get(ctx, 1); err != nil {
			t.Fatal(err)
		}
	})
	after, _ := rec.ops()
	assert.Zero(t, allocs, "allocations of a local hit with a recorder")
	assert.Len(t, after, len(before), "a local hit called the recorder")
	assert.Equal(t, hits+101, rec.stats[0]().LocalHits, "the observed stats count the hits")
}

// TestRecorderOperations: the operations that leave process memory are
// reported once each, started and ended, with their namespace, sizes and
// outcomes and no key.
func TestRecorderOperations(t *testing.T) {
	rec := &countingRecorder{}
	ns := namespace(t)
	fail := errors.New("source down")
	c := userCache(t, nil, ns, nil, func(o *cache.Options[int64, User]) {
		o.Recorder = rec
		base := o.Loader
		o.Loader = func(ctx context.Context, id int64) (User, error) {
			if id == 99 {
				return User{}, fail
			}
			return base(ctx, id)
		}
	})
	ctx := context.Background()
	_, err := c.Get(ctx, 1) // miss: get + load
	require.NoError(t, err)
	_, err = c.Get(ctx, -1) // not found: get + load
	require.ErrorIs(t, err, cache.ErrNotFound)
	_, err = c.Get(ctx, 99) // load error: get + load
	require.ErrorIs(t, err, fail)
	require.NoError(t, cache.AwaitWrites(ctx, c, 1, -1, 99))
	warm(t, c, 1)
	startsBefore, _ := rec.ops()
	_, err = c.GetMany(ctx, []int64{1}) // from memory alone: not reported
	require.NoError(t, err)
	starts, _ := rec.ops()
	require.Len(t, starts, len(startsBefore))

	rec.mu.Lock()
	rec.started, rec.ended = nil, nil
	rec.mu.Unlock()
	_, err = c.GetMany(ctx, []int64{1, 2, 3}) // one local hit, a batch load of two
	require.NoError(t, err)
	_, err = c.Delete(ctx, 2)
	require.NoError(t, err)
	require.NoError(t, c.Invalidate(ctx, 3))
	_, err = c.InvalidatePrefix(ctx, "4")
	require.NoError(t, err)
	_, err = c.InvalidateTag(ctx, "team")
	require.NoError(t, err)

	starts, ends := rec.ops()
	want := []cache.Op{
		{Namespace: ns, Operation: cache.OpGetMany, Keys: 3, LocalHits: 1},
		{Namespace: ns, Operation: cache.OpLoad, Keys: 2},
		{Namespace: ns, Operation: cache.OpDelete, Keys: 1},
		{Namespace: ns, Operation: cache.OpInvalidate, Keys: 1},
		{Namespace: ns, Operation: cache.OpInvalidatePattern},
		{Namespace: ns, Operation: cache.OpInvalidateTag},
	}
	assert.Equal(t, want, starts)
	require.Len(t, ends, len(want))
	// The load ends before the GetMany that waits for it.
	assert.Equal(t, 2, ends[0].Found)
	assert.Equal(t, "ok", ends[0].LoadOutcome())
	for _, e := range ends {
		assert.NoError(t, e.Err)
		assert.Positive(t, e.Duration)
	}
}

// TestRecorderLoadOutcomes: the outcome of each kind of load.
func TestRecorderLoadOutcomes(t *testing.T) {
	for _, tc := range []struct {
		r    cache.Result
		want string
	}{
		{cache.Result{Found: 1}, "ok"},
		{cache.Result{Found: 1, NotFound: 1}, "ok"},
		{cache.Result{NotFound: 2}, "not_found"},
		{cache.Result{Found: 1, Failed: 1}, "error"},
		{cache.Result{}, "ok"},
	} {
		assert.Equal(t, tc.want, tc.r.LoadOutcome(), "%+v", tc.r)
	}
	assert.Equal(t, "get_many", cache.OpGetMany.String())
	assert.Equal(t, "invalidate_pattern", cache.OpInvalidatePattern.String())
	assert.Equal(t, "invalidate_tag", cache.OpInvalidateTag.String())
	assert.Equal(t, "clear", cache.OpClear.String())
}
