package cache_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/codec"
)

// TestMaxValueBytes: a Set of a value whose encoded form is larger than
// MaxValueBytes fails with ErrTooLarge and sends nothing; a loaded value that
// large is returned but neither written nor kept (the next Get loads again);
// a negative bound is an invalid option naming the field.
func TestMaxValueBytes(t *testing.T) {
	t.Parallel()
	client := connect(t, shared)
	_, err := cache.New(client, cache.Options[string, string]{Namespace: namespace(t), Codec: codec.String(), MaxValueBytes: -1})
	require.ErrorIs(t, err, cache.ErrInvalidOptions)
	assert.Contains(t, err.Error(), "MaxValueBytes")

	for _, plain := range []bool{false, true} {
		ctx := testContext(t)
		big := strings.Repeat("x", 200)
		var loads atomic.Int64
		c, err := cache.New(client, cache.Options[string, string]{
			Namespace: namespace(t), Codec: codec.String(), Plain: plain, MaxValueBytes: 100,
			Loader: func(_ context.Context, k string) (string, error) {
				loads.Add(1)
				if k == "big" {
					return big, nil
				}
				return "small", nil
			},
		})
		require.NoError(t, err)

		err = c.Set(ctx, "set", big)
		require.ErrorIs(t, err, cache.ErrTooLarge, "plain=%v", plain)
		assert.Contains(t, err.Error(), "MaxValueBytes is 100")
		n, err := c.Exists(ctx, "set")
		require.NoError(t, err)
		assert.Zero(t, n, "nothing sent")
		require.NoError(t, c.Set(ctx, "set", "small"))

		for i := range 2 {
			v, err := c.Get(ctx, "big")
			require.NoError(t, err)
			assert.Equal(t, big, v)
			require.NoError(t, cache.AwaitWrites(ctx, c, "big"))
			assert.EqualValues(t, i+1, loads.Load(), "plain=%v: a value too large is not kept: each Get loads", plain)
		}
		n, err = c.Exists(ctx, "big")
		require.NoError(t, err)
		assert.Zero(t, n, "plain=%v: a loaded value too large is not written", plain)
		assert.EqualValues(t, 3, c.Stats().TooLarge, "one Set, two loads")
		assert.Zero(t, c.Stats().WriteErrors)
	}
}
