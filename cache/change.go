package cache

import "strings"

// Per-key state, and the one event that clears it.
//
// A Cache keeps, for a Redis key, in this process:
//
//	state          field       made by                        on a change of the key
//	copy           local       a read, a load, a write        dropped, and the key's counter moves, so that a
//	                                                          read or load under way does not store what it
//	                                                          read before (see local.go)
//	flight         flights     fetch: the reads sharing one   forgotten: reads from now on start their own
//	                           visit and load
//	refresh        refreshes   whenDue                        forgotten
//	wait           waits       awaitLeases: a read waiting    woken: it visits again
//	                           on another's lease
//	outage copy    stash       a flush, with OutageStaleness  dropped
//	held load      held        loadHeld: a load under a       left to Redis: its write replaces only its own
//	                           lease this process took        lease, which every change of the key deletes
//	fallback load  fallbacks   a load while Redis is          left to end: its flight was detached when it
//	                           unavailable, or the key's      began, so no read joins it after a change it
//	                           invalidation is pending        cannot hear of (see fallback.go)
//
// and its Client keeps, for a Redis key:
//
//	expected echo  echoes      a write that keeps its copy    taken by the next push (see Client.expectEcho)
//	pending        pending     an invalidation whose outcome  kept until Redis confirms one sent again
//	invalidation               is unknown                     (see pending.go)
//
// Every way a key changes for this process goes through one of three
// functions of Cache: changed (one key: a push, a write of this process
// through another Cache, Delete, Invalidate, tag and related invalidation,
// an expiry change, a failed invalidation), changedWhere (every key a
// pattern or prefix invalidation could have removed, whether or not its
// SCAN met them: a key being loaded may be absent) and changedAll (a flush,
// a dropped connection); a Clear of the namespace goes through cleared
// (clear.go), which is changedAll without the outage stash. With
// Options.StaleWhileReloading, a change Redis pushed keeps the copy, marked
// stale with a deadline, instead of dropping it (reloading.go); every other
// state of the key goes as usual. The Client fans each out to every Cache of the
// key's namespace (Client.changed, Client.changedWhere). Two events clear
// less, and say why: the echo of this process's own write (echoed: the copy
// the write stored stays) and the write of this cache that stores its own
// copy (forget after storeWritten, which drops the other copies itself).

// changed clears the state of key in this cache: the key changed in Redis,
// or may have. pushed says Redis pushed it (counted in Stats.Invalidations).
func (c *Cache[K, V]) changed(key string, pushed bool) {
	if pushed {
		c.stats.invalidations.Add(1)
	}
	if pushed && c.staleWhileReloading > 0 {
		// Another process's change: the copy may be served while it
		// reloads, for a bounded time (see reloading.go).
		c.local.invalidateKeepStale(key, c.nanos()+int64(c.staleWhileReloading))
	} else {
		c.local.invalidate(key)
	}
	c.forget(key)
}

// forget clears the state of key but its copies: what changed doesn't
// concern them (an echo), or the caller replaced them (a write of this
// cache). Reads from now on do not join a flight or refresh that began
// before, and the reads waiting for the key visit again.
func (c *Cache[K, V]) forget(key string) {
	c.flights.Forget(key)
	c.refreshes.Forget(key)
	c.unstash(key)
	c.waits.wake(key)
}

// echoed handles the push that answers this process's own write of key
// (see Client.expectEcho), or of its lease key (plain mode): the copy the
// write stored stays.
func (c *Cache[K, V]) echoed(key string) { c.forget(key) }

// changedWhere is changed for every key of the cache that match reports
// true of (a pattern or prefix invalidation): copies, flights, refreshes
// and stashed copies of those keys go, every counter moves (cheaper than
// finding the keys of the reads under way, which hold no state of their
// own until they store), and every wait is woken.
func (c *Cache[K, V]) changedWhere(match func(key string) bool) {
	c.local.invalidateWhere(match)
	c.flights.ForgetFunc(match)
	c.refreshes.ForgetFunc(match)
	c.unstashWhere(match)
	c.waits.wakeAll()
}

// changedAll is called for a flush (FLUSHDB, FLUSHALL) or a connection
// that dropped: Redis forgot what it tracked, so no copy can be trusted and
// no flight may be joined any more.
func (c *Cache[K, V]) changedAll() {
	c.gen.lost() // a dropped connection forgot what it tracked
	if c.outage > 0 && c.local.keeps() {
		c.stashCopies()
	}
	c.local.invalidateAll()
	c.flights.ForgetAll()
	c.refreshes.ForgetAll()
	c.waits.wakeAll()
}

// leaseChanged handles a push of the lease key of valueKey (plain mode): a
// lease was taken, released, expired or deleted — by an invalidation of the
// key, whose value key may have been missing and pushed nothing. The key
// changed: a load of this process under that lease no longer holds it, and
// reads from now on must not join it.
func (c *Cache[K, V]) leaseChanged(valueKey string) { c.changed(valueKey, false) }

// changed is the event of key for every cache of its namespace on the
// client but except (nil: all of them).
func (c *Client) changed(key string, except invalidator) {
	ns, _, ok := strings.Cut(key, ":")
	if !ok {
		return
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, inv := range c.subs[ns] {
		if inv != except {
			inv.changed(key, false)
		}
	}
}

// changedWhere is changedWhere for every cache of namespace ns (without
// its ':') on the client.
func (c *Client) changedWhere(ns string, match func(key string) bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, inv := range c.subs[ns] {
		inv.changedWhere(match)
	}
}

// wrote is called after every write of key by this process, through any
// cache (whether Redis acknowledged it or not: it may have applied it). Redis
// pushes the write's invalidation to this process too, but after the reply
// and maybe on another connection: every cache of key's namespace on this
// client handles the change now, which gives read-your-writes across the
// caches of the client.
func (c *Client) wrote(key string) { c.changed(key, nil) }
