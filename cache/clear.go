package cache

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"

	"github.com/redis/rueidis"

	"github.com/aside-go/aside/internal/keyname"
)

// Clearing a cache in O(1).
//
// Each namespace has a generation, the integer in its Redis key
// "<Namespace>#clear" (0 while the key does not exist). Clear increments it;
// every entry is written with the generation its writer knew (envelope
// version 2, or version 1 for generation 0), and an entry of a generation
// below the namespace's current one is cleared: a read treats it as
// missing, deletes it if it is still there, and loads the key.
//
//   - Every visit reads the generation in the same round trip as the keys,
//     so a read that reaches Redis after Clear returned compares what it
//     finds with the new generation (G2).
//   - A load writes its value with the generation its visit read when it
//     took the lease: a load that began before a Clear writes an entry
//     that is cleared already (G1), whenever it lands.
//   - A refresh writes with the generation of the value it claimed, so a
//     refresh under way during a Clear writes a cleared entry too.
//   - Reading the generation tracks its key for the connection (tracking is
//     OPTOUT), so a Clear by any process pushes its key to every process
//     that has read it since its last push: each then drops every copy and
//     forgets every flight of the namespace (cleared), as for a flush (G4).
//     Set keeps its copy only while this cache has read the generation
//     since the last push or dropped connection (genTracked); otherwise it
//     reads the generation in its own round trip first.
//   - A Set writes with the generation this process knows: a Set that
//     another process makes before the push of a Clear reaches it (the push
//     delay) is cleared by it, as if it had come just before.
//
// Plain mode stores no envelope to carry a generation: there Clear is
// InvalidatePrefix of every key, a SCAN.
type generation struct {
	// key is the generation's Redis key.
	key string
	// known is the highest generation this cache has read.
	known atomic.Uint64
	// clears counts the Clears this cache handled (cleared): a load whose
	// visit came before one keeps no copy of what it writes.
	clears atomic.Uint64
	// epoch moves with every push of the generation's key and every
	// dropped connection: Redis then no longer tracks the key for the
	// connection. tracked is the epoch in which a read of it last
	// succeeded: the key is tracked while the two are equal.
	epoch, tracked atomic.Uint64
}

func newGeneration(ns string) *generation {
	g := &generation{key: keyname.Clear(ns)}
	g.epoch.Store(1) // tracked starts at 0: not tracked
	return g
}

// isTracked reports whether a Clear of another process would push to this
// one now.
func (g *generation) isTracked() bool { return g.tracked.Load() == g.epoch.Load() }

// lost records that Redis no longer tracks the key for some connection.
func (g *generation) lost() { g.epoch.Add(1) }

// read builds the GET of the generation, for a round trip's pipeline, and
// the epoch it is sent in.
func (g *generation) read(rc rueidis.Client) (rueidis.Completed, uint64) {
	return rc.B().Get().Key(g.key).Build(), g.epoch.Load()
}

// Clear removes every entry of the cache, in every process, in O(1): one
// command, whatever the number of keys. Entries written before it are read
// as missing from the moment it returns (every process's next visit of
// Redis compares them with the new generation; see the package
// documentation), and every process drops its copies when Redis pushes the
// change, as for a key's invalidation. Loads under way when it is called
// write nothing that survives it. The cleared entries stay in Redis until
// they expire or are replaced: their memory is not given back at once (use
// InvalidatePrefix("") for that).
//
// In plain mode, whose values carry nothing to compare, Clear is
// InvalidatePrefix("") (a SCAN of the namespace) and returns its count;
// otherwise it returns 0.
//
// A Clear that fails with [ErrUnavailable] may have been applied; this
// process drops its copies either way. Retry it until it succeeds.
//
// Limits: the generation lives in one Redis key. If Redis loses it (a flush
// of its node alone on a cluster, a restart without persistence, eviction
// under an allkeys policy), entries cleared before become readable again,
// and a Set under way across a FLUSHALL may write a generation above the
// reset one, which later Clears do not clear until they pass it. A process
// that cannot read the key (an ACL without "<Namespace>#clear", or its
// cluster node down) compares entries with the generation it knows, and
// may read entries cleared since.
//
// Exists, TTL, Expire, ExpireAt, Persist and Delete see a cleared entry as
// a missing key (Delete removes it without counting it), as they see a
// not-found marker.
func (c *Cache[K, V]) Clear(ctx context.Context) (int64, error) {
	if c.plain {
		return c.InvalidatePrefix(ctx, "")
	}
	var end func(Result)
	if c.rec != nil {
		ctx, end = c.start(ctx, OpClear, 0, 0)
	}
	err := c.clear(ctx)
	if end != nil {
		end(Result{Err: err})
	}
	return 0, err
}

