package cache_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/codec"
	"github.com/aside-go/aside/invalidation"
)

func TestInvalidatePatternOnEveryPrimary(t *testing.T) {
	t.Parallel()
	for _, topo := range topologies() {
		t.Run(topo.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			ns := namespace(t)
			c := stringCache(t, topo, ns)
			other := stringCache(t, topo, ns+"x") // a namespace sharing a prefix

			m := map[string]string{}
			for i := range 600 {
				m[fmt.Sprintf("user:%d:profile", i)] = "p"
				m[fmt.Sprintf("user:%d:settings", i)] = "s"
			}
			for i := range 50 {
				m[fmt.Sprintf("order:%d", i)] = "o"
			}
			require.NoError(t, c.SetMany(ctx, m))
			require.NoError(t, other.Set(ctx, "user:1:profile", "other"))
			warm(t, c, "user:1:profile")

			var reports atomic.Int64
			n, err := c.InvalidatePattern(ctx, "user:*", cache.WithScanCount(100),
				cache.WithProgress(func(invalidation.Progress) { reports.Add(1) }))
			require.NoError(t, err)
			assert.EqualValues(t, 1200, n)
			assert.Positive(t, reports.Load())

			left, err := c.Exists(ctx, keysOf(m)...)
			require.NoError(t, err)
			assert.Equal(t, 50, left, "only the orders are left")
			_, err = c.Get(ctx, "user:1:profile")
			assert.ErrorIs(t, err, cache.ErrNotFound, "the copy in memory is gone too")
			v, err := other.Get(ctx, "user:1:profile")
			require.NoError(t, err)
			assert.Equal(t, "other", v, "another namespace is untouched")

			n, err = c.InvalidatePrefix(ctx, "order:")
			require.NoError(t, err)
			assert.EqualValues(t, 50, n)
		})
	}
}

func TestInvalidatePatternEscapesUserInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := stringCache(t, topologies()[0], namespace(t))
	m := map[string]string{
		"user:1*:a": "", "user:1*:b": "", "user:10:a": "", "user:1:a": "",
		"user:1001:a": "", "user:10010:a": "", "user:[1]:a": "", "user:1:[a]": "",
	}
	require.NoError(t, c.SetMany(ctx, m))

	n, err := c.InvalidatePattern(ctx, "user:"+invalidation.Escape("1*")+":*")
	require.NoError(t, err)
	assert.EqualValues(t, 2, n, `only user "1*"`)

	n, err = c.InvalidatePattern(ctx, "user:"+invalidation.Escape("1001")+":*")
	require.NoError(t, err)
	assert.EqualValues(t, 1, n, "user:1001:* never touches user:10010:...")
	left, err := c.Exists(ctx, "user:10010:a")
	require.NoError(t, err)
	assert.Equal(t, 1, left)

	n, err = c.InvalidatePattern(ctx, "user:"+invalidation.Escape("[1]")+":*")
	require.NoError(t, err)
	assert.EqualValues(t, 1, n)
	left, err = c.Exists(ctx, "user:1:a")
	require.NoError(t, err)
	assert.Equal(t, 1, left, `"[1]" is not a character class`)
}

func TestInvalidatePatternWhileFilling(t *testing.T) {
	t.Parallel()
	for _, topo := range topologies() {
		t.Run(topo.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			c := stringCache(t, topo, namespace(t))
			before := map[string]string{}
			for i := range 2000 {
				before[fmt.Sprintf("k:%d", i)] = "old"
			}
			require.NoError(t, c.SetMany(ctx, before))

			// Writers keep filling other matching keys during the scan.
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var written atomic.Int64
			for w := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						if err := c.Set(ctx, fmt.Sprintf("k:new:%d:%d", w, i), "new"); err != nil {
							t.Error(err)
							return
						}
						written.Add(1)
					}
				}()
			}
			_, err := c.InvalidatePattern(ctx, "k:*", cache.WithScanCount(50))
			close(stop)
			wg.Wait()
			require.NoError(t, err)

			left, err := c.Exists(ctx, keysOf(before)...)
			require.NoError(t, err)
			assert.Zero(t, left, "every key that existed before the invalidation is gone")
			t.Logf("%d keys written during the scan", written.Load())
		})
	}
}

