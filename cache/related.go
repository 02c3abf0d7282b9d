package cache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// Target is what [Client.Invalidate] removes of one cache: some of its keys
// ([Keys]) or every key carrying some of its tags ([Tags]). Build it with
// those functions; the zero Target removes nothing.
type Target struct {
	c    targetCache
	keys []string // Redis keys
	tags []string
	err  error
}

// targetCache is what Client.Invalidate needs of a Cache, whatever its types.
type targetCache interface {
	owner() *Client
	namespace() string // with its ':'
	tagKey(tag string) string
	timeout() time.Duration
	// leaseOf returns the lease key of key in plain mode; false otherwise
	// (the lease is in the key itself).
	leaseOf(key string) (string, bool)
	// failedInvalidation counts an invalidation of the cache's keys that
	// Redis did not confirm (Stats.FailedInvalidations).
	failedInvalidation()
}

func (c *Cache[K, V]) owner() *Client         { return c.client }
func (c *Cache[K, V]) namespace() string      { return c.ns }
func (c *Cache[K, V]) timeout() time.Duration { return c.redisTimeout }

func (c *Cache[K, V]) failedInvalidation() { c.stats.failedInvalidations.Add(1) }

func (c *Cache[K, V]) leaseOf(key string) (string, bool) {
	if !c.plain {
		return "", false
	}
	return leaseKey(c.ns, key), true
}

// Keys names keys of cache c for [Client.Invalidate].
func Keys[K comparable, V any](c *Cache[K, V], ks ...K) Target {
	if c == nil {
		return Target{err: fmt.Errorf("cache: invalidate: %w: Keys of a nil *Cache", ErrInvalidOptions)}
	}
	keys := make([]string, len(ks))
	for i, k := range ks {
		keys[i] = c.Key(k)
	}
	return Target{c: c, keys: keys}
}

// Tags names the tags of cache c (see [WithTags]) for [Client.Invalidate]:
// every key of c carrying any of them is removed, with the tags' indexes. A
// tag is a tag of one cache; to reach the keys that caches of several
// namespaces tagged alike, name each cache:
//
//	cache.Tags(profiles, "user:1"), cache.Tags(dashboards, "user:1")
func Tags[K comparable, V any](c *Cache[K, V], tags ...string) Target {
	if c == nil {
		return Target{err: fmt.Errorf("cache: invalidate: %w: Tags of a nil *Cache", ErrInvalidOptions)}
	}
	for _, tag := range tags {
		if tag == "" {
			return Target{err: fmt.Errorf("cache: invalidate: %w: Tags(%s): an empty tag", ErrInvalidOptions, strings.TrimSuffix(c.ns, ":"))}
		}
	}
	return Target{c: c, tags: tags}
}

// Invalidate removes, in one call, related keys of several caches of the
// client and the keys carrying tags of any of them, and returns how many
// keys Redis removed (markers included, as every invalidation counts; see
// [Cache.Delete] for a count of values):
//
//	n, err := client.Invalidate(ctx,
//		cache.Keys(profiles, id), cache.Keys(summaries, id),
//		cache.Tags(dashboards, "user:"+strconv.FormatInt(id, 10)))
//
// The keys and the tag indexes go in one pipeline of single-key commands
// (DEL of each key, SRANDMEMBER of each index), so that keys of different
// cluster slots never form a cross-slot command; the keys the indexes held
// are removed in a second pipeline (DEL of each, and SREM of them from their
// index), and a tag indexing more than 256 keys takes one more round per
// 256. A member leaves its index only in the round that deletes its key, so
// an Invalidate whose replies were lost can be made again and finds it. Every other process caching one of
// the keys drops its copy when Redis pushes the invalidation; in this
// process, once Invalidate returns, no Get through any cache of the client
// returns what the keys held before (read-your-writes, as for
// [Cache.Invalidate]), even when Invalidate returns an error: a key whose
// deletion Redis did not confirm (an error, a lost reply, the budget run
// out) is pending — its reads load without reading or writing Redis, and
// the client deletes it again, in order and backing off, until Redis
// confirms (Stats.FailedInvalidations, Stats.PendingInvalidations; at
// most 65536 keys at once). Pending keys live in the process: if it exits
// first, Redis keeps what they held until their expiry. A tag whose index
// could not be read names no keys to keep pending.
//
// Each cache must be one of this client's, and no tag empty: otherwise
// Invalidate fails with an error wrapping [ErrInvalidOptions] and removes
// nothing. The call is bounded by the
// largest RedisTimeout of the caches named (per 100 commands of a round
// trip), within ctx. Errors name the keys or tags that failed; the others
// were removed.
func (cl *Client) Invalidate(ctx context.Context, targets ...Target) (int64, error) {
	for _, t := range targets {
		switch {
		case t.err != nil:
			return 0, t.err
		case t.c != nil && t.c.owner() != cl:
			return 0, fmt.Errorf("cache: invalidate: %w: the cache of namespace %q is a cache of another Client", ErrInvalidOptions, strings.TrimSuffix(t.c.namespace(), ":"))
		}
	}
	return cl.invalidate(ctx, targets)
}

