package cache_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/internal/redistest"
)

// TestCommandsPerGet counts the Redis commands one Get sends: for a key
// that Redis holds but process memory does not, one visit that reads, leases
// and tracks; for a key nobody holds, that visit and the write of the loaded
// value. After either, the next Gets are served from process memory.
func TestCommandsPerGet(t *testing.T) {
	t.Parallel()
	srv, err := redistest.Launch(redistest.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	ctx := context.Background()
	ns := namespace(t)

	writer := userCache(t, connect(t, srv), ns, nil)
	require.NoError(t, writer.Set(ctx, 1, sampleUser(1)))
	readerClient := connect(t, srv)
	reader := userCache(t, readerClient, ns, nil)
	_, err = reader.Get(ctx, 1000) // scripts loaded, connections up
	require.NoError(t, err)
	require.NoError(t, cache.AwaitWrites(ctx, reader, 1000))

	before := commandStats(t, srv)
	_, err = reader.Get(ctx, 1)
	require.NoError(t, err)
	cmds, n := commandsSince(t, srv, before)
	_ = n
	t.Logf("Get of a key in Redis only: %d commands %v", n, cmds)
	// One visit: GET of the namespace's generation, PTTL, SET NX GET, PTTL.
	assert.Equal(t, map[string]int{"get": 1, "set": 1, "pttl": 2}, cmds, "one visit reads, leases and tracks")

	before = commandStats(t, srv)
	_, err = reader.Get(ctx, 2)
	require.NoError(t, err)
	require.NoError(t, cache.AwaitWrites(ctx, reader, 2))
	cmds, n = commandsSince(t, srv, before)
	t.Logf("Get of a missing key: %d commands %v", n, cmds)
	// The visit (GET of the generation, PTTL, SET NX GET, PTTL), then the
	// write under the lease: one EVALSHA, and the GET, SET and PTTL it runs
	// (INFO commandstats counts a script's commands too); on a server with
	// compare-and-set, the transaction MULTI, PTTL, SET IFEQ, PTTL, EXEC.
	want := map[string]int{"evalsha": 1, "set": 2, "pttl": 3, "get": 2}
	if setIfEq, _ := cache.CompareAndSet(readerClient); setIfEq {
		want = map[string]int{"multi": 1, "exec": 1, "set": 2, "pttl": 4, "get": 1}
	}
	assert.Equal(t, want, cmds, "a miss costs the visit and the write-back")

	for _, id := range []int64{1, 2} {
		s0 := reader.Stats()
		toRedis := 0
		for range 5 {
			_, err := reader.Get(ctx, id)
			require.NoError(t, err)
			if reader.Stats().LocalHits > s0.LocalHits {
				break
			}
			toRedis++
		}
		t.Logf("key %d: %d Gets went to Redis before the first local hit", id, toRedis)
		assert.Zero(t, toRedis, "the copy is in process memory for the very next Get")
	}

	// Without tracking (client-side caching off), the visit is the SET NX
	// GET alone, and the generation's GET: both PTTLs are there for
	// tracking.
	opt := srv.ClientOption()
	opt.DisableCache = true
	plainClient := connectWith(t, opt)
	require.False(t, plainClient.Tracking())
	untracked := userCache(t, plainClient, ns, nil)
	_, err = untracked.Get(ctx, 1000) // connections up
	require.NoError(t, err)
	before = commandStats(t, srv)
	_, err = untracked.Get(ctx, 1)
	require.NoError(t, err)
	cmds, n = commandsSince(t, srv, before)
	t.Logf("Get without tracking of a key in Redis: %d commands %v", n, cmds)
	assert.Equal(t, map[string]int{"get": 1, "set": 1}, cmds, "SET NX GET, and the generation")
	_ = cache.NoExpiry
}
