package cache_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/codec"
)

// TestConnectFailsForOptionsRueidisRejects: an option rueidis rejects
// (PipelineMultiplex above MaxPipelineMultiplex) is an invalid option, not an
// unreachable Redis: Connect must fail at once instead of returning a client
// that retries in the background for ever.
func TestConnectFailsForOptionsRueidisRejects(t *testing.T) {
	t.Parallel()
	opt := shared.ClientOption()
	opt.PipelineMultiplex = 9
	c, err := cache.Connect(opt)
	if err == nil {
		connected := c.Connected()
		c.Close()
		t.Fatalf("Connect returned a client (connected: %v) for options rueidis rejects", connected)
	}
}

// TestCloseWithConcurrentNew: Close holds Client.mu's read lock while
// it waits for the caches' background work; a New at that moment queues for
// the write lock, and the background load's commit (wrote → wroteBy →
// mu.RLock) then queues behind it: Close never returns.
func TestCloseWithConcurrentNew(t *testing.T) {
	t.Parallel()
	client, err := cache.Connect(shared.ClientOption())
	require.NoError(t, err)
	ns := namespace(t)
	src, g := gatedSource()
	src.set("k", 1)
	gt := g.park(t, "k", 1)
	c := versionCache(t, client, ns, src)
	get := inBackground(func(ctx context.Context) (int64, error) { return c.Get(ctx, "k") })
	gt.awaitParked(t, "the load")

	closed := make(chan struct{})
	go func() { client.Close(); close(closed) }()
	awaitGoroutines(t, "Close waits for the background load", 1, func(s string) bool {
		return strings.Contains(s, "waitBackground") && strings.Contains(s, "(*Client).Close")
	})
	built := make(chan struct{})
	go func() {
		_, _ = cache.New(client, cache.Options[string, int64]{Namespace: ns + "-late", Loader: src.load, Codec: codec.MsgPack[int64]()})
		close(built)
	}()
	// Close holds no lock while it waits: New returns.
	select {
	case <-built:
	case <-time.After(patience):
		t.Fatalf("New did not return within %v while Close waited for a background load", patience)
	}
	gt.free()
	timer := time.NewTimer(patience)
	defer timer.Stop()
	select {
	case <-closed:
	case <-timer.C:
		buf := make([]byte, 1<<20)
		for _, st := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(st, "(*Client).changed") {
				t.Log(st)
			}
		}
		t.Fatalf("Close did not return within %v: deadlock between Close (mu.RLock held), New (mu.Lock queued) and the load's commit (mu.RLock)", patience)
	}
	_, _ = await(t, get, "the Get")
}
