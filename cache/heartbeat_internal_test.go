package cache

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

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

// TestNoHeartbeatWithoutTracking: a client whose connection does not track
// keeps no copy for the heartbeat to guard, and sends it no PING (a PING
// beside a read would move its rueidis pipe to the background goroutines
// for good), nor does Connect give rueidis an invalidation hook for it.
func TestNoHeartbeatWithoutTracking(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Config{})
	opt := srv.ClientOption()
	opt.DisableCache = true
	var hooked []bool
	client, err := Connect(opt, WithClientBuilder(func(o rueidis.ClientOption) (rueidis.Client, error) {
		hooked = append(hooked, o.OnInvalidations != nil)
		return rueidis.NewClient(o)
	}))
	require.NoError(t, err)
	t.Cleanup(client.Close)
	require.False(t, client.Tracking())
	require.Len(t, hooked, 1, "no tracking probe for a client that asked for none")
	assert.False(t, hooked[0], "no invalidation hook without tracking")

	pings := func() int {
		text, err := srv.Do(context.Background(), "INFO", "commandstats")
		require.NoError(t, err)
		for _, line := range strings.Split(text, "\n") {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_ping:calls="); ok {
				n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
				return n
			}
		}
		return 0
	}
	before := pings()
	client.heartbeat()
	assert.Equal(t, before, pings(), "the heartbeat sent no PING")

	// With tracking, the same round PINGs the server.
	tracked, err := Connect(srv.ClientOption())
	require.NoError(t, err)
	t.Cleanup(tracked.Close)
	require.True(t, tracked.Tracking())
	before = pings()
	tracked.heartbeat()
	assert.Greater(t, pings(), before, "a tracking client's round PINGs")
}
