package cache

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// round is what one round of visits left to do, each fetch once.
type round[K comparable, V any] struct {
	again     []*fetch[K, V] // visit again at once
	held      []*fetch[K, V] // leased to this read: load
	contended []*fetch[K, V] // leased by another process: wait, then visit
	direct    []*fetch[K, V] // load without writing (Redis tracks them)
	blind     []*fetch[K, V] // load without writing (no push would reach them)
	down      []*fetch[K, V] // Redis unavailable
	corrupt   []*fetch[K, V] // unreadable bytes to delete, then visit
	lost      []*fetch[K, V] // a lease that may have been taken, reply lost
	downErr   error          // why down
	firstErr  error          // for the breaker
}

// resolve answers the fetches fs, which this call leads: it visits Redis for
// them all in one round trip, acts on each reply, and visits again those
// that another process is loading once their wait ends. Every fetch is
// answered, and every flight it leads finished, when it returns.
func (c *Cache[K, V]) resolve(ctx context.Context, fs []*fetch[K, V]) {
	defer func() {
		// Whatever happened, no led flight stays open (Finish does nothing
		// on a flight already finished).
		for _, f := range fs {
			if f.fl != nil && !f.handed {
				f.fl.Finish(nil, errAbandoned)
			}
		}
	}()
	todo := fs
	for spins := 0; len(todo) > 0; spins++ {
		if spins > maxSpins {
			// The keys change under us faster than we can read them.
			if err := sleepCtx(ctx, leasePoll); err != nil {
				c.finishAll(ctx, todo, err)
				break
			}
			spins = 0
		}
		if todo = c.skipPending(ctx, todo); len(todo) == 0 {
			break
		}
		todo = c.visitRound(ctx, todo)
	}
	for _, f := range fs {
		if f.load != nil {
			c.awaitLoad(ctx, f)
		}
	}
}

// visitRound visits the fetches todo once, acts on what it found, and
// returns those to visit again.
func (c *Cache[K, V]) visitRound(ctx context.Context, todo []*fetch[K, V]) []*fetch[K, V] {
	if !c.breaker.allow() {
		c.stats.shortCircuits.Add(uint64(len(todo)))
		c.redisDown(ctx, todo, errCircuitOpen)
		return nil
	}
	rc, err := c.redis()
	if err != nil {
		c.redisDown(ctx, todo, err)
		return nil
	}
	rctx, cancel := c.budget(ctx, len(todo))
	sent := c.now() // a copy's expiry counts from here (see expiryFrom)
	replies, gen := c.visit(rctx, rc, todo)
	cancel()
	var r round[K, V]
	for j, f := range todo {
		f.gen = gen
		c.sort(ctx, &r, f, replies[j], sent)
	}
	c.breaker.record(r.firstErr)
	return c.act(ctx, &r)
}

// sort acts at once on the reply v of f's visit sent at sent, or puts f
// in the part of r that acts on it with others.
func (c *Cache[K, V]) sort(ctx context.Context, r *round[K, V], f *fetch[K, V], v visited, sent time.Time) {
	switch classify(v, f.lease != nil, f.gen) {
	case changedMeanwhile:
		r.again = append(r.again, f)
	case unavailable:
		err := c.redisErr(ctx, v.err)
		if f.lease != nil {
			r.lost = append(r.lost, f) // the SET may have happened
		}
		if r.firstErr == nil {
			r.firstErr = err
		}
		if ctx.Err() != nil {
			c.finish(ctx, f, nil, ctx.Err())
			return
		}
		r.down, r.downErr = append(r.down, f), err
	case refusedLease:
		// A plain read may still answer; a missing key then loads.
		f.readOnly, f.refused = true, v.err
		r.again = append(r.again, f)
	case refusedRead:
		c.finish(ctx, f, nil, v.err)
	case leasedToUs:
		r.held = append(r.held, f)
	case missing:
		c.missing(ctx, r, f)
	case leased:
		lease := v.lease // plain mode: the lease key's
		if lease == nil {
			lease = v.raw
		}
		c.leased(ctx, r, f, lease, v.pttl)
	case notALease:
		c.stats.decodeErrors.Add(1)
		r.direct = append(r.direct, f)
	case newerFormat:
		// A newer aside wrote it: load, but leave its value alone.
		c.stats.decodeErrors.Add(1)
		if c.load == nil {
			_, err := c.decode(f.key, v.raw)
			c.finish(ctx, f, nil, err)
			return
		}
		r.direct = append(r.direct, f)
	case cleared:
		c.clearedEntry(ctx, r, f, v.raw)
	case unreadable:
		_, err := c.decode(f.key, v.raw)
		if err == nil || errors.Is(err, errLeaseHeld) {
			// Every lease aside takes expires: bytes shaped like one
			// without an expiry are someone else's.
			err = fmt.Errorf("%w: a lease without an expiry", ErrCorrupt)
		}
		c.unreadable(ctx, r, f, v.raw, err)
	case found:
		e, err := c.decode(f.key, v.raw)
		if err != nil {
			c.unreadable(ctx, r, f, v.raw, err)
			return
		}
		c.stats.redisHits.Add(1)
		if c.tracks() {
			e.expireAt = c.expiryFrom(sent, v.pttl)
			c.local.store(f.k, e, f.snap)
		}
		c.finish(ctx, f, e, nil)
	}
}

// missing handles a key that held nothing, and whose lease the visit did
// not take.
func (c *Cache[K, V]) missing(ctx context.Context, r *round[K, V], f *fetch[K, V]) {
	c.stats.misses.Add(1)
	if f.refused == nil {
		c.finish(ctx, f, nil, fmt.Errorf("%w (no loader)", ErrNotFound))
		return
	}
	// Redis refused the lease (out of memory, an ACL that forbids
	// writes): not an answer for the read, which goes as OnRedisDown says,
	// writing nothing.
	c.refusedLease(f.key, f.refused)
	if c.onDown == FailOpen {
		r.blind = append(r.blind, f)
		return
	}
	c.finish(ctx, f, nil, fmt.Errorf("%w: redis refused the lease: %w", ErrUnavailable, f.refused))
}

