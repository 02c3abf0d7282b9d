package cache_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/codec"
)

// TestAdaptTagsAndTTLFromTheLoader: a loader tags the value it returns and
// sets its TTL with Adapt; the value is written with them, and InvalidateTag
// removes it (and only it) — in envelope and plain mode, standalone and on
// a cluster.
func TestAdaptTagsAndTTLFromTheLoader(t *testing.T) {
	t.Parallel()
	for _, topo := range topologies() {
		for _, plain := range []bool{false, true} {
			t.Run(topo.name+"/"+map[bool]string{false: "envelope", true: "plain"}[plain], func(t *testing.T) {
				t.Parallel()
				ctx := testContext(t)
				var loads atomic.Int64
				c, err := cache.New(connectWith(t, topo.opt(t)), cache.Options[string, string]{
					Namespace: namespace(t), Codec: codec.String(), Plain: plain,
					Loader: func(ctx context.Context, k string) (string, error) {
						loads.Add(1)
						category, _, _ := strings.Cut(k, "/")
						return "v of " + k, cache.Adapt(ctx, cache.WithTags("category:"+category), cache.WithTTL(time.Minute))
					},
				})
				require.NoError(t, err)
				for _, k := range []string{"x/1", "x/2", "y/1"} {
					_, err := c.Get(ctx, k)
					require.NoError(t, err)
				}
				require.NoError(t, c.AwaitWrites(ctx, "x/1", "x/2", "y/1"))
				ttl, err := c.TTL(ctx, "x/1")
				require.NoError(t, err)
				assert.True(t, ttl > 50*time.Second && ttl <= time.Minute, "the loader's TTL: %v", ttl)

				n, err := c.InvalidateTag(ctx, "category:x")
				require.NoError(t, err)
				assert.EqualValues(t, 2, n, "the values the loader tagged")
				left, err := c.Exists(ctx, "x/1", "x/2", "y/1")
				require.NoError(t, err)
				assert.Equal(t, 1, left, "y/1 stays")
				before := loads.Load()
				_, err = c.Get(ctx, "x/1")
				require.NoError(t, err)
				assert.Equal(t, before+1, loads.Load(), "x/1 is loaded again")
			})
		}
	}
}

// TestAdaptKeyInABatch: a BatchLoader tags some keys of its batch with
// AdaptKey, every key with Adapt; with only a Loader, each call's Adapt
// concerns its own key, GetMany or not.
func TestAdaptKeyInABatch(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	client := connect(t, shared)
	batch, err := cache.New(client, cache.Options[string, string]{
		Namespace: namespace(t), Codec: codec.String(),
		BatchLoader: func(ctx context.Context, ks []string) (map[string]string, error) {
			out := map[string]string{}
			for _, k := range ks {
				out[k] = "v"
				if strings.HasPrefix(k, "odd") {
					if err := cache.AdaptKey(ctx, k, cache.WithTags("odd")); err != nil {
						return nil, err
					}
				}
			}
			return out, cache.Adapt(ctx, cache.WithTags("all"))
		},
	})
	require.NoError(t, err)
	_, err = batch.GetMany(ctx, []string{"odd1", "even2", "odd3"})
	require.NoError(t, err)
	require.NoError(t, batch.AwaitWrites(ctx, "odd1", "even2", "odd3"))
	n, err := batch.InvalidateTag(ctx, "odd")
	require.NoError(t, err)
	assert.EqualValues(t, 2, n)
	n, err = batch.InvalidateTag(ctx, "all")
	require.NoError(t, err)
	assert.EqualValues(t, 1, n, "even2, the one the odd tag left")

	one, err := cache.New(client, cache.Options[string, string]{
		Namespace: namespace(t) + "-one", Codec: codec.String(),
		Loader: func(ctx context.Context, k string) (string, error) {
			return "v", cache.Adapt(ctx, cache.WithTags("t:"+k))
		},
	})
	require.NoError(t, err)
	_, err = one.GetMany(ctx, []string{"a", "b", "c"})
	require.NoError(t, err)
	require.NoError(t, one.AwaitWrites(ctx, "a", "b", "c"))
	n, err = one.InvalidateTag(ctx, "t:b")
	require.NoError(t, err)
	assert.EqualValues(t, 1, n, "each Loader call tagged its own key")
	left, err := one.Exists(ctx, "a", "b", "c")
	require.NoError(t, err)
	assert.Equal(t, 2, left)
}

// TestAdaptMisuse: Adapt outside a loader call, or with an invalid option,
// is an invalid option; the loader that returns it fails the Get.
func TestAdaptMisuse(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	require.ErrorIs(t, cache.Adapt(ctx, cache.WithTTL(time.Minute)), cache.ErrInvalidOptions)
	c, err := cache.New(connect(t, shared), cache.Options[string, string]{
		Namespace: namespace(t), Codec: codec.String(),
		Loader: func(ctx context.Context, k string) (string, error) {
			return "v", cache.Adapt(ctx, cache.WithTags(""))
		},
	})
	require.NoError(t, err)
	_, err = c.Get(ctx, "k")
	require.ErrorIs(t, err, cache.ErrInvalidOptions)
}
