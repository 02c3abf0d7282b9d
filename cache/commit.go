package cache

import (
	"context"
	"log/slog"
	"time"

	"github.com/redis/rueidis"
)

// AwaitWrites waits until the writes to Redis of this cache's loads and
// refreshes of ks that are still running have ended, or ctx ends: a Get
// returns its loaded value as soon as the loader returns, and writes it
// behind its caller (a refresh that a timeout left, or a background one,
// goes on behind it too). A test that then asserts what Redis holds (or
// what another process reads from it) calls AwaitWrites first. Without keys
// it returns at once.
func (c *Cache[K, V]) AwaitWrites(ctx context.Context, ks ...K) error {
	keys := make([]string, len(ks))
	for i, k := range ks {
		keys[i] = c.Key(k)
	}
	if err := c.refreshWrites.await(ctx, keys...); err != nil {
		return err
	}
	return c.awaitWritesFor(ctx, 0, keys...)
}

// awaitWrites waits until the writes of this process's loads of the Redis
// keys, if any are running (the latest load of each key, and those it
// replaced), have ended — or for as long as the time budget,
// or until ctx ends: an operation that reads Redis's state of a key after a
// Get returned its loaded value sees that value, not the lease it replaces,
// unless Redis is too slow to take the write.
func (c *Cache[K, V]) awaitWrites(ctx context.Context, keys ...string) error {
	return c.awaitWritesFor(ctx, c.budgetFor(len(keys)), keys...)
}