// leased handles a key whose lease a load holds: this process's own (the
// read waits for its result, or visits again once it released a lease it
// failed under), or another process's (the read waits for the key's push).
// Redis still holding this process's lease proves that no change of the
// key came since the load began — but a Clear, which leaves the key alone:
// a load whose lease was taken in an older generation than the visit read
// writes a cleared entry, which the read waits for and replaces.
func (c *Cache[K, V]) leased(ctx context.Context, r *round[K, V], f *fetch[K, V], lease []byte, pttl int64) {
	h := c.heldBy(f.key, lease)
	switch {
	case h == nil:
		f.pttl = pttl
		r.contended = append(r.contended, f)
	case h.failed(), h.gen < f.gen:
		// Its lease is being released, or its write will be cleared
		// already: this read loads anew once it ended, as a read after a
		// failed load does.
		if err := c.awaitWrites(ctx, f.key); err != nil {
			c.finish(ctx, f, nil, err)
			return
		}
		r.again = append(r.again, f)
	default:
		f.load = h
	}
}

// unreadable handles bytes nobody can read (err says why): reported and
// left, unless the application let reads replace them.
func (c *Cache[K, V]) unreadable(ctx context.Context, r *round[K, V], f *fetch[K, V], raw []byte, err error) {
	c.stats.decodeErrors.Add(1)
	switch {
	case c.load == nil || !c.replaceUnreadable:
		c.finish(ctx, f, nil, err)
	case f.readOnly:
		// It may not be deleted by this user: load, and leave it.
		r.direct = append(r.direct, f)
	default:
		f.raw = raw
		r.corrupt = append(r.corrupt, f)
	}
}

// clearedEntry handles an entry written before the namespace's last Clear
// (see clear.go): the key is missing for the read, and the entry is deleted
// if it is still there, so that the key's lease can be taken.
func (c *Cache[K, V]) clearedEntry(ctx context.Context, r *round[K, V], f *fetch[K, V], raw []byte) {
	c.stats.misses.Add(1)
	switch {
	case c.load == nil:
		c.finish(ctx, f, nil, fmt.Errorf("%w (no loader)", ErrNotFound))
	case f.readOnly:
		// It may not be deleted by this user: load, and leave it.
		r.direct = append(r.direct, f)
	default:
		f.raw = raw
		r.corrupt = append(r.corrupt, f)
	}
}

// act does what the round r gathered, and returns the fetches to visit
// again.
func (c *Cache[K, V]) act(ctx context.Context, r *round[K, V]) []*fetch[K, V] {
	if len(r.lost) > 0 {
		c.releaseLater(ctx, r.lost)
	}
	if len(r.held) > 0 {
		for j, h := range c.loadHeld(ctx, r.held) {
			r.held[j].handed, r.held[j].load = true, h
		}
	}
	if len(r.down) > 0 {
		c.redisDown(ctx, r.down, r.downErr)
	}
	if len(r.direct) > 0 {
		c.loadDirect(ctx, r.direct, directTracked)
	}
	if len(r.blind) > 0 {
		c.loadDirect(ctx, r.blind, directBlind)
	}
	next := r.again
	if len(r.corrupt) > 0 {
		again, refused := c.deleteUnreadable(ctx, r.corrupt)
		if len(refused) > 0 {
			c.loadDirect(ctx, refused, directTracked)
		}
		next = append(next, again...)
	}
	if len(r.contended) > 0 {
		// A read whose hard timeout ended stops waiting for the load.
		now, waiting := time.Now(), r.contended[:0]
		for _, f := range r.contended {
			if f.hard > 0 && !now.Before(f.loadBy) {
				c.timedOut(ctx, f)
				continue
			}
			waiting = append(waiting, f)
		}
		r.contended = waiting
	}
	if len(r.contended) > 0 {
		ready, timedOut, err := c.awaitLeases(ctx, r.contended)
		if err != nil {
			c.finishAll(ctx, r.contended, err)
		}
		if len(timedOut) > 0 {
			c.stats.leaseTimeouts.Add(uint64(len(timedOut)))
			c.logLeaseTimeouts(timedOut)
			c.loadDirect(ctx, timedOut, directTracked)
		}
		next = append(next, ready...)
	}
	return next
}

// awaitLoad answers f with the result of the load of this process it waits
// for, when it ends, or with ctx's error.
func (c *Cache[K, V]) awaitLoad(ctx context.Context, f *fetch[K, V]) {
	var o outcome[V]
	var expired <-chan time.Time
	if f.hard > 0 {
		t := time.NewTimer(time.Until(f.loadBy))
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-f.load.done:
		o = outcome[V]{f.load.e, f.load.err}
	case <-ctx.Done():
		o.err = ctx.Err()
	case <-expired:
		// The load goes on, and writes for everyone.
		select {
		case <-f.load.done:
			o = outcome[V]{f.load.e, f.load.err}
		default:
			c.stats.loadTimeouts.Add(1)
			o.err = errLoadTimeout(f.hard)
		}
	}
	if f.handed {
		// Its own load finished the flight.
		f.out, f.answer = o, true
		return
	}
	c.finish(ctx, f, o.e, o.err)
}

const (
	// maxSpins bounds the visits a read makes without waiting.
	maxSpins = 64
	// leasePoll is how often a waiter visits a leased key that Redis will
	// not invalidate for it (tracking off).
	leasePoll = 10 * time.Millisecond
)

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
