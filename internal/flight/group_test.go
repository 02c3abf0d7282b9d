package flight_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/internal/flight"
	"github.com/aside-go/aside/loader"
)

type result struct {
	v      string
	shared bool
	err    error
}

// do calls g.Do on a new goroutine and delivers its result on the channel.
func do(ctx context.Context, g *flight.Group[string], key string, fn func(context.Context) (string, error)) <-chan result {
	ch := make(chan result, 1)
	go func() {
		v, shared, err := g.Do(ctx, key, fn)
		ch <- result{v, shared, err}
	}()
	return ch
}

// awaitWaiters returns once n callers wait on the flight of key. It waits on
// the group's own count rather than for a while, so that no test depends on
// timing.
func awaitWaiters(g *flight.Group[string], key string, n int) {
	for flight.Waiters(g, key) != n {
		runtime.Gosched()
	}
}

// gated returns a load that counts its calls and returns v once gate is
// closed.
func gated(calls *atomic.Int32, gate <-chan struct{}, v string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		calls.Add(1)
		<-gate
		return v, nil
	}
}

func TestDoSharesOneLoad(t *testing.T) {
	t.Parallel()
	const callers = 100
	var g flight.Group[string]
	var calls atomic.Int32
	gate := make(chan struct{})
	results := make([]<-chan result, callers)
	for i := range results {
		results[i] = do(t.Context(), &g, "k", gated(&calls, gate, "v"))
	}
	awaitWaiters(&g, "k", callers)
	close(gate)
	for _, ch := range results {
		r := <-ch
		require.NoError(t, r.err)
		assert.Equal(t, "v", r.v)
		assert.True(t, r.shared)
	}
	assert.Equal(t, int32(1), calls.Load())
	assert.Zero(t, flight.Waiters(&g, "k"), "the flight left the group")
}

func TestDoAloneIsNotShared(t *testing.T) {
	t.Parallel()
	var g flight.Group[string]
	var calls atomic.Int32
	for range 3 {
		v, shared, err := g.Do(t.Context(), "k", func(context.Context) (string, error) {
			calls.Add(1)
			return "v", nil
		})
		require.NoError(t, err)
		assert.Equal(t, "v", v)
		assert.False(t, shared)
	}
	assert.Equal(t, int32(3), calls.Load(), "a completed flight is not reused")
}

func TestDoKeysAreIndependent(t *testing.T) {
	t.Parallel()
	var g flight.Group[string]
	var callsA, callsB atomic.Int32
	gateA := make(chan struct{})
	a := do(t.Context(), &g, "a", gated(&callsA, gateA, "A"))
	awaitWaiters(&g, "a", 1)

	// b completes while a is blocked.
	v, shared, err := g.Do(t.Context(), "b", func(context.Context) (string, error) {
		callsB.Add(1)
		return "B", nil
	})
	require.NoError(t, err)
	assert.Equal(t, "B", v)
	assert.False(t, shared)

	close(gateA)
	r := <-a
	require.NoError(t, r.err)
	assert.Equal(t, "A", r.v)
	assert.Equal(t, int32(1), callsA.Load())
	assert.Equal(t, int32(1), callsB.Load())
}

func TestDoErrorReachesEveryWaiter(t *testing.T) {
	t.Parallel()
	var g flight.Group[string]
	gate := make(chan struct{})
	fn := func(context.Context) (string, error) {
		<-gate
		return "", fmt.Errorf("user 7: %w", loader.ErrNotFound)
	}
	first := do(t.Context(), &g, "k", fn)
	awaitWaiters(&g, "k", 1)
	second := do(t.Context(), &g, "k", fn)
	awaitWaiters(&g, "k", 2)
	close(gate)
	for _, ch := range []<-chan result{first, second} {
		r := <-ch
		require.ErrorIs(t, r.err, loader.ErrNotFound)
		assert.True(t, r.shared)
	}
}

// endingContext is a context that the test ends with the error it wants,
// DeadlineExceeded included, without waiting for a timer. Its Done channel
// is that of a real context.WithCancel, so that contexts derived from it are
// cancelled synchronously, as they are from the contexts of the standard
// library.
type endingContext struct {
	context.Context
	end func()
	err error
}

func newEndingContext(parent context.Context, err error) *endingContext {
	ctx, cancel := context.WithCancel(parent)
	return &endingContext{Context: ctx, end: cancel, err: err}
}