func TestInvalidateTag(t *testing.T) {
	t.Parallel()
	for _, topo := range topologies() {
		t.Run(topo.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			c := stringCache(t, topo, namespace(t))
			for i := range 30 {
				tags := []string{"all"}
				if i%3 == 0 {
					tags = append(tags, "three")
				}
				require.NoError(t, c.Set(ctx, fmt.Sprintf("k%d", i), "v", cache.WithTags(tags...)))
			}
			require.NoError(t, c.Set(ctx, "untagged", "v"))
			warm(t, c, "k3")

			n, err := c.InvalidateTag(ctx, "three")
			require.NoError(t, err)
			assert.EqualValues(t, 10, n)
			_, err = c.Get(ctx, "k3")
			assert.ErrorIs(t, err, cache.ErrNotFound)
			v, err := c.Get(ctx, "k1")
			require.NoError(t, err)
			assert.Equal(t, "v", v)

			n, err = c.InvalidateTag(ctx, "all", "three")
			require.NoError(t, err)
			assert.EqualValues(t, 20, n, "the keys already removed are not counted again")
			left, err := c.Exists(ctx, "untagged", "k1", "k2")
			require.NoError(t, err)
			assert.Equal(t, 1, left)

			n, err = c.InvalidateTag(ctx, "never-used")
			require.NoError(t, err)
			assert.Zero(t, n)
		})
	}
}

func TestTagIndexesStayBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := connect(t, shared)
	c, err := cache.New(client, cache.Options[string, string]{Namespace: namespace(t), Codec: codec.String()})
	require.NoError(t, err)
	rc := client.Rueidis()
	tagKey := c.Key("x")[:len(c.Key("x"))-2] + "#tag:t"

	require.NoError(t, c.Set(ctx, "short", "v", cache.WithTags("t"), cache.WithTTL(10*time.Second)))
	ttl, err := rc.Do(ctx, rc.B().Pttl().Key(tagKey).Build()).AsInt64()
	require.NoError(t, err)
	assert.InDelta(t, 10_000, ttl, 1000, "the index expires with its member")

	require.NoError(t, c.Set(ctx, "long", "v", cache.WithTags("t"), cache.WithTTL(time.Hour)))
	require.NoError(t, c.Set(ctx, "short2", "v", cache.WithTags("t"), cache.WithTTL(5*time.Second)))
	ttl, err = rc.Do(ctx, rc.B().Pttl().Key(tagKey).Build()).AsInt64()
	require.NoError(t, err)
	assert.InDelta(t, 3_600_000, ttl, 1000, "...with its longest-lived member")

	// Members whose keys are gone are pruned.
	_, err = c.Delete(ctx, "short", "short2")
	require.NoError(t, err)
	pruned, err := c.PruneTags(ctx, "t")
	require.NoError(t, err)
	assert.EqualValues(t, 2, pruned)
	members, err := rc.Do(ctx, rc.B().Smembers().Key(tagKey).Build()).AsStrSlice()
	require.NoError(t, err)
	assert.Equal(t, []string{c.Key("long")}, members)

	// Sampled pruning on writes: 200 keys written and deleted, then 64
	// more tagged writes sample the index.
	for i := range 200 {
		require.NoError(t, c.Set(ctx, fmt.Sprintf("gone%d", i), "v", cache.WithTags("t")))
	}
	for i := range 200 {
		_, err := c.Delete(ctx, fmt.Sprintf("gone%d", i))
		require.NoError(t, err)
	}
	for range 64 {
		require.NoError(t, c.Set(ctx, "long", "v", cache.WithTags("t"), cache.WithTTL(time.Hour)))
	}
	card, err := rc.Do(ctx, rc.B().Scard().Key(tagKey).Build()).AsInt64()
	require.NoError(t, err)
	assert.Less(t, card, int64(201), "sampling removed dead members")
}

func TestTagMembersOutsideTheNamespaceAreNeverDeleted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := connect(t, shared)
	ns := namespace(t)
	c, err := cache.New(client, cache.Options[string, string]{Namespace: ns, Codec: codec.String()})
	require.NoError(t, err)
	other, err := cache.New(client, cache.Options[string, string]{Namespace: ns + "o", Codec: codec.String()})
	require.NoError(t, err)
	require.NoError(t, other.Set(ctx, "victim", "v"))
	require.NoError(t, c.Set(ctx, "mine", "v", cache.WithTags("t")))
	rc := client.Rueidis()
	tagKey := ns + "#tag:t"
	require.NoError(t, rc.Do(ctx, rc.B().Sadd().Key(tagKey).Member(other.Key("victim"), "unrelated").Build()).Error())

	n, err := c.InvalidateTag(ctx, "t")
	require.NoError(t, err)
	assert.EqualValues(t, 1, n)
	left, err := other.Exists(ctx, "victim")
	require.NoError(t, err)
	assert.Equal(t, 1, left)
}
