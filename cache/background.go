package cache

import (
	"context"
	"sync"
	"time"
)

// background runs the goroutines of a cache that outlive the call that
// started them (loads others wait for, refreshes, lease releases), so that
// Client.Close can stop and wait for them.
type background struct {
	// closing is the client's: cancelled by Close.
	closing context.Context
	// bg counts the goroutines; closed, set by the client's Close, stops new
	// ones from starting. mu makes the check of closed and bg.Add one step,
	// so that Close's bg.Wait never races with an Add.
	mu     sync.Mutex
	closed bool
	bg     sync.WaitGroup
}

// spawn runs f on a background goroutine that Client.Close waits for, and
// reports whether it did: once the client is closing, it starts nothing and
// the caller does the work itself or skips it.
func (b *background) spawn(f func()) bool {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return false
	}
	b.bg.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.bg.Done()
		f()
	}()
	return true
}

// waitBackground stops new background work and waits for the running one.
func (b *background) waitBackground() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.bg.Wait()
}

// detached returns a context with ctx's values but not its cancellation,
// ended by the client's Close and, when d > 0, after d: for work that must
// finish for everyone once begun, such as a load others wait for or the
// release of a lease. It is a child of the client's closing context (one
// context and, with d, one timer), which lends ctx's values.
func (b *background) detached(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	var dctx context.Context
	var cancel context.CancelFunc
	if d > 0 {
		dctx, cancel = context.WithTimeout(b.closing, d)
	} else {
		dctx, cancel = context.WithCancel(b.closing)
	}
	return valuesFrom{Context: dctx, vals: ctx}, cancel
}

// valuesFrom is Context with the values of vals. Context's own values come
// first: they are the context package's (a context made from a valuesFrom
// finds Context's cancellation there, and hangs on it as on any cancelable
// parent) and the client's closing context's, which holds none of the
// application's.
type valuesFrom struct {
	context.Context
	vals context.Context
}

func (v valuesFrom) Value(key any) any {
	if x := v.Context.Value(key); x != nil {
		return x
	}
	return v.vals.Value(key)
}

// backoff spaces the attempts of work that waits for Redis: the first wait
// is min, each next one twice the last, up to max.
type backoff struct{ next, max time.Duration }

// wait waits for the next attempt and reports whether to make it: false
// once ctx ended.
func (b *backoff) wait(ctx context.Context) bool {
	t := time.NewTimer(b.next)
	defer t.Stop()
	b.next = min(2*b.next, b.max)
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Writes that found Redis unavailable (see Cache.commit) are sent again
// after writeRetryMin, then at most every writeRetryMax: a dropped connection
// is dialled again at once, so the first attempts come soon.
const (
	writeRetryMin = 10 * time.Millisecond
	writeRetryMax = 500 * time.Millisecond
)