func (c *endingContext) Err() error {
	if c.Context.Err() != nil {
		return c.err
	}
	return nil
}

func TestDoCallerLeavesLoadGoesOn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
	}{
		{"canceled", context.Canceled},
		{"deadline", context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var g flight.Group[string]
			var calls atomic.Int32
			gate := make(chan struct{})
			loadCtx := make(chan context.Context, 1)
			fn := func(ctx context.Context) (string, error) {
				calls.Add(1)
				loadCtx <- ctx
				<-gate
				return "v", nil
			}
			leaving := newEndingContext(t.Context(), tt.err)
			first := do(leaving, &g, "k", fn) // starts the flight
			awaitWaiters(&g, "k", 1)
			staying := do(t.Context(), &g, "k", fn)
			awaitWaiters(&g, "k", 2)

			leaving.end()
			r := <-first
			require.ErrorIs(t, r.err, tt.err)
			assert.Empty(t, r.v)
			assert.False(t, r.shared)
			ctx := <-loadCtx
			require.NoError(t, ctx.Err(), "the load goes on for the caller still waiting")
			assert.Equal(t, 1, flight.Waiters(&g, "k"))

			close(gate)
			r = <-staying
			require.NoError(t, r.err)
			assert.Equal(t, "v", r.v)
			assert.True(t, r.shared)
			assert.Equal(t, int32(1), calls.Load())
		})
	}
}

func TestDoLastWaiterLeavingCancelsLoad(t *testing.T) {
	t.Parallel()
	var g flight.Group[string]
	loadCtx := make(chan context.Context, 1)
	loadErr := make(chan error, 1)
	fn := func(ctx context.Context) (string, error) {
		loadCtx <- ctx
		<-ctx.Done()
		loadErr <- ctx.Err()
		return "", ctx.Err()
	}
	ctx1, cancel1 := context.WithCancel(t.Context())
	ctx2, cancel2 := context.WithCancel(t.Context())
	first := do(ctx1, &g, "k", fn)
	awaitWaiters(&g, "k", 1)
	second := do(ctx2, &g, "k", fn)
	awaitWaiters(&g, "k", 2)
	ctx := <-loadCtx

	cancel1()
	require.ErrorIs(t, (<-first).err, context.Canceled)
	require.NoError(t, ctx.Err(), "one caller still waits")

	cancel2()
	require.ErrorIs(t, (<-second).err, context.Canceled)
	require.ErrorIs(t, ctx.Err(), context.Canceled, "nobody waits: the load is cancelled")
	require.ErrorIs(t, <-loadErr, context.Canceled, "the load saw its Done channel close")

	// The cancelled flight is not joined: the next caller starts a new one.
	v, shared, err := g.Do(t.Context(), "k", func(context.Context) (string, error) { return "fresh", nil })
	require.NoError(t, err)
	assert.Equal(t, "fresh", v)
	assert.False(t, shared)
}

type ctxKey struct{}

func TestDoLoadContext(t *testing.T) {
	t.Parallel()
	var g flight.Group[string]
	ctx, cancel := context.WithTimeout(context.WithValue(t.Context(), ctxKey{}, "request-7"), time.Hour)
	defer cancel()
	v, _, err := g.Do(ctx, "k", func(ctx context.Context) (string, error) {
		_, hasDeadline := ctx.Deadline()
		assert.False(t, hasDeadline, "the first caller's deadline must not bound a shared load")
		return ctx.Value(ctxKey{}).(string), nil
	})
	require.NoError(t, err)
	assert.Equal(t, "request-7", v, "the first caller's values reach the load")
}

func TestDoEndedContextStartsNothing(t *testing.T) {
	t.Parallel()
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	expired, cancel2 := context.WithDeadline(t.Context(), time0)
	defer cancel2()
	tests := []struct {
		name string
		ctx  context.Context
		err  error
	}{
		{"canceled", canceled, context.Canceled},
		{"deadline passed", expired, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var g flight.Group[string]
			var calls atomic.Int32
			_, _, err := g.Do(tt.ctx, "k", func(context.Context) (string, error) {
				calls.Add(1)
				return "v", nil
			})
			require.ErrorIs(t, err, tt.err)
			assert.Zero(t, calls.Load())
		})
	}
}

var errBoom = errors.New("boom")