// awaitWritesFor is awaitWrites bounded by d instead of the budget; 0: only
// by ctx.
func (c *Cache[K, V]) awaitWritesFor(ctx context.Context, d time.Duration, keys ...string) error {
	var t *time.Timer
	var expired <-chan time.Time
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for _, key := range keys {
		held, ok := c.held.load(key)
		if !ok {
			continue
		}
		if t == nil && d > 0 {
			t = time.NewTimer(d)
			expired = t.C
		}
		for h := held; h != nil; h = h.prev.Load() {
			select {
			case <-h.written:
			case <-expired:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// commit writes each loaded result in place of its key's lease, or deletes
// the lease when there is nothing to write, in one pipeline, each only if
// the key still holds the lease: an invalidation during the load deleted
// it, and the value, read before that invalidation, must not be cached. A
// value written is kept in process memory (see Client.expectEcho for why
// Redis' push of this very write does not drop it).
//
// Writes that find Redis unavailable (a connection dropped, or Redis said it
// cannot serve now) are sent again until wctx ends: left alone, their leases
// would make every process wait LeaseTTL for a value that was loaded. Sending
// one again is safe: it still writes only in place of the lease.
func (r *heldRun[K, V]) commit(wctx context.Context) {
	todo := make([]int, len(r.refs))
	for j := range todo {
		todo[j] = j
	}
	retry := backoff{next: writeRetryMin, max: writeRetryMax}
	var err error
	for {
		todo, err = r.commitOnce(wctx, todo)
		if len(todo) == 0 || !retry.wait(wctx) {
			break
		}
	}
	if len(todo) == 0 {
		return
	}
	c := r.c
	failed := make([]string, len(todo))
	for t, j := range todo {
		c.stats.writeErrors.Add(1)
		c.client.wrote(r.refs[j].key)
		failed[t] = r.refs[j].key
	}
	if err == nil {
		err = wctx.Err()
	}
	c.logEvent(slog.LevelWarn, "cache: write-back of loaded values failed: Redis unavailable until the write's deadline", err, failed)
}

// commitOnce sends the writes of commit at positions todo and returns those
// that found Redis unavailable, to be sent again.
func (r *heldRun[K, V]) commitOnce(wctx context.Context, todo []int) (again []int, lastErr error) {
	c := r.c
	r.indexTags(wctx, todo)
	execs := make([]rueidis.LuaExec, len(todo))
	arena := newExecArena(len(todo), writeExecStrings)
	snaps := make([]uint64, len(todo))
	keep := make([]bool, len(todo))
	for t, j := range todo {
		key, l := r.refs[j].key, r.res[j]
		if l.data != nil && c.client.pending.has(key) {
			// An invalidation of the key since the load began was not
			// confirmed: Redis may still hold the lease, and the value,
			// read before the invalidation, must not be written. The
			// lease is released instead.
			l.data = nil
			r.res[j] = l
			c.stats.discardedFills.Add(1)
		}
		// A Clear since the visit: what is written is cleared already,
		// and no copy of it may be kept (the snapshot below comes after
		// the Clear moved the counters).
		if c.local.keeps() && c.tracks() && l.data != nil && c.gen.clears.Load() == r.clears {
			keep[t] = true
			c.expectEchoes(key)
			snaps[t] = c.local.snapshot(key)
		}
		execs[t] = c.underLease(arena, key, r.hs[j].lease, l.data, l.ttl)
	}
	var results []writeResult
	sent := c.now() // a copy's expiry counts from here (see expiryFrom)
	rc, err := c.redis()
	if err == nil {
		results = c.writeUnder(wctx, rc, execs)
	}
	var own ownMoves // of the counters of the keys kept, when there are several
	if len(todo) > 1 {
		own = make(ownMoves, len(todo))
	}
	for t, j := range todo {
		ref, l := r.refs[j], r.res[j]
		var wrote bool
		var pttl int64
		if results != nil {
			wrote, pttl, err = results[t].wrote, results[t].pttl, results[t].err
		}
		if err != nil && wctx.Err() == nil && retryable(err) {
			if keep[t] {
				c.cancelEchoes(ref.key)
			}
			// Not in Redis (yet): no copy either, the one keepLoaded kept
			// included, until a retry writes it.
			c.client.wrote(ref.key)
			again, lastErr = append(again, j), err
			continue
		}
		switch {
		case err != nil:
			c.stats.writeErrors.Add(1)
			c.logEvent(slog.LevelWarn, "cache: write-back of a loaded value failed", err, []string{ref.key})
		case !wrote && l.data != nil:
			c.stats.discardedFills.Add(1)
		}
		if !keep[t] {
			c.client.wrote(ref.key)
			continue
		}
		if err != nil || !wrote || results[t].untracked {
			c.cancelEchoes(ref.key)
			c.client.wrote(ref.key)
			continue
		}
		c.client.changed(ref.key, c)
		// The entry the callers were given stays, or a copy of it: they
		// may be reading it. The key expires no earlier than the early
		// copy does: the write set it for the whole milliseconds of l.ttl
		// after keepLoaded counted them from its now. The expiry read from
		// PTTL, whole milliseconds too, may fall a little short of that,
		// and would cost a new copy for nothing.
		c.local.keepWritten(ref.k, l.e, max(c.expiryFrom(sent, pttl), l.e.expireAt), snaps[t], own)
		c.forget(ref.key)
	}
	return again, lastErr
}

// indexTags adds the keys at positions todo whose results carry tags (set
// by the loader with Adapt) to their tags' indexes, before their values are
// written: an InvalidateTag that returns after a value is in Redis finds its
// key. A key whose indexing failed is not written (its lease is released).
func (r *heldRun[K, V]) indexTags(wctx context.Context, todo []int) {
	c := r.c
	var cmds rueidis.Commands
	var tagged []int // positions, one per key indexed
	var per []int    // commands per key indexed
	rc, err := c.redis()
	for _, j := range todo {
		l := r.res[j]
		if l.data == nil || len(l.tags) == 0 {
			continue
		}
		if err != nil {
			break
		}
		tc := c.tagCmds(rc, r.refs[j].key, l.ttl, l.tags)
		cmds = append(cmds, tc...)
		tagged, per = append(tagged, j), append(per, len(tc))
	}
	if len(cmds) == 0 && err == nil {
		return
	}
	var results []rueidis.RedisResult
	if err == nil {
		rctx, cancel := context.WithTimeout(wctx, c.budgetFor(len(cmds)))
		results = rc.DoMulti(rctx, cmds...)
		cancel()
	}
	for t, j := range tagged {
		failed := err
		for _, res := range results[:per[t]] {
			if failed == nil {
				failed = res.Error()
			}
		}
		results = results[per[t]:]
		if failed != nil {
			c.stats.writeErrors.Add(1)
			c.logEvent(slog.LevelWarn, "cache: a loaded value's tags could not be indexed: returned, not written to Redis", failed, []string{r.refs[j].key})
			r.res[j].data = nil
		}
	}
}

// expectEchoes announces the echoes of a load's write of key that keeps its
// copy: the key's, and in plain mode its lease key's (the visit that took
// the lease tracks it, so the write's deletion of it is pushed back).
func (c *Cache[K, V]) expectEchoes(key string) {
	c.client.expectEcho(key)
	if c.plain {
		c.client.expectEcho(leaseKey(c.ns, key))
	}
}

// cancelEchoes withdraws expectEchoes for a write that did not happen.
func (c *Cache[K, V]) cancelEchoes(key string) {
	c.client.cancelEcho(key)
	if c.plain {
		c.client.cancelEcho(leaseKey(c.ns, key))
	}
}

// releaseLater deletes, in the background, the leases (f.lease) of the
// fetches fs whose visit may or may not have reached Redis (its reply was
// lost: the caller's context ended, or the connection broke). Left alone,
// such a lease would make every process wait LeaseTTL for a load that never
// comes; so releases that find Redis unavailable are sent again, as commit's
// writes are, until the lease would have expired anyway.
func (c *Cache[K, V]) releaseLater(ctx context.Context, fs []*fetch[K, V]) {
	todo := make([]heldLease, len(fs))
	for j, f := range fs {
		todo[j] = heldLease{f.key, f.lease}
	}
	release := func() {
		rctx, cancel := c.detached(ctx, c.leaseTTL)
		defer cancel()
		retry := backoff{next: writeRetryMin, max: writeRetryMax}
		for {
			todo = c.releaseOnce(rctx, todo)
			if len(todo) == 0 || !retry.wait(rctx) {
				return
			}
		}
	}
	if !c.spawn(release) {
		release()
	}
}

// heldLease is a key and a lease of it this process may hold.
type heldLease struct {
	key   string
	lease []byte
}

// releaseOnce sends the releases of releaseLater, each within the time
// budget, and returns those that found Redis unavailable.
func (c *Cache[K, V]) releaseOnce(ctx context.Context, todo []heldLease) (again []heldLease) {
	rc, err := c.redis()
	if err != nil {
		return todo
	}
	execs := make([]rueidis.LuaExec, len(todo))
	arena := newExecArena(len(todo), writeExecStrings)
	for j, hl := range todo {
		execs[j] = c.underLease(arena, hl.key, hl.lease, nil, 0)
	}
	bctx, cancel := context.WithTimeout(ctx, c.budgetFor(len(execs)))
	defer cancel()
	for j, res := range c.writeUnder(bctx, rc, execs) {
		deleted, err := res.wrote, res.err
		switch {
		case err != nil && ctx.Err() == nil && (retryable(err) || bctx.Err() != nil):
			again = append(again, todo[j])
		case err == nil && deleted:
			// Only a lease deleted is a write; a release that did not
			// happen changed nothing (and the copies a stash keeps for
			// an outage must not go for it).
			c.client.wrote(todo[j].key)
		}
	}
	return again
}

// deleteUnreadable deletes the keys of fs that held bytes nobody can read
// (f.raw), if they still hold them. It returns the fetches to visit again,
// and those Redis would not delete them from (the caller loads them without
// writing).
func (c *Cache[K, V]) deleteUnreadable(ctx context.Context, fs []*fetch[K, V]) (again, refused []*fetch[K, V]) {
	rc, err := c.redis()
	if err != nil {
		return fs, nil // the next visit meets the same error
	}
	execs := make([]rueidis.LuaExec, len(fs))
	arena := newExecArena(len(fs), writeExecStrings)
	for j, f := range fs {
		execs[j] = writeExec(arena, f.key, f.raw, nil, 0)
	}
	rctx, cancel := c.budget(ctx, len(execs))
	defer cancel()
	for j, res := range c.casWrites(rctx, rc, execs) {
		f := fs[j]
		c.client.wrote(f.key)
		if _, ok := rueidis.IsRedisErr(res.err); ok {
			refused = append(refused, f)
			continue
		}
		again = append(again, f)
	}
	return again, refused
}
