package cache

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLocalDropsEveryTypedKeyOfARedisKey(t *testing.T) {
	t.Parallel()
	l := newLocal[string, int](10 * copyWeight("ns:alice", 0))
	for _, k := range []string{"Bob", "bob", "BOB"} {
		require.True(t, l.store(k, &entry[int]{v: 1, key: "ns:bob"}, l.snapshot("ns:bob")))
	}
	require.True(t, l.store("alice", &entry[int]{v: 2, key: "ns:alice"}, l.snapshot("ns:alice")))
	assert.Equal(t, 4, l.len())

	l.invalidate("ns:bob")
	for _, k := range []string{"Bob", "bob", "BOB"} {
		_, ok := l.get(k, 0)
		assert.False(t, ok, "%s's copy is dropped with its Redis key", k)
	}
	_, ok := l.get("alice", 0)
	assert.True(t, ok, "another key's copy stays")
	assert.Equal(t, 1, l.len())
}

func TestLocalStoreAfterAnInvalidationIsRefused(t *testing.T) {
	t.Parallel()
	l := newLocal[string, int](10 * copyWeight("ns:alice", 0))
	snap := l.snapshot("ns:k")
	l.invalidate("ns:k") // arrives between the read and its store
	assert.False(t, l.store("k", &entry[int]{v: 1, key: "ns:k"}, snap))
	_, ok := l.get("k", 0)
	assert.False(t, ok)
	assert.True(t, l.store("k", &entry[int]{v: 2, key: "ns:k"}, l.snapshot("ns:k")))
}

func TestLocalStoreWrittenDropsOtherCopiesFirst(t *testing.T) {
	t.Parallel()
	l := newLocal[string, int](10 * copyWeight("ns:alice", 0))
	require.True(t, l.store("Bob", &entry[int]{v: 1, key: "ns:bob"}, l.snapshot("ns:bob")))
	snap := l.snapshot("ns:bob")
	readSnap := l.snapshot("ns:bob") // a read in flight since before the write
	require.True(t, l.storeWritten("bob", &entry[int]{v: 2, key: "ns:bob"}, snap, nil))
	_, ok := l.get("Bob", 0)
	assert.False(t, ok, "the copy of another typed key of the written Redis key is dropped")
	e, ok := l.get("bob", 0)
	require.True(t, ok)
	assert.Equal(t, 2, e.v)
	assert.False(t, l.store("Bob", &entry[int]{v: 1, key: "ns:bob"}, readSnap), "a read from before the write does not store")

	// A write whose stripe saw an invalidation since its snapshot keeps
	// nothing, and still drops what was there.
	snap = l.snapshot("ns:bob")
	l.invalidate("ns:bob")
	require.True(t, l.store("bob", &entry[int]{v: 3, key: "ns:bob"}, l.snapshot("ns:bob")))
	assert.False(t, l.storeWritten("bob", &entry[int]{v: 4, key: "ns:bob"}, snap, nil))
	_, ok = l.get("bob", 0)
	assert.False(t, ok)
}