// invalidate is Invalidate of valid targets.
func (cl *Client) invalidate(ctx context.Context, targets []Target) (int64, error) {
	var r removal
	seen := map[string]bool{}
	for _, t := range targets {
		if t.c == nil {
			continue
		}
		r.timeout = max(r.timeout, t.c.timeout())
		for _, key := range t.keys {
			r.keys = append(r.keys, doomedKey{key, t.c})
		}
		for _, tag := range t.tags {
			if ix := t.c.tagKey(tag); !seen[ix] {
				seen[ix] = true
				r.indexes = append(r.indexes, tagIndex{key: ix, tag: tag, c: t.c})
			}
		}
	}
	if len(r.keys) == 0 && len(r.indexes) == 0 {
		return 0, nil
	}
	if cl.isClosed.Load() {
		return 0, fmt.Errorf("cache: invalidate: %w", ErrClosed)
	}
	rc, ok := cl.redis()
	if !ok {
		for _, d := range r.keys {
			cl.unconfirmed(d.key, d.c)
		}
		return 0, fmt.Errorf("cache: invalidate: %w", errNotConnected)
	}
	// Each round sends the deletions of keys and reads the indexes, then
	// learns the members to delete in the next.
	for len(r.keys) > 0 || len(r.indexes) > 0 {
		cl.invalidateRound(ctx, rc, &r)
	}
	return r.removed, errors.Join(r.errs...)
}

// removal is one Client.Invalidate: what is left to remove, and what
// it came to so far.
type removal struct {
	keys    []doomedKey
	indexes []tagIndex
	timeout time.Duration // the largest RedisTimeout of the caches named
	removed int64
	errs    []error
}

// doomedKey is a key to delete, of cache c.
type doomedKey struct {
	key string
	c   targetCache
}

// tagIndex is the index of a tag of cache c, whose members are keys of c.
type tagIndex struct {
	key string // the tag index
	tag string
	c   targetCache
	// read are the members read last round, whose deletions go with this
	// round's: they leave the index in it.
	read []string
}

