package cache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/rueidis"

	"github.com/aside-go/aside/internal/envelope"
)

// RefreshMode is what Get does with a value past its soft TTL (the policy's
// TTLs.Soft), while it is still within its hard TTL.
type RefreshMode int

const (
	// RefreshBackground returns the value at once and refreshes it on a
	// background goroutine, in one process of the fleet at a time. When the
	// refresh fails, the value keeps being served until its hard expiry
	// (stale-if-error), counted in [Stats].StaleServed.
	RefreshBackground RefreshMode = iota
	// RefreshSync refreshes before returning: the Get waits for the load
	// (at most [Options].SoftTimeout, then it returns the old value, stale),
	// and a failing loader fails the Get instead of serving the old value,
	// unless [Options].FailSafe is set.
	RefreshSync
)

// Refreshing ahead of expiry.
//
// A value past its soft expiry is refreshed by one process at a time: the
// refresher first claims the value with claimScript, which rewrites the
// entry with its soft expiry moved LeaseTTL ahead (keeping its TTL), but only
// if the entry still carries the soft expiry the refresher saw. Other
// processes then see a value that is not yet due and do not refresh it too;
// if the refresher dies, the value comes due again after LeaseTTL. The
// refresher loads after its claim and writes with writeScript in place of the
// claimed bytes, so — as for leases — an invalidation or a write during the
// load (which replaces or deletes the claimed bytes) makes the refresh
// discard its value instead of writing it.
//
// The claim itself changes the key, so Redis invalidates every copy of it:
// each process re-reads the value once per refresh.

// claimScript is the envelope's claim: see envelope.ClaimScript.
var claimScript = rueidis.NewLuaScript(envelope.ClaimScript)

func be64(ms int64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(ms))
	return string(b[:])
}

// errNotClaimed means another process is refreshing the value, or it changed,
// or Redis could not be asked: the value in hand is served.
var errNotClaimed = errors.New("value not claimed for refresh")

// refresh claims the value of e (its soft expiry as e saw it), loads it and
// writes it under the claim. It returns the loaded value (e's, when the
// loader said it is not modified), or errNotClaimed when it could not
// claim. AwaitWrites waits for it.
func (c *Cache[K, V]) refresh(ctx context.Context, k K, e *entry[V]) (V, error) {
	var zero V
	key := e.key
	defer c.refreshWrites.begin(key)()
	softMs := e.softAt / int64(time.Millisecond)
	now := c.now()
	next := now.Add(c.leaseTTL).UnixMilli()
	rc, err := c.redis()
	if err != nil {
		return zero, fmt.Errorf("%w: %w", errNotClaimed, err)
	}
	// A load of this process may still be writing the value due.
	if err := c.awaitWrites(ctx, key); err != nil {
		return zero, fmt.Errorf("%w: %w", errNotClaimed, err)
	}
	cctx, cancel := c.budget(ctx, 1)
	claimed, err := claimScript.Exec(cctx, rc, []string{key}, []string{be64(softMs), be64(next)}).AsBytes()
	cancel()
	switch {
	case rueidis.IsRedisNil(err):
		return zero, errNotClaimed
	case err != nil:
		// Redis unavailable, or refusing the claim (a user who may not
		// write): the value in hand is within its hard TTL, as when
		// another process holds the claim.
		return zero, fmt.Errorf("%w: %w", errNotClaimed, c.redisErr(ctx, err))
	}
	c.client.wrote(key)
	c.stats.refreshes.Add(1)
	if c.failSafeMaxAge > 0 && !e.stale {
		// e's soft expiry is the value's own, not a claim's: the age
		// of the value counts from it.
		c.capAge(ctx, rc, key, claimed, e.softAt, now)
	}
	// Written with the generation of the value claimed: a Clear since
	// makes the refreshed value cleared too.
	l := c.loadKeys(c.withPrevious(ctx, key, e.v), []keyRef[K]{{k, key}}, true, claimedGen(claimed))[0]
	switch {
	case l.notModified:
		c.renew(ctx, rc, key, claimed, e.v)
		return e.v, nil
	case l.err != nil:
		// Keep serving the claimed value until its hard expiry; no
		// process refreshes it again before the throttle ends.
		c.stats.refreshErrors.Add(1)
		if c.tooOld(e, now.UnixNano()) {
			c.dropOld(ctx, rc, key, claimed)
		} else {
			c.throttle(ctx, rc, key, next)
		}
		return zero, l.err
	}
	if !l.e.notFound && l.data == nil {
		return l.e.v, nil // could not encode: leave the claimed value
	}
	// A record that is gone takes the value with it: its not-found marker
	// or nothing replaces the claimed value.
	wctx, cancel := c.detached(ctx, c.budgetFor(1))
	defer cancel()
	if l.data != nil && len(l.tags) > 0 {
		// Indexed before it is written, as a load's value is (see
		// heldRun.indexTags); not written if that failed.
		for _, res := range rc.DoMulti(wctx, c.tagCmds(rc, key, l.ttl, l.tags)...) {
			if err := res.Error(); err != nil {
				c.stats.writeErrors.Add(1)
				c.logEvent(slog.LevelWarn, "cache: a refreshed value's tags could not be indexed: returned, not written to Redis", err, []string{key})
				c.client.wrote(key)
				return l.e.v, nil
			}
		}
	}
	w := c.casWrites(wctx, rc, []rueidis.LuaExec{writeExec(newExecArena(1, writeExecStrings), key, claimed, l.data, l.ttl)})[0]
	wrote, err := w.wrote, w.err
	c.client.wrote(key)
	switch {
	case err != nil:
		c.stats.writeErrors.Add(1)
		c.logEvent(slog.LevelWarn, "cache: write-back of a refreshed value failed", err, []string{key})
	case !wrote && l.data != nil:
		c.stats.discardedFills.Add(1)
	}
	if l.e.notFound {
		return zero, ErrNotFound
	}
	return l.e.v, nil
}

// claimedGen is the generation of the claimed entry raw.
func claimedGen(raw []byte) uint64 {
	env, err := envelope.Decode(raw)
	if err != nil {
		return 0
	}
	return env.Gen
}

// refreshInBackground starts a refresh of e unless one of this process is
// running for it, or the refresh goroutines are all busy (a later hit will
// try again).
func (c *Cache[K, V]) refreshInBackground(ctx context.Context, k K, e *entry[V]) {
	if !e.refreshing.CompareAndSwap(false, true) {
		return
	}
	select {
	case c.refreshSlots <- struct{}{}:
	default:
		e.refreshing.Store(false)
		return
	}
	// Recorded for AwaitWrites before it starts: a caller that got the
	// value at hand may wait for the refresh at once.
	end := c.refreshWrites.begin(e.key)
	started := c.spawn(func() {
		defer func() { <-c.refreshSlots }()
		defer end()
		// The caller's values, not its cancellation: the caller has its
		// value already. Bounded by its own timeout, and by the client's
		// Close.
		rctx, cancel := c.detached(ctx, c.refreshTimeout)
		defer cancel()
		if _, err := c.refresh(rctx, k, e); err != nil {
			if !errors.Is(err, errNotClaimed) && !errors.Is(err, ErrNotFound) {
				c.logEvent(slog.LevelWarn, "cache: background refresh failed: the value in hand is served until its hard TTL", err, []string{e.key})
			}
			// Let a later hit try again (the claim moved the soft expiry
			// in Redis, which a re-read picks up).
			e.refreshing.Store(false)
		}
	})
	if !started {
		end()
		<-c.refreshSlots
		e.refreshing.Store(false)
	}
}
