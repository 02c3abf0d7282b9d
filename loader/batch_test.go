package loader_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/loader"
)

func keys(n int) []int {
	ks := make([]int, n)
	for i := range ks {
		ks[i] = i
	}
	return ks
}

// concurrency tracks the loads in flight and the most seen at once.
type concurrency struct {
	now, max atomic.Int32
}

func (c *concurrency) enter() {
	n := c.now.Add(1)
	for m := c.max.Load(); n > m && !c.max.CompareAndSwap(m, n); m = c.max.Load() {
	}
}

func (c *concurrency) leave() { c.now.Add(-1) }

func TestBatchLimitsConcurrency(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		limit int
		keys  int
		want  int // the loads in flight at once
	}{
		{"limit 1", 1, 20, 1},
		{"limit 4", 4, 100, 4},
		{"limit above keys", 50, 10, 10},
		{"default", 0, 100, loader.DefaultBatchLimit},
		{"negative is default", -3, 100, loader.DefaultBatchLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var c concurrency
			// The first want loads wait for each other, so that the test
			// sees the batch reach its limit, not just stay below it.
			// (A batch that stopped short of it would hang here.)
			var arrived sync.WaitGroup
			arrived.Add(tt.want)
			var started atomic.Int32
			load := loader.Func[int, string](func(_ context.Context, k int) (string, error) {
				c.enter()
				defer c.leave()
				if started.Add(1) <= int32(tt.want) {
					arrived.Done()
					arrived.Wait()
				}
				// Yield while in flight, so that loads beyond the limit, if
				// the batch started any, would overlap with this one.
				for range 3 {
					runtime.Gosched()
				}
				return strconv.Itoa(k), nil
			})
			got, err := load.Batch(tt.limit)(t.Context(), keys(tt.keys))
			require.NoError(t, err)
			require.Len(t, got, tt.keys)
			for k, v := range got {
				assert.Equal(t, strconv.Itoa(k), v)
			}
			assert.Equal(t, int32(tt.want), c.max.Load())
			assert.Equal(t, int32(tt.keys), started.Load())
		})
	}
}

func TestBatchResults(t *testing.T) {
	t.Parallel()
	errDown := errors.New("source down")
	// Keys ending in 1 are not found, in 2 fail, in 3 panic, in 4 exit.
	load := loader.Func[int, string](func(_ context.Context, k int) (string, error) {
		switch k % 10 {
		case 1:
			return "", fmt.Errorf("row %d: %w", k, loader.ErrNotFound)
		case 2:
			return "", errDown
		case 3:
			panic("bad row")
		case 4:
			runtime.Goexit()
		}
		return "v" + strconv.Itoa(k), nil
	})
	tests := []struct {
		name   string
		keys   []int
		found  map[int]string
		failed map[int]error
	}{
		{"all found", []int{0, 5, 10}, map[int]string{0: "v0", 5: "v5", 10: "v10"}, nil},
		{"not found omitted", []int{0, 1, 11}, map[int]string{0: "v0"}, nil},
		{"errors name their keys", []int{0, 2, 5, 12}, map[int]string{0: "v0", 5: "v5"},
			map[int]error{2: errDown, 12: errDown}},
		{"panic fails its key only", []int{3, 5}, map[int]string{5: "v5"}, map[int]error{3: loader.ErrPanic}},
		{"goexit fails its key only", []int{4, 14, 24, 5, 6}, map[int]string{5: "v5", 6: "v6"},
			map[int]error{4: loader.ErrGoexit, 14: loader.ErrGoexit, 24: loader.ErrGoexit}},
		{"empty", nil, map[int]string{}, nil},
	}
	for _, limit := range []int{1, 3} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s limit %d", tt.name, limit), func(t *testing.T) {
				t.Parallel()
				got, err := load.Batch(limit)(t.Context(), tt.keys)
				require.NotNil(t, got)
				assert.Equal(t, tt.found, got)
				if tt.failed == nil {
					require.NoError(t, err)
					return
				}
				require.Error(t, err)
				joined, ok := err.(interface{ Unwrap() []error })
				require.True(t, ok, "errors.Join of the keys that failed")
				require.Len(t, joined.Unwrap(), len(tt.failed))
				for _, e := range joined.Unwrap() {
					var ke *loader.KeyError[int]
					require.ErrorAs(t, e, &ke)
					want, ok := tt.failed[ke.Key]
					require.True(t, ok, "key %d failed", ke.Key)
					assert.ErrorIs(t, e, want)
					assert.Contains(t, e.Error(), fmt.Sprintf("key %d: ", ke.Key))
				}
			})
		}
	}
}

func TestBatchEndedContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var calls atomic.Int32
	load := loader.Func[int, string](func(context.Context, int) (string, error) {
		calls.Add(1)
		return "v", nil
	})
	got, err := load.Batch(2)(ctx, keys(5))
	assert.Empty(t, got)
	require.ErrorIs(t, err, context.Canceled)
	assert.Len(t, err.(interface{ Unwrap() []error }).Unwrap(), 5, "every key named")
	assert.Zero(t, calls.Load())
}

func TestBatchStopsStartingLoadsWhenContextEnds(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	var calls atomic.Int32
	load := loader.Func[int, string](func(_ context.Context, k int) (string, error) {
		calls.Add(1)
		if k == 2 {
			cancel() // the caller gives up while the third key loads
		}
		return "v", nil
	})
	got, err := load.Batch(1)(ctx, keys(5))
	assert.Equal(t, map[int]string{0: "v", 1: "v", 2: "v"}, got)
	require.ErrorIs(t, err, context.Canceled)
	var ke *loader.KeyError[int]
	require.ErrorAs(t, err, &ke)
	assert.Equal(t, 3, ke.Key)
	assert.Equal(t, int32(3), calls.Load())
}

func TestBatchKeepsNoCacheValues(t *testing.T) {
	t.Parallel()
	f := loader.Func[int, string](func(_ context.Context, k int) (string, error) {
		if k == 2 {
			return "two", loader.NoCache
		}
		return "one", nil
	})
	m, err := f.Batch(0)(context.Background(), []int{1, 2})
	assert.Equal(t, map[int]string{1: "one", 2: "two"}, m, "a NoCache value is in the map")
	assert.ErrorIs(t, err, loader.NoCache)
	assert.Equal(t, map[int]error{2: loader.NoCache}, loader.KeyErrors[int](err), "and its key is named")
}