// invalidateRound sends, in one pipeline, the deletions of r.keys (in
// plain mode their lease keys first) and, for each of r.indexes, the
// removal of the members read last round (SREM) and the reading of the
// next ones (SRANDMEMBER), and leaves in r the members to delete in the
// next round and the indexes to read again.
//
// A member leaves its index in the round that deletes it, never before:
// the index is read without being changed (SPOP would remove members
// whose reply may then be lost, leaving their keys neither deleted nor
// known), so a round whose replies are lost loses nothing — a call made
// again reads the same members. A deletion whose outcome is unknown leaves
// its key pending in this process (see pending.go).
func (cl *Client) invalidateRound(ctx context.Context, rc rueidis.Client, r *removal) {
	cmds := make(rueidis.Commands, 0, len(r.keys)+2*len(r.indexes))
	// In plain mode a key's lease goes first, in the same pipeline on the
	// same node (the lease key is in the key's slot): a load that read the
	// source before cannot write once its lease is gone, and what it wrote
	// before is deleted with the key.
	var leases []string
	for _, d := range r.keys {
		if lk, ok := d.c.leaseOf(d.key); ok {
			cmds = append(cmds, rc.B().Del().Key(lk).Build())
			leases = append(leases, lk)
		}
	}
	for _, d := range r.keys {
		cmds = append(cmds, rc.B().Del().Key(d.key).Build())
	}
	for _, ix := range r.indexes {
		if len(ix.read) > 0 {
			cmds = append(cmds, rc.B().Srem().Key(ix.key).Member(ix.read...).Build())
		}
		cmds = append(cmds, rc.B().Srandmember().Key(ix.key).Count(tagBatch).Build())
	}
	rctx, cancel := context.WithTimeout(ctx, budgetFor(r.timeout, len(cmds)))
	results := rc.DoMulti(rctx, cmds...)
	cancel()
	results = cl.keysDeleted(ctx, r, leases, results)
	var next []doomedKey
	var again []tagIndex
	for _, ix := range r.indexes {
		var err error
		if len(ix.read) > 0 {
			err = results[0].Error()
			results = results[1:]
		}
		members, rerr := results[0].AsStrSlice()
		results = results[1:]
		if err == nil && rerr != nil && !rueidis.IsRedisNil(rerr) {
			err = rerr
		}
		if err != nil {
			r.errs = append(r.errs, fmt.Errorf("cache: invalidate tag %q of %s: %w", ix.tag, strings.TrimSuffix(ix.c.namespace(), ":"), budgetErr(ctx, err, r.timeout)))
			continue
		}
		for _, m := range members {
			// A member outside the namespace (which aside never writes)
			// leaves the index undeleted: bytes in Redis must not make a
			// cache delete another's keys.
			if strings.HasPrefix(m, ix.c.namespace()) {
				next = append(next, doomedKey{m, ix.c})
			}
		}
		if len(members) > 0 {
			ix.read = members
			again = append(again, ix)
		}
	}
	r.keys, r.indexes = next, again
}

// keysDeleted reads the replies of the deletions of r.keys (after those of
// their lease keys, leases) at the head of results, counts what Redis
// removed, leaves the keys whose deletion Redis did not confirm pending,
// and returns the rest of results.
func (cl *Client) keysDeleted(ctx context.Context, r *removal, leases []string, results []rueidis.RedisResult) []rueidis.RedisResult {
	leaseFailed := make(map[string]bool)
	for i, lk := range leases {
		if err := results[i].Error(); err != nil {
			leaseFailed[lk] = true
			r.errs = append(r.errs, fmt.Errorf("cache: invalidate %s: %w", lk, budgetErr(ctx, err, r.timeout)))
		}
	}
	results = results[len(leases):]
	for i, d := range r.keys {
		n, err := results[i].AsInt64()
		lk, _ := d.c.leaseOf(d.key)
		cl.deleted(d.key, d.c, err == nil && !leaseFailed[lk])
		if err != nil {
			r.errs = append(r.errs, fmt.Errorf("cache: invalidate %s: %w", d.key, budgetErr(ctx, err, r.timeout)))
			continue
		}
		r.removed += n
	}
	return results[len(r.keys):]
}

// deleted handles a deletion of key, a key of cache tc, by this process:
// confirmed (Redis answered it, and the deletion of its lease key in plain
// mode), the key changed and is no longer pending; otherwise Redis may
// still hold what it held, and the key is pending until a deletion sent
// again is confirmed (see pending.go).
func (cl *Client) deleted(key string, tc targetCache, confirmed bool) {
	if !confirmed {
		cl.unconfirmed(key, tc)
		return
	}
	cl.pending.confirmed(key, 0)
	cl.wrote(key)
}

// unconfirmed handles a deletion of key, a key of cache tc, whose outcome
// Redis did not confirm: the key is pending (see pending.go).
func (cl *Client) unconfirmed(key string, tc targetCache) {
	tc.failedInvalidation()
	lk, _ := tc.leaseOf(key)
	cl.markPending(key, lk)
}
