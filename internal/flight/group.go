package flight

import (
	"bytes"
	"context"
	"runtime/debug"
	"sync"

	"github.com/aside-go/aside/loader"
)

// Group runs one load per key at a time and shares its result with every
// caller that asks for the key meanwhile: typed in-process stampede
// protection, after golang.org/x/sync/singleflight.
//
// Unlike singleflight, a load runs on a goroutine of its own, so that each
// caller can stop waiting when its context ends while the load goes on for
// the others; the load is cancelled once nobody waits for it; a panic or a
// runtime.Goexit in a load reaches its callers as an error instead of
// crashing the process or hanging them (singleflight.DoChan re-panics on a
// fresh goroutine, and never answers its channels after a Goexit). That is
// why Group keeps its own table of flights rather than wrapping
// singleflight: the waiter count and the cancellation belong to a flight,
// and must change under the same lock that lets callers join it.
//
// The zero Group is ready to use. A Group must not be copied after first
// use.
type Group[V any] struct {
	mu sync.Mutex
	// flights holds the flight that a caller asking for a key joins. A
	// flight leaves it when it completes, when Forget is called, or when its
	// last waiter leaves; it may go on running after that, for the callers
	// that still wait on it. Lazily initialized. Guarded by mu.
	flights map[string]*flight[V]
}

// flight is one run of a load for one key.
type flight[V any] struct {
	// done is closed when the load has returned, panicked or exited. val
	// and err are written before and read only after it is closed.
	done chan struct{}
	val  V
	err  error

	// cancel cancels the context of the load. It is safe to call more than
	// once, and is called with mu not held.
	cancel context.CancelFunc

	// waiters counts the callers waiting on the flight. Guarded by mu.
	waiters int
	// joined records that a caller joined the flight after the one that
	// started it. Written under mu while the flight is in flights; stable
	// once done is closed, because a flight leaves flights before that.
	joined bool
}

// Do returns the result of fn for key, running fn only if no call for key is
// in flight and otherwise waiting for the one that is. shared reports that
// the result went to more than one caller: it is true for every caller that
// joined a flight, and for the caller that started it if anyone joined.
//
// fn runs on a goroutine of its own, with a context that carries the values
// of the first caller's ctx but not its cancellation or deadline
// (context.WithoutCancel), because the first caller going away must not fail
// the load for the callers that joined it. The flight counts its waiters:
// when a caller's ctx ends before the result is ready, that caller stops
// waiting and returns ctx.Err() (test it with errors.Is) while the load goes
// on for the others; when the last waiter leaves, fn's context is cancelled,
// so a load that nobody waits for stops, and the next caller starts a new
// flight. Do returns ctx.Err() at once, without starting fn, when ctx has
// already ended. With ctx.Err(), v is the zero value and shared is false.
//
// A panic in fn reaches every waiter as a [*loader.PanicError] (wrapping
// [loader.ErrPanic]), and a runtime.Goexit in fn as [loader.ErrGoexit]; neither crashes the
// process nor leaves a waiter hanging, and the Group stays usable.
func (g *Group[V]) Do(ctx context.Context, key string, fn func(ctx context.Context) (V, error)) (v V, shared bool, err error) {
	if err := ctx.Err(); err != nil {
		return v, false, err
	}
	g.mu.Lock()
	f, joined := g.flights[key]
	if joined {
		f.waiters++
		f.joined = true
		g.mu.Unlock()
	} else {
		var fctx context.Context
		f = &flight[V]{done: make(chan struct{}), waiters: 1}
		fctx, f.cancel = context.WithCancel(context.WithoutCancel(ctx))
		if g.flights == nil {
			g.flights = make(map[string]*flight[V])
		}
		g.flights[key] = f
		g.mu.Unlock()
		go g.run(fctx, key, f, fn)
	}

	select {
	case <-f.done:
		return f.val, joined || f.joined, f.err
	case <-ctx.Done():
	}
	// Both may be ready at once, and select picks either: a result that is
	// there is worth more than an error.
	select {
	case <-f.done:
		return f.val, joined || f.joined, f.err
	default:
	}
	g.leave(key, f)
	return v, false, ctx.Err()
}

// leave removes a caller that stopped waiting from f, and cancels f's load
// if it was the last one. The flight leaves flights then, so that the next
// caller starts a fresh load instead of joining one that is being
// cancelled.
func (g *Group[V]) leave(key string, f *flight[V]) {
	g.mu.Lock()
	f.waiters--
	last := f.waiters == 0
	if last && g.flights[key] == f {
		delete(g.flights, key)
	}
	g.mu.Unlock()
	if last {
		f.cancel()
	}
}

// run runs fn for f and publishes its result, whatever way fn ends.
func (g *Group[V]) run(ctx context.Context, key string, f *flight[V], fn func(context.Context) (V, error)) {
	normalReturn := false
	defer func() {
		if !normalReturn {
			// recover returns nil during runtime.Goexit, which cannot be
			// stopped: the goroutine ends once this function returns. The
			// stack is taken here, before the panicking frames unwind.
			if r := recover(); r != nil {
				f.err = newPanicError(r)
			} else {
				f.err = loader.ErrGoexit
			}
		}
		// Leave flights before done is closed: from then on nobody joins,
		// so f.joined is stable for the waiters that read it. Another
		// flight may hold key already (after Forget, or after every waiter
		// of this one left), and must stay.
		g.mu.Lock()
		if g.flights[key] == f {
			delete(g.flights, key)
		}
		g.mu.Unlock()
		f.cancel()
		close(f.done)
	}()
	f.val, f.err = fn(ctx)
	normalReturn = true
}

// Forget makes callers that ask for key from now on start a new flight
// instead of joining the one in progress, which still completes for the
// callers already waiting on it. The cache calls it when an invalidation of
// key arrives, so that a load that read the source before the invalidation
// is not shared with reads after it.
func (g *Group[V]) Forget(key string) {
	g.mu.Lock()
	delete(g.flights, key)
	g.mu.Unlock()
}

// ForgetFunc is Forget for every key that match reports true of: the cache
// calls it for a pattern invalidation, which changes every key the pattern
// could match, loads in flight included.
func (g *Group[V]) ForgetFunc(match func(key string) bool) {
	g.mu.Lock()
	for key := range g.flights {
		if match(key) {
			delete(g.flights, key)
		}
	}
	g.mu.Unlock()
}

// ForgetAll is Forget for every key: the cache calls it when Redis forgot
// what it tracked for the process (a flush, or a connection that dropped), so
// that no read from then on joins a load that began before.
func (g *Group[V]) ForgetAll() {
	g.mu.Lock()
	clear(g.flights)
	g.mu.Unlock()
}

// newPanicError is the error of a panic with value v, with the stack of the
// panicking goroutine from the frame that panicked.
func newPanicError(v any) *loader.PanicError {
	stack := debug.Stack()
	if i := bytes.IndexByte(stack, '\n'); i >= 0 {
		stack = stack[i+1:]
	}
	return &loader.PanicError{Value: v, Stack: stack}
}