func (c *Cache[K, V]) clear(ctx context.Context) error {
	rc, err := c.redis()
	if err != nil {
		return fmt.Errorf("cache: clear: %w", err)
	}
	rctx, cancel := c.budget(ctx, 1)
	n, err := rc.Do(rctx, rc.B().Incr().Key(c.gen.key).Build()).AsInt64()
	cancel()
	if err != nil {
		// It may have been applied: nothing here may be served as if not.
		c.client.clearedAll(c.ns[:len(c.ns)-1], 0)
		return fmt.Errorf("cache: clear: %w", c.redisErr(ctx, err))
	}
	c.client.clearedAll(c.ns[:len(c.ns)-1], uint64(n))
	return nil
}

// cleared handles a Clear of the namespace of generation gen (0: unknown,
// a push of its key): every copy, flight, refresh, stashed copy and wait
// of the cache goes, as for a flush.
func (c *Cache[K, V]) cleared(gen uint64) {
	c.gen.clears.Add(1)
	c.gen.lost()
	c.raiseGen(gen)
	c.local.invalidateAll()
	c.flights.ForgetAll()
	c.refreshes.ForgetAll()
	c.unstashAll()
	c.waits.wakeAll()
}

// raiseGen records gen as known, and reports whether it is newer than what
// was.
func (c *Cache[K, V]) raiseGen(gen uint64) bool {
	for {
		old := c.gen.known.Load()
		if gen <= old {
			return false
		}
		if c.gen.known.CompareAndSwap(old, gen) {
			return true
		}
	}
}

// learnGen reads the reply res of the generation's GET sent in epoch, and
// returns the generation a round's entries are compared with: the one
// read, or the highest known when Redis did not answer it (a cluster node
// that holds the generation's key but not the keys read). A generation
// newer than known means a Clear whose push has not come yet: it is handled
// now.
func (c *Cache[K, V]) learnGen(res rueidis.RedisResult, epoch uint64) uint64 {
	s, err := res.ToString()
	switch {
	case rueidis.IsRedisNil(err):
		s, err = "0", nil
	case err != nil:
		return c.gen.known.Load()
	}
	gen, perr := strconv.ParseUint(s, 10, 64)
	if perr != nil {
		// Not a generation of ours: compare with what we know.
		return c.gen.known.Load()
	}
	switch old := c.gen.known.Load(); {
	case gen > old:
		c.client.clearedAll(c.ns[:len(c.ns)-1], gen)
	case gen < old:
		// The key went back (a flush, or a failover that lost writes):
		// Set writes with the generation Redis holds.
		c.gen.known.CompareAndSwap(old, gen)
	}
	// Tracked from now on, unless a push or a dropped connection came
	// since the GET was sent.
	if c.gen.epoch.Load() == epoch {
		c.gen.tracked.Store(epoch)
	}
	return gen
}

// trackGen reads the namespace's generation, so that Redis tracks it for
// this process, and reports whether it does now.
func (c *Cache[K, V]) trackGen(ctx context.Context, rc rueidis.Client) bool {
	cmd, epoch := c.gen.read(rc)
	rctx, cancel := c.budget(ctx, 1)
	defer cancel()
	c.learnGen(rc.Do(rctx, cmd), epoch)
	return c.gen.isTracked()
}

// clearedAll is cleared for every cache of namespace ns (without its ':')
// on the client: a Clear of generation gen (0 when unknown).
func (c *Client) clearedAll(ns string, gen uint64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, inv := range c.subs[ns] {
		inv.cleared(gen)
	}
}