func TestDoPanicReachesEveryWaiter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		value any
		is    error // also matched by errors.Is, besides ErrPanic
	}{
		{"string", "boom", nil},
		{"error", errBoom, errBoom},
		{"nil", nil, nil}, // a *runtime.PanicNilError since Go 1.21
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const callers = 10
			var g flight.Group[string]
			gate := make(chan struct{})
			fn := func(context.Context) (string, error) {
				<-gate
				panic(tt.value)
			}
			results := make([]<-chan result, callers)
			for i := range results {
				results[i] = do(t.Context(), &g, "k", fn)
			}
			awaitWaiters(&g, "k", callers)
			close(gate)
			for _, ch := range results {
				r := <-ch
				require.ErrorIs(t, r.err, loader.ErrPanic)
				var pe *loader.PanicError
				require.ErrorAs(t, r.err, &pe)
				if tt.value != nil {
					assert.Equal(t, tt.value, pe.Value)
				} else {
					var nilErr *runtime.PanicNilError
					assert.ErrorAs(t, r.err, &nilErr)
				}
				assert.Contains(t, string(pe.Stack), "TestDoPanicReachesEveryWaiter", "the stack shows where the load panicked")
				if tt.is != nil {
					assert.ErrorIs(t, r.err, tt.is)
				}
			}

			// The process survived, and the group still works.
			v, _, err := g.Do(t.Context(), "k", func(context.Context) (string, error) { return "after", nil })
			require.NoError(t, err)
			assert.Equal(t, "after", v)
		})
	}
}

func TestDoGoexitReachesEveryWaiter(t *testing.T) {
	t.Parallel()
	const callers = 10
	var g flight.Group[string]
	gate := make(chan struct{})
	fn := func(context.Context) (string, error) {
		<-gate
		runtime.Goexit()
		return "unreachable", nil
	}
	results := make([]<-chan result, callers)
	for i := range results {
		results[i] = do(t.Context(), &g, "k", fn)
	}
	awaitWaiters(&g, "k", callers)
	close(gate)
	for _, ch := range results {
		r := <-ch
		require.ErrorIs(t, r.err, loader.ErrGoexit)
		assert.Empty(t, r.v)
	}
	v, _, err := g.Do(t.Context(), "k", func(context.Context) (string, error) { return "after", nil })
	require.NoError(t, err)
	assert.Equal(t, "after", v)
}

func TestForgetStartsNewFlight(t *testing.T) {
	t.Parallel()
	var g flight.Group[string]
	var calls atomic.Int32
	gate1, gate2 := make(chan struct{}), make(chan struct{})
	before1 := do(t.Context(), &g, "k", gated(&calls, gate1, "before"))
	awaitWaiters(&g, "k", 1)
	before2 := do(t.Context(), &g, "k", gated(&calls, gate1, "before"))
	awaitWaiters(&g, "k", 2)

	g.Forget("k") // an invalidation arrived
	require.Zero(t, flight.Waiters(&g, "k"))
	after1 := do(t.Context(), &g, "k", gated(&calls, gate2, "after"))
	awaitWaiters(&g, "k", 1)

	// The first flight completes for its own waiters, and leaves the
	// second flight in place for later callers.
	close(gate1)
	for _, ch := range []<-chan result{before1, before2} {
		r := <-ch
		require.NoError(t, r.err)
		assert.Equal(t, "before", r.v)
		assert.True(t, r.shared)
	}
	require.Equal(t, 1, flight.Waiters(&g, "k"), "the second flight is still there to join")
	after2 := do(t.Context(), &g, "k", gated(&calls, gate2, "after"))
	awaitWaiters(&g, "k", 2)

	close(gate2)
	for _, ch := range []<-chan result{after1, after2} {
		r := <-ch
		require.NoError(t, r.err)
		assert.Equal(t, "after", r.v)
		assert.True(t, r.shared)
	}
	assert.Equal(t, int32(2), calls.Load())
}

func TestForgetUnknownKey(t *testing.T) {
	t.Parallel()
	var g flight.Group[string]
	g.Forget("never") // the zero Group too
	v, _, err := g.Do(t.Context(), "never", func(context.Context) (string, error) { return "v", nil })
	require.NoError(t, err)
	assert.Equal(t, "v", v)
}

// time0 is a deadline long past.
var time0 = time.Unix(0, 0)
