package flight

import "context"

// Flight is a load for one key claimed with [Group.Claim]. The caller that
// leads it runs the load itself and publishes the result with Finish; any
// other caller waits for that result with Wait. Callers of [Group.Do] for the
// same key join a claimed flight like any other.
type Flight[V any] struct {
	g      *Group[V]
	key    string
	f      *flight[V]
	leader bool
}

// Claim returns the flight for key. When none is in progress it starts one
// led by the caller and returns true: the caller must call [Flight.Finish]
// exactly once, even when its load fails. Otherwise it returns the flight in
// progress and false: the caller may [Flight.Wait] for its result.
//
// Claim is for loads the caller runs itself, such as one batch load for the
// many keys it claimed, which Do's one-function-per-key shape cannot express.
func (g *Group[V]) Claim(key string) (*Flight[V], bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.claim(key, new(led[V]))
}

// ClaimAll is Claim of each of keys, in one critical section, with the
// flights it starts allocated together: fls[i] and leads[i] are what
// Claim(keys[i]) would return. fls and leads must be as long as keys.
func (g *Group[V]) ClaimAll(keys []string, fls []*Flight[V], leads []bool) {
	ls := make([]led[V], len(keys))
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, key := range keys {
		fls[i], leads[i] = g.claim(key, &ls[i])
	}
}

// claim is Claim with g.mu held, l the room for a flight it starts.
func (g *Group[V]) claim(key string, l *led[V]) (*Flight[V], bool) {
	if f, ok := g.flights[key]; ok {
		f.waiters++
		f.joined = true
		return &Flight[V]{g: g, key: key, f: f}, false
	}
	// The leader counts as a waiter that never leaves early, so callers
	// that join and leave never cancel a load they do not run; cancel is a
	// no-op for the same reason. The leader's handle and the flight share
	// l's allocation.
	l.f = flight[V]{done: make(chan struct{}), waiters: 1, cancel: noCancel}
	l.fl = Flight[V]{g: g, key: key, f: &l.f, leader: true}
	if g.flights == nil {
		g.flights = make(map[string]*flight[V])
	}
	g.flights[key] = &l.f
	return &l.fl, true
}

// led is a flight with its leader's handle.
type led[V any] struct {
	fl Flight[V]
	f  flight[V]
}

func noCancel() {}

// Finish publishes the result of a flight the caller leads. Calls after the
// first, and calls on a flight the caller does not lead, do nothing.
func (fl *Flight[V]) Finish(v V, err error) {
	if !fl.leader {
		return
	}
	fl.leader = false
	fl.g.mu.Lock()
	if fl.g.flights[fl.key] == fl.f {
		delete(fl.g.flights, fl.key)
	}
	fl.g.mu.Unlock()
	fl.f.val, fl.f.err = v, err
	close(fl.f.done)
}

// Detach takes the flight out of the table if it is still there: callers
// from now on start a new one, while those that joined it still get its
// result. A leader detaches a flight whose load cannot be told of a later
// change of its key (the cache's loads while Redis is unavailable), so
// that no caller joins it after the load began.
func (fl *Flight[V]) Detach() {
	fl.g.mu.Lock()
	if fl.g.flights[fl.key] == fl.f {
		delete(fl.g.flights, fl.key)
	}
	fl.g.mu.Unlock()
}

// Wait returns the result of the flight, or ctx.Err() when ctx ends first.
// A leader may Wait too, for a result it publishes from another goroutine:
// when its ctx ends first, the flight leaves the table (later callers start a
// new one) but its Finish still reaches the callers waiting on it.
func (fl *Flight[V]) Wait(ctx context.Context) (V, error) {
	select {
	case <-fl.f.done:
		return fl.f.val, fl.f.err
	case <-ctx.Done():
	}
	select {
	case <-fl.f.done:
		return fl.f.val, fl.f.err
	default:
	}
	fl.g.leave(fl.key, fl.f)
	var zero V
	return zero, ctx.Err()
}