// TestLocalKeepWritten: the early copy of a load stays in place when it is
// the only copy of its Redis key and expires no later than what was written;
// otherwise a copy expiring with the write replaces it, the other typed
// keys' copies go, and a read from before the write stores nothing, as with
// storeWritten.
func TestLocalKeepWritten(t *testing.T) {
	t.Parallel()
	l := newLocal[string, int](10 * copyWeight("ns:alice", 0))
	early := &entry[int]{v: 1, key: "ns:bob", expireAt: 1000}
	require.True(t, l.store("bob", early, l.snapshot("ns:bob")))
	snap := l.snapshot("ns:bob")
	readSnap := l.snapshot("ns:bob")
	require.True(t, l.keepWritten("bob", early, 2000, snap, nil))
	e, ok := l.get("bob", 0)
	require.True(t, ok)
	assert.Same(t, early, e, "the early copy stays")
	assert.EqualValues(t, 1000, e.expireAt, "expiring no later than what was written")
	assert.False(t, l.store("bob", &entry[int]{v: 0, key: "ns:bob"}, readSnap), "a read from before the write does not store")

	// It would outlive what was written: replaced by a copy expiring with it.
	early = &entry[int]{v: 2, key: "ns:bob", expireAt: 3000}
	require.True(t, l.store("bob", early, l.snapshot("ns:bob")))
	require.True(t, l.keepWritten("bob", early, 2500, l.snapshot("ns:bob"), nil))
	e, ok = l.get("bob", 0)
	require.True(t, ok)
	assert.NotSame(t, early, e)
	assert.Equal(t, 2, e.v)
	assert.EqualValues(t, 2500, e.expireAt)
	assert.EqualValues(t, 3000, early.expireAt, "the entry callers hold is not touched")

	// Another typed key of the Redis key has a copy: it goes, and bob gets
	// a copy of its own.
	early = &entry[int]{v: 3, key: "ns:bob", expireAt: 1000}
	require.True(t, l.store("bob", early, l.snapshot("ns:bob")))
	require.True(t, l.store("Bob", &entry[int]{v: 3, key: "ns:bob"}, l.snapshot("ns:bob")))
	require.True(t, l.keepWritten("bob", early, 2000, l.snapshot("ns:bob"), nil))
	_, ok = l.get("Bob", 0)
	assert.False(t, ok, "the other typed key's copy is dropped")
	e, ok = l.get("bob", 0)
	require.True(t, ok)
	assert.NotSame(t, early, e)
	assert.EqualValues(t, 2000, e.expireAt)

	// The early copy was dropped (an invalidation) and another stored since:
	// that one is not taken for it.
	early = &entry[int]{v: 4, key: "ns:bob", expireAt: 1000}
	require.True(t, l.store("bob", early, l.snapshot("ns:bob")))
	l.invalidate("ns:bob")
	other := &entry[int]{v: 5, key: "ns:bob", expireAt: 1000}
	require.True(t, l.store("bob", other, l.snapshot("ns:bob")))
	require.True(t, l.keepWritten("bob", early, 2000, l.snapshot("ns:bob"), nil))
	e, ok = l.get("bob", 0)
	require.True(t, ok)
	assert.Equal(t, 4, e.v, "the written value")
	assert.NotSame(t, other, e)

	// An invalidation since the write's snapshot: nothing stays.
	early = &entry[int]{v: 6, key: "ns:bob", expireAt: 1000}
	require.True(t, l.store("bob", early, l.snapshot("ns:bob")))
	snap = l.snapshot("ns:bob")
	l.invalidate("ns:bob")
	require.True(t, l.store("bob", early, l.snapshot("ns:bob")))
	assert.False(t, l.keepWritten("bob", early, 2000, snap, nil))
	_, ok = l.get("bob", 0)
	assert.False(t, ok)
}

// sharingKeys returns three Redis keys of l whose invalidation counter is
// the same.
func sharingKeys[K comparable, V any](t *testing.T, l *local[K, V]) [3]string {
	t.Helper()
	seen := map[uint32][]string{}
	for i := 0; ; i++ {
		key := fmt.Sprintf("ns:%d", i)
		h := l.hash(key)
		seen[h] = append(seen[h], key)
		if len(seen[h]) == 3 {
			return [3]string(seen[h])
		}
	}
}

func TestLocalOwnMoves(t *testing.T) {
	t.Parallel()
	l := newLocal[string, int](100 * copyWeight("ns:00000", 0))
	keys := sharingKeys(t, l)
	a, b, c := keys[0], keys[1], keys[2]
	stored := func(key string) bool {
		_, ok := l.get(key, 0)
		return ok
	}

	// The writes of one batch: the second and third keep their copies
	// although the first moved their counter, and so did the second.
	own := ownMoves{}
	sa, sb, sc := l.snapshot(a), l.snapshot(b), l.snapshot(c)
	require.True(t, l.storeWritten(a, &entry[int]{v: 1, key: a}, sa, own))
	assert.True(t, l.storeWritten(b, &entry[int]{v: 1, key: b}, sb, own), "the batch's own move")
	assert.True(t, l.storeWritten(c, &entry[int]{v: 1, key: c}, sc, own), "two moves of the batch's own")
	assert.True(t, stored(a) && stored(b) && stored(c))

	// Without them, the move of a write of another key of the counter
	// drops the copy, as an invalidation would.
	sa, sb = l.snapshot(a), l.snapshot(b)
	require.True(t, l.storeWritten(a, &entry[int]{v: 2, key: a}, sa, nil))
	assert.False(t, l.storeWritten(b, &entry[int]{v: 2, key: b}, sb, nil))
	assert.False(t, stored(b))

	// An invalidation between two writes of the batch: the writes after it
	// keep nothing.
	own = ownMoves{}
	sa, sb, sc = l.snapshot(a), l.snapshot(b), l.snapshot(c)
	require.True(t, l.storeWritten(a, &entry[int]{v: 3, key: a}, sa, own))
	l.invalidate(b)
	assert.False(t, l.storeWritten(b, &entry[int]{v: 3, key: b}, sb, own))
	assert.False(t, l.storeWritten(c, &entry[int]{v: 3, key: c}, sc, own))
	assert.False(t, stored(b) || stored(c))

	// An invalidation after the snapshots, before the batch's first
	// write: that write too keeps nothing, and neither do the others.
	own = ownMoves{}
	sa, sb = l.snapshot(a), l.snapshot(b)
	l.invalidate(c)
	assert.False(t, l.keepWritten(a, &entry[int]{v: 4, key: a}, 0, sa, own))
	assert.False(t, l.keepWritten(b, &entry[int]{v: 4, key: b}, 0, sb, own))
	assert.False(t, stored(a) || stored(b))
}

