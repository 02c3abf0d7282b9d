package cache

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/internal/redistest"
)

// TestSilentRedisStopsCopiesBeingServed: once no heartbeat round has been
// answered for MaxSilence, Get reads Redis instead of serving its copy; the
// next answered round lets copies serve again.
func TestSilentRedisStopsCopiesBeingServed(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Config{})
	client, err := Connect(srv.ClientOption())
	require.NoError(t, err)
	t.Cleanup(client.Close)
	c, err := New(client, Options[string, string]{Namespace: "silence", Loader: func(context.Context, string) (string, error) { return "v", nil }})
	require.NoError(t, err)
	ctx := context.Background()
	_, err = c.Get(ctx, "k")
	require.NoError(t, err)
	_, err = c.Get(ctx, "k")
	require.NoError(t, err)
	require.EqualValues(t, 1, c.Stats().LocalHits)
	require.NoError(t, c.awaitWritesFor(ctx, 0, c.Key("k")))

	// As if the last answered round began MaxSilence and a tick ago.
	client.heard.Store(client.clock.now() - int64(time.Second) - int64(10*time.Millisecond))
	_, err = c.Get(ctx, "k")
	require.NoError(t, err)
	s := c.Stats()
	assert.EqualValues(t, 1, s.LocalHits, "not served from memory")
	assert.EqualValues(t, 1, s.RedisHits, "read from Redis")
	_, err = c.GetMany(ctx, []string{"k"})
	require.NoError(t, err)
	assert.EqualValues(t, 1, c.Stats().LocalHits, "GetMany neither")

	client.heartbeat()
	_, err = c.Get(ctx, "k")
	require.NoError(t, err)
	assert.EqualValues(t, 2, c.Stats().LocalHits, "served again once Redis answered")
}
