package cache_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/internal/envelope"
)

// followUpClient is a rueidis client that runs before, once, ahead of the
// first pipeline of a GET and a PTTL: the second round trip of a visit
// without tracking, which reads the PTTL of a lease the first one found.
type followUpClient struct {
	rueidis.Client
	mu        sync.Mutex
	before    func()
	followUps atomic.Int64
}

func (f *followUpClient) DoMulti(ctx context.Context, cmds ...rueidis.Completed) []rueidis.RedisResult {
	if len(cmds) == 2 && cmds[0].Commands()[0] == "GET" && cmds[1].Commands()[0] == "PTTL" {
		f.followUps.Add(1)
		f.mu.Lock()
		before := f.before
		f.before = nil
		f.mu.Unlock()
		if before != nil {
			before()
		}
	}
	return f.Client.DoMulti(ctx, cmds...)
}

// untrackedReader is a cache of namespace ns on a client without
// client-side caching, whose rueidis client is a followUpClient.
func untrackedReader(t *testing.T, ns string, src *source) (*cache.Cache[string, int64], *followUpClient) {
	t.Helper()
	opt := shared.ClientOption()
	opt.DisableCache = true
	client, fc := connectThrough(t, opt, func(c rueidis.Client) *followUpClient { return &followUpClient{Client: c} })
	require.False(t, client.Tracking())
	return versionCache(t, client, ns, src), fc
}

// TestUntrackedVisitOfALease: without tracking a visit is one command, and
// a lease it finds is read again, with its PTTL, in a second round trip.
// Whatever happens to the key between the two, the read answers as a read
// that saw the key's state at once would.
func TestUntrackedVisitOfALease(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	token := make([]byte, envelope.LeaseTokenSize)
	token[0] = 0x5a
	lease := envelope.Encode(envelope.Lease, false, time.Time{}, token)
	rc := connect(t, shared).Rueidis()

	t.Run("another process's load", func(t *testing.T) {
		ns := namespace(t)
		src := newSource()
		src.set("k", 9)
		r, fc := untrackedReader(t, ns, src)
		release, done := holdLease(t, ns, "k", 7)
		sawLease := make(chan struct{})
		fc.before = func() { close(sawLease) }
		got := inBackground(func(ctx context.Context) (int64, error) { return r.Get(ctx, "k") })
		select {
		case <-sawLease:
		case <-ctx.Done():
			t.Fatal("the reader never read the lease's PTTL")
		}
		close(release)
		v, err := await(t, got, "the reader's Get")
		require.NoError(t, err)
		assert.EqualValues(t, 7, v, "the holder's value, waited for")
		assert.Zero(t, src.loads.Load(), "the reader did not load")
		<-done
	})

	t.Run("the lease replaced by a value between the round trips", func(t *testing.T) {
		ns := namespace(t)
		src := newSource()
		src.set("k", 9)
		r, fc := untrackedReader(t, ns, src)
		w := versionCache(t, connect(t, shared), ns, newSource())
		require.NoError(t, rc.Do(ctx, rc.B().Set().Key(r.Key("k")).Value(rueidis.BinaryString(lease)).PxMilliseconds(60_000).Build()).Error())
		fc.before = func() { require.NoError(t, w.Set(ctx, "k", 5)) }
		v, err := r.Get(ctx, "k")
		require.NoError(t, err)
		assert.EqualValues(t, 5, v, "the value that took the lease's place")
		assert.Zero(t, src.loads.Load())
		assert.EqualValues(t, 1, fc.followUps.Load())
	})

	t.Run("the lease gone between the round trips", func(t *testing.T) {
		ns := namespace(t)
		src := newSource()
		src.set("k", 9)
		r, fc := untrackedReader(t, ns, src)
		require.NoError(t, rc.Do(ctx, rc.B().Set().Key(r.Key("k")).Value(rueidis.BinaryString(lease)).PxMilliseconds(60_000).Build()).Error())
		fc.before = func() { require.NoError(t, rc.Do(ctx, rc.B().Del().Key(r.Key("k")).Build()).Error()) }
		v, err := r.Get(ctx, "k")
		require.NoError(t, err)
		assert.EqualValues(t, 9, v, "loaded, as the key held nothing")
		assert.EqualValues(t, 1, src.loads.Load())
		require.NoError(t, cache.AwaitWrites(ctx, r, "k"))
		raw, err := rc.Do(ctx, rc.B().Get().Key(r.Key("k")).Build()).AsBytes()
		require.NoError(t, err)
		assert.True(t, envelope.IsEntry(raw) && !envelope.IsLease(raw), "the load wrote its value")
	})

	t.Run("bytes shaped like a lease without an expiry", func(t *testing.T) {
		ns := namespace(t)
		src := newSource()
		src.set("k", 9)
		r, fc := untrackedReader(t, ns, src)
		require.NoError(t, rc.Do(ctx, rc.B().Set().Key(r.Key("k")).Value(rueidis.BinaryString(lease)).Build()).Error())
		_, err := r.Get(ctx, "k")
		require.ErrorIs(t, err, cache.ErrCorrupt)
		assert.Zero(t, src.loads.Load())
		assert.EqualValues(t, 1, fc.followUps.Load())
		raw, err := rc.Do(ctx, rc.B().Get().Key(r.Key("k")).Build()).AsBytes()
		require.NoError(t, err)
		assert.Equal(t, lease, raw, "left in Redis")
	})
}
