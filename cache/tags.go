package cache

import (
	"context"
	"fmt"
	"time"

	"github.com/aside-go/aside/internal/keyname"
	"github.com/redis/rueidis"
)

// tagKey is the Redis set that indexes the keys carrying tag. Its name starts
// with the namespace and '#', which no key of any cache can (namespaces have
// no '#', keys are "<namespace>:..."), so no Get or pattern of a cache ever
// meets it.
func (c *Cache[K, V]) tagKey(tag string) string {
	return keyname.Tag(c.ns[:len(c.ns)-1], tag)
}

// tagCmds are the index updates of a write of key for ttl, for each tag: SADD
// the key, then PEXPIRE NX (an index without expiry gets the entry's) and
// PEXPIRE GT (an index that would die before the entry lives as long), so an
// index expires with its longest-lived member.
func (c *Cache[K, V]) tagCmds(rc rueidis.Client, key string, ttl time.Duration, tags []string) rueidis.Commands {
	cmds := make(rueidis.Commands, 0, 3*len(tags))
	for _, tag := range tags {
		tk := c.tagKey(tag)
		cmds = append(cmds,
			rc.B().Sadd().Key(tk).Member(key).Build(),
			rc.B().Pexpire().Key(tk).Milliseconds(ms(ttl)).Nx().Build(),
			rc.B().Pexpire().Key(tk).Milliseconds(ms(ttl)).Gt().Build(),
		)
	}
	return cmds
}

// InvalidateTag removes every key carrying any of the tags, with their
// indexes, and returns how many keys it removed.
//
// How tag indexes stay bounded: each tag is a Redis set of keys. Every write
// with the tag sets the set's expiry to at least the entry's (PEXPIRE NX, then
// GT), so a set never outlives its longest-lived member; InvalidateTag empties
// it (SRANDMEMBER then SREM of the members it deleted, so members added
// meanwhile are taken too, or stay for next time);
// and every 64th tagged write samples one of its tags (SRANDMEMBER 20) and
// removes the members whose keys expired or were deleted, as Redis' own
// active expiry does. [Cache.PruneTags] does a full pass on demand.
func (c *Cache[K, V]) InvalidateTag(ctx context.Context, tags ...string) (int64, error) {
	t := Tags(c, tags...)
	if t.err != nil {
		return 0, t.err
	}
	if c.rec == nil {
		return c.client.invalidate(ctx, []Target{t})
	}
	ctx, end := c.start(ctx, OpInvalidateTag, 0, 0)
	n, err := c.client.invalidate(ctx, []Target{t})
	end(Result{Err: err})
	return n, err
}

// tagBatch is how many members one round of an invalidation reads from a
// tag index.
const tagBatch = 256

// PruneTags removes from the indexes of tags the members whose keys no longer
// exist, walking each index with SSCAN, and returns how many it removed.
func (c *Cache[K, V]) PruneTags(ctx context.Context, tags ...string) (int64, error) {
	rc, err := c.redis()
	if err != nil {
		return 0, fmt.Errorf("cache: prune tags: %w", err)
	}
	var pruned int64
	for _, tag := range tags {
		tk := c.tagKey(tag)
		var cursor uint64
		for {
			entry, err := c.do(ctx, rc, rc.B().Sscan().Key(tk).Cursor(cursor).Count(tagBatch).Build()).AsScanEntry()
			if err != nil {
				return pruned, fmt.Errorf("cache: prune tag %q: %w", tag, c.redisErr(ctx, err))
			}
			n, err := c.pruneMembers(ctx, rc, tk, entry.Elements)
			pruned += n
			if err != nil {
				return pruned, fmt.Errorf("cache: prune tag %q: %w", tag, err)
			}
			if cursor = entry.Cursor; cursor == 0 {
				break
			}
		}
	}
	return pruned, nil
}

// pruneMembers SREMs the members of index tk whose keys do not exist.
func (c *Cache[K, V]) pruneMembers(ctx context.Context, rc rueidis.Client, tk string, members []string) (int64, error) {
	if len(members) == 0 {
		return 0, nil
	}
	cmds := make(rueidis.Commands, len(members))
	for i, m := range members {
		cmds[i] = rc.B().Exists().Key(m).Build()
	}
	var gone []string
	for i, res := range c.doMulti(ctx, rc, cmds...) {
		n, err := res.AsInt64()
		if err != nil {
			return 0, c.redisErr(ctx, err)
		}
		if n == 0 {
			gone = append(gone, members[i])
		}
	}
	if len(gone) == 0 {
		return 0, nil
	}
	n, err := c.do(ctx, rc, rc.B().Srem().Key(tk).Member(gone...).Build()).AsInt64()
	return n, c.redisErr(ctx, err)
}

// maybePruneTags samples one tag of every 64th tagged write and drops the
// dead members it finds. Errors are ignored: the write succeeded, and the
// index expires with its members anyway.
func (c *Cache[K, V]) maybePruneTags(ctx context.Context, tags []string) {
	if len(tags) == 0 {
		return
	}
	n := c.tagWrites.Add(1)
	if n%pruneEvery != 0 {
		return
	}
	rc, err := c.redis()
	if err != nil {
		return
	}
	tk := c.tagKey(tags[int(n/pruneEvery)%len(tags)])
	members, err := c.do(ctx, rc, rc.B().Srandmember().Key(tk).Count(pruneSample).Build()).AsStrSlice()
	if err != nil {
		return
	}
	_, _ = c.pruneMembers(ctx, rc, tk, members)
}

const (
	pruneEvery  = 64
	pruneSample = 20
)
