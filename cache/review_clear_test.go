package cache_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/asidetest"
	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/codec"
	"github.com/aside-go/aside/internal/envelope"
	"github.com/aside-go/aside/internal/redistest"
)

// Review 2: interleavings of Clear and StaleWhileReloading.

// parkedCodec is MsgPack whose Marshal of one value parks until freed:
// Set encodes after it read the generation it writes with, and before it
// takes the key's snapshot.
type parkedCodec struct {
	codec.Codec[int64]
	value   int64
	parked  chan struct{}
	release chan struct{}
	once    sync.Once
}

func newParkedCodec(t testing.TB, v int64) *parkedCodec {
	pc := &parkedCodec{Codec: codec.MsgPack[int64](), value: v, parked: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(pc.free)
	return pc
}

func (pc *parkedCodec) Marshal(v int64) ([]byte, error) {
	if v == pc.value {
		select {
		case <-pc.parked:
		default:
			close(pc.parked)
			<-pc.release
		}
	}
	return pc.Codec.Marshal(v)
}

func (pc *parkedCodec) free() { pc.once.Do(func() { close(pc.release) }) }

func (pc *parkedCodec) awaitParked(t testing.TB) {
	t.Helper()
	_, _ = within(t, "Set's encode", func(ctx context.Context) (struct{}, error) {
		select {
		case <-pc.parked:
		case <-ctx.Done():
		}
		return struct{}{}, nil
	})
}

// A Set of this process under way while this process Clears: the Set read
// the generation before the Clear, and writes an entry that is cleared
// for every other process; it must not keep a copy of it (commit does
// this for loads: clears counter), or this process serves a value no
// other process can read, until the key changes.
// A Set of this process under way while this process Clears: the Set read
// the generation before the Clear, and writes an entry that is cleared
// for every other process; it must not keep a copy of it (commit does
// this for loads: clears counter), or this process serves a value no
// other process can read, until the key changes.
func TestClearRacingSetKeepsNoClearedCopy(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ns := namespace(t)
	src := newSource()
	src.set("k", 7)
	pcodec := newParkedCodec(t, 5)
	p := versionCache(t, connect(t, shared), ns, src, func(o *cache.Options[string, int64]) { o.Codec = pcodec })
	q := versionCache(t, connect(t, shared), ns, src)
	_, err := p.Get(ctx, "other") // p tracks the generation
	require.ErrorIs(t, err, cache.ErrNotFound)

	setting := inBackground(func(ctx context.Context) (struct{}, error) { return struct{}{}, p.Set(ctx, "k", 5) })
	pcodec.awaitParked(t)
	_, err = p.Clear(ctx)
	require.NoError(t, err)
	pcodec.free()
	_, err = await(t, setting, "the Set")
	require.NoError(t, err)

	raw, found := rawGet(t, connect(t, shared).Rueidis(), p.Key("k"))
	require.True(t, found)
	env, err := envelope.Decode([]byte(raw))
	require.NoError(t, err)
	t.Logf("Redis holds the Set's entry of generation %d; the namespace's is 1", env.Gen)

	before := p.Stats().LocalHits
	pv, err := p.Get(ctx, "k")
	require.NoError(t, err)
	local := p.Stats().LocalHits > before
	qv, err := q.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, qv, pv, "p (local hit: %v) serves a copy of an entry every other process reads as cleared", local)
}

// StaleWhileReloading with OutageStaleness: a copy kept stale after
// another process's change, never read again, stays in process memory past
// its bound; when Redis then becomes unavailable, the outage path serves
// it (outageCopy peeks local, and the flush stashes it) — a value the
// process knew superseded, past StaleWhileReloading, where a read without
// the option gets the loader's value.
func TestStaleCopyPastBoundNotServedInOutage(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Config{})
	ctx := testContext(t)
	ns := namespace(t)
	const bound = time.Minute
	clock := asidetest.NewClock(time.Now())
	src := newSource()
	pc, w := watchedClient(t, srv.ClientOption())
	p := versionCache(t, pc, ns, src, func(o *cache.Options[string, int64]) {
		o.StaleWhileReloading = bound
		o.OutageStaleness = time.Hour
		o.Now = clock.Now
	})
	q := versionCache(t, connect(t, srv), ns, src)
	src.set("k", 1)
	require.Equal(t, int64(1), warmCopy(t, p, "k"))

	_, err := p.Get(ctx, "k", cache.SkipLocal()) // every push of p's own commands has come
	require.NoError(t, err)
	src.set("k", 2)
	mark := w.mark(p.Key("k"))
	require.NoError(t, q.Set(ctx, "k", 2))
	w.awaitPushOf(t, mark, "q's Set")
	clock.Add(2 * bound) // the copy is past its bound; nobody read it

	require.NoError(t, srv.Kill())
	v, err := p.Get(ctx, "k", cache.SkipLocal())
	require.NoError(t, err)
	assert.Equal(t, int64(2), v, "a copy superseded %v ago (StaleWhileReloading %v) was served in an outage", 2*bound, bound)
}