func TestLocalExpiryAndBudget(t *testing.T) {
	t.Parallel()
	budget := 8 * copyWeight("ns:aa", 100)
	l := newLocal[int, int](budget)
	require.True(t, l.store(1, &entry[int]{v: 1, key: "ns:1", expireAt: 100}, l.snapshot("ns:1")))
	_, ok := l.get(1, 99)
	assert.True(t, ok)
	_, ok = l.get(1, 100)
	assert.False(t, ok, "expired at its hard expiry")
	assert.Equal(t, 0, l.len())
	for i := range 1000 {
		key := "ns:" + string(rune('a'+i%26)) + string(rune('a'+i/26%26))
		l.store(i, &entry[int]{v: i, key: key, size: 100}, l.snapshot(key))
		l.get(i, 0)
	}
	assert.LessOrEqual(t, l.weight(), budget, "the copies weigh no more than the budget")
	assert.Positive(t, l.len())
	assert.Equal(t, l.len(), indexed(l), "an evicted copy leaves no index entry behind")

	none := newLocal[int, int](-1)
	assert.False(t, none.store(1, &entry[int]{v: 1, key: "ns:1"}, none.snapshot("ns:1")), "no copies at all")
	_, ok = none.get(1, 0)
	assert.False(t, ok)
}

// indexed counts the typed keys that l's index holds.
func indexed[K comparable, V any](l *local[K, V]) int {
	n := 0
	for i := range l.stripes {
		st := &l.stripes[i]
		st.mu.Lock()
		for _, ks := range st.rev {
			n += len(ks)
		}
		st.mu.Unlock()
	}
	return n
}

func TestLocalWeighsTheStoredSize(t *testing.T) {
	t.Parallel()
	l := newLocal[int, int](1 << 20)
	l.store(1, &entry[int]{key: "ns:1", size: 1000}, l.snapshot("ns:1"))
	l.store(2, &entry[int]{key: "ns:22", size: 10}, l.snapshot("ns:22"))
	assert.Equal(t, copyWeight("ns:1", 1000)+copyWeight("ns:22", 10), l.weight())
	l.invalidate("ns:1")
	assert.Equal(t, copyWeight("ns:22", 10), l.weight())
}

func TestEchoesAreCountedPerKey(t *testing.T) {
	t.Parallel()
	c := &Client{echoes: map[string]int{}}
	c.expectEcho("ns:a")
	c.expectEcho("ns:a")
	c.expectEcho("ns:b")
	take := func(key string) bool {
		c.echoMu.Lock()
		defer c.echoMu.Unlock()
		return c.takeEcho(key)
	}
	assert.True(t, take("ns:a"))
	c.cancelEcho("ns:a")
	assert.False(t, take("ns:a"), "two expected, one taken, one withdrawn")
	assert.False(t, take("ns:c"))
	c.cancelEcho("ns:b")
	assert.False(t, take("ns:b"))
	c.cancelEcho("ns:never") // nothing to withdraw
	assert.Empty(t, c.echoes)
}

func TestWaitsWakeEveryRegistration(t *testing.T) {
	t.Parallel()
	var w waits
	a, b := make(chan struct{}, 1), make(chan struct{}, 1)
	w.register("k", a)
	w.register("k", b)
	w.register("other", b)
	w.wake("k")
	w.wake("k") // a full channel is not blocked on
	assert.Len(t, a, 1)
	assert.Len(t, b, 1)
	<-a
	<-b
	w.unregister("k", a)
	w.wake("k")
	assert.Empty(t, a, "unregistered")
	assert.Len(t, b, 1)
	<-b
	w.unregister("k", b)
	w.wakeAll()
	assert.Len(t, b, 1, "still registered for other")
	w.unregister("other", b)
	assert.Empty(t, w.m)
}
