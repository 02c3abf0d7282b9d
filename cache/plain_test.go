package cache_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/codec"
	"github.com/aside-go/aside/internal/redistest"
	"github.com/aside-go/aside/loader"
	"github.com/aside-go/aside/ttlpolicy"
)

type doc struct {
	Name string `json:"name"`
	N    int    `json:"n"`
}

func plainDocs(t testing.TB, client *cache.Client, ns string, load loader.Func[string, doc], opts ...func(*cache.Options[string, doc])) *cache.Cache[string, doc] {
	t.Helper()
	o := cache.Options[string, doc]{Namespace: ns, Codec: codec.JSON[doc](), Plain: true, Loader: load}
	for _, f := range opts {
		f(&o)
	}
	c, err := cache.New(client, o)
	require.NoError(t, err)
	return c
}

// TestPlainStoresTheCodecsBytes: in plain mode what Set and a load write is
// exactly the codec's bytes, with the TTL asked for, and nothing else is left
// in the namespace (the lease key is gone once the load wrote), on either
// topology; what another client reads is those bytes.
func TestPlainStoresTheCodecsBytes(t *testing.T) {
	t.Parallel()
	for _, topo := range topologies() {
		t.Run(topo.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			opt := topo.opt(t)
			rc := other(t, opt)
			ns := namespace(t)
			c := plainDocs(t, connectWith(t, opt), ns, func(_ context.Context, k string) (doc, error) { return doc{Name: k, N: len(k)}, nil })
			want := func(d doc) string { b, _ := json.Marshal(d); return string(b) }

			require.NoError(t, c.Set(ctx, "set", doc{Name: "set", N: 1}, cache.WithTTL(90*time.Second)))
			raw, ok := rawGet(t, rc, c.Key("set"))
			require.True(t, ok)
			assert.Equal(t, want(doc{Name: "set", N: 1}), raw)
			p := rawPTTL(t, rc, c.Key("set"))
			assert.True(t, p > 0 && p <= 90_000, "PTTL %d", p)

			// The copy in process memory follows another program's change.
			_, err := c.Get(ctx, "set")
			require.NoError(t, err)
			rawSet(t, rc, c.Key("set"), `{"name":"changed","n":2}`, 0)
			require.Eventually(t, func() bool {
				v, err := c.Get(ctx, "set")
				return err == nil && v == doc{Name: "changed", N: 2}
			}, 10*time.Second, time.Millisecond)

			// Keys with and without hash tags, and braces that make none.
			keys := []string{"plain", "{tag}:a", "x{tag}y", "a}b", "{}x", "{a", "}{", "{user:1}"}
			got, err := c.GetMany(ctx, keys)
			require.NoError(t, err)
			require.NoError(t, cache.AwaitWrites(ctx, c, keys...))
			for _, k := range keys {
				assert.Equal(t, doc{Name: k, N: len(k)}, got[k])
				raw, ok := rawGet(t, rc, c.Key(k))
				require.True(t, ok, k)
				assert.Equal(t, want(doc{Name: k, N: len(k)}), raw, k)
				_, leased := rawGet(t, rc, cache.LeaseKey(ns, c.Key(k)))
				assert.False(t, leased, "%s: no lease left", k)
			}
			n, err := c.Delete(ctx, keys...)
			require.NoError(t, err)
			assert.Equal(t, len(keys), n, "Delete counts the values, not the leases")
		})
	}
}

// TestLeaseKeyIsInTheValuesSlot: the lease key of any value key is in the
// value key's cluster slot, as Redis computes it (CLUSTER KEYSLOT), names
// its value key back, and differs for different value keys.
func TestLeaseKeyIsInTheValuesSlot(t *testing.T) {
	t.Parallel()
	opt := topologies()[1].opt(t)
	rc := other(t, opt)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(5, 6))
	alphabet := []byte("ab{}:x{}")
	keys := []string{"", "{", "}", "{}", "}{", "{a}", "a{b}c", "{}{a}", "a}b", "{a", "a{}b}", "{user:1}:profile"}
	for range 400 {
		b := make([]byte, r.IntN(10))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		keys = append(keys, string(b))
	}
	seen := map[string]string{}
	for _, part := range keys {
		vk := "ns:" + part
		lk := cache.LeaseKey("ns", vk)
		if prev, dup := seen[lk]; dup && prev != vk {
			t.Fatalf("%q and %q share the lease key %q", prev, vk, lk)
		}
		seen[lk] = vk
		back, ns, ok := cache.ValueKeyOf(lk)
		require.True(t, ok, lk)
		assert.Equal(t, vk, back, lk)
		assert.Equal(t, "ns", ns)
		slots := rc.DoMulti(ctx, rc.B().ClusterKeyslot().Key(vk).Build(), rc.B().ClusterKeyslot().Key(lk).Build())
		vs, err := slots[0].AsInt64()
		require.NoError(t, err)
		ls, err := slots[1].AsInt64()
		require.NoError(t, err)
		require.Equal(t, vs, ls, "value key %q, lease key %q", vk, lk)
		_, _, isLease := cache.ValueKeyOf(vk)
		assert.False(t, isLease, "a value key is no lease key: %q", vk)
	}
}

// TestPlainRefusesEnvelopeOptions: the options that need the envelope fail
// New in plain mode, naming the field.
func TestPlainRefusesEnvelopeOptions(t *testing.T) {
	t.Parallel()
	client := connect(t, shared)
	for field, set := range map[string]func(*cache.Options[string, doc]){
		"TTL": func(o *cache.Options[string, doc]) { o.TTL = ttlpolicy.Minutes(5).WithSoft(0.8) },
		"TTL (a rule)": func(o *cache.Options[string, doc]) {
			o.TTL = ttlpolicy.ByPrefix(ttlpolicy.Minutes(5), ttlpolicy.Rule{Prefix: "hot:", Policy: ttlpolicy.Minutes(1).WithSoft(0.5)})
		},
		"Refresh":            func(o *cache.Options[string, doc]) { o.Refresh = cache.RefreshSync },
		"RefreshConcurrency": func(o *cache.Options[string, doc]) { o.RefreshConcurrency = 2 },
		"RefreshTimeout":     func(o *cache.Options[string, doc]) { o.RefreshTimeout = time.Second },
	} {
		o := cache.Options[string, doc]{Namespace: "p", Codec: codec.JSON[doc](), Plain: true}
		set(&o)
		_, err := cache.New(client, o)
		require.ErrorIs(t, err, cache.ErrInvalidOptions, field)
		name, _, _ := strings.Cut(field, " ")
		assert.Contains(t, err.Error(), name+":", field)
		o.Plain = false
		_, err = cache.New(client, o)
		assert.NoError(t, err, "%s works with the envelope", field)
	}
}

// TestPlainRefusesTheMagic: a codec.Bytes value beginning with the
// envelope's magic cannot be stored plain (aside would read it back as its
// own entry): Set fails with ErrEncode and writes nothing; the envelope
// stores it.
func TestPlainRefusesTheMagic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := connect(t, shared)
	ns := namespace(t)
	plain, err := cache.New(client, cache.Options[string, []byte]{Namespace: ns, Codec: codec.Bytes(), Plain: true})
	require.NoError(t, err)
	err = plain.Set(ctx, "k", []byte{0xc1, 1, 2})
	require.ErrorIs(t, err, codec.ErrEncode)
	_, ok := rawGet(t, other(t, shared.ClientOption()), plain.Key("k"))
	assert.False(t, ok)
	require.NoError(t, plain.Set(ctx, "k", []byte{0xc0, 1, 2}))
	wrapped, err := cache.New(client, cache.Options[string, []byte]{Namespace: ns + "-e", Codec: codec.Bytes()})
	require.NoError(t, err)
	require.NoError(t, wrapped.Set(ctx, "k", []byte{0xc1, 1, 2}))
	v, err := wrapped.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, []byte{0xc1, 1, 2}, v)
}

// TestPlainNotFoundIsNotRemembered: with no markers, a key the loader does
// not find leaves nothing in Redis (neither value nor lease), and the next
// Get asks the loader again.
func TestPlainNotFoundIsNotRemembered(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var loads atomic.Int64
	ns := namespace(t)
	c := plainDocs(t, connect(t, shared), ns, func(context.Context, string) (doc, error) {
		loads.Add(1)
		return doc{}, loader.ErrNotFound
	})
	rc := other(t, shared.ClientOption())
	for i := 1; i <= 2; i++ {
		_, err := c.Get(ctx, "gone")
		require.ErrorIs(t, err, cache.ErrNotFound)
		assert.EqualValues(t, i, loads.Load())
		require.NoError(t, cache.AwaitWrites(ctx, c, "gone"))
		_, ok := rawGet(t, rc, c.Key("gone"))
		assert.False(t, ok, "no marker")
		_, ok = rawGet(t, rc, cache.LeaseKey(ns, c.Key("gone")))
		assert.False(t, ok, "the lease is released")
	}
	n, err := c.Exists(ctx, "gone")
	require.NoError(t, err)
	assert.Zero(t, n)
}

// parkedPlain starts a Get of key through a plain cache of its own client
// whose load parks holding the key's lease and returns once it does.
// Closing release lets the load return v.
func parkedPlain(t *testing.T, srv *redistest.Server, ns, key string, v doc, opts ...func(*cache.Options[string, doc])) (holder *cache.Cache[string, doc], release, done chan struct{}) {
	t.Helper()
	parked := make(chan struct{})
	release, done = make(chan struct{}), make(chan struct{})
	holder = plainDocs(t, connect(t, srv), ns, func(context.Context, string) (doc, error) {
		close(parked)
		<-release
		return v, nil
	}, opts...)
	go func() {
		defer close(done)
		_, _ = holder.Get(context.Background(), key)
	}()
	<-parked
	return holder, release, done
}

// TestPlainLeaseIsNotAValue: while a load holds a key's lease, another
// program reading the key finds nothing (the lease is in the lease key),
// and a second process waits for the load instead of loading.
func TestPlainLeaseIsNotAValue(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	holder, release, done := parkedPlain(t, shared, ns, "k", doc{Name: "loaded"})
	rc := other(t, shared.ClientOption())
	_, ok := rawGet(t, rc, holder.Key("k"))
	assert.False(t, ok, "the value key holds no lease")
	lease, ok := rawGet(t, rc, cache.LeaseKey(ns, holder.Key("k")))
	require.True(t, ok, "the lease is in its own key")
	assert.Positive(t, rawPTTL(t, rc, cache.LeaseKey(ns, holder.Key("k"))), "and expires")
	assert.Equal(t, byte(0xc1), lease[0])

	var loads atomic.Int64
	waiter := plainDocs(t, connect(t, shared), ns, func(context.Context, string) (doc, error) { loads.Add(1); return doc{Name: "second"}, nil })
	got := inBackground(func(ctx context.Context) (doc, error) { return waiter.Get(ctx, "k") })
	require.Eventually(t, func() bool { return waiter.Stats().LeaseWaits > 0 }, 10*time.Second, time.Millisecond)
	close(release)
	<-done
	v, err := await(t, got, "the waiter's Get")
	require.NoError(t, err)
	assert.Equal(t, doc{Name: "loaded"}, v)
	assert.Zero(t, loads.Load(), "one load for both processes")
}

// TestPlainDeadLeaseHolderIsTakenOver: a holder whose connections are cut
// mid-load leaves its lease key until LeaseTTL; a second process waits for
// its expiry (pushed: the waiter tracks the lease key), takes over and
// loads once; the holder, thawed, finds its lease gone and writes nothing.
func TestPlainDeadLeaseHolderIsTakenOver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Start(t, redistest.Config{})
	ns := "dead"
	short := func(o *cache.Options[string, doc]) { o.LeaseTTL = 300 * time.Millisecond }
	holder, thaw, holderDone := parkedPlain(t, srv, ns, "k", doc{Name: "stale"}, short)
	_, err := srv.Do(ctx, "CLIENT", "KILL", "TYPE", "normal")
	require.NoError(t, err)

	var loads atomic.Int64
	waiter := plainDocs(t, connect(t, srv), ns, func(context.Context, string) (doc, error) {
		loads.Add(1)
		return doc{Name: "fresh"}, nil
	}, short)
	v, err := waiter.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, doc{Name: "fresh"}, v)
	assert.EqualValues(t, 1, loads.Load())
	assert.Positive(t, waiter.Stats().LeaseWaits, "the waiter waited for the dead holder's lease")

	close(thaw)
	<-holderDone
	require.NoError(t, cache.AwaitWrites(ctx, holder, "k"))
	require.NoError(t, cache.AwaitWrites(ctx, waiter, "k"))
	assert.EqualValues(t, 1, holder.Stats().DiscardedFills, "the holder's lease had expired: it wrote nothing")
	rc := other(t, srv.ClientOption())
	raw, _ := rawGet(t, rc, waiter.Key("k"))
	assert.JSONEq(t, `{"name":"fresh","n":0}`, raw)
}

// TestPlainNoStaleSet: a load that read its source before an invalidation
// (Invalidate, Delete, InvalidateTag, from another process) or a write (Set,
// or another program's SET) does not write its value: the invalidation
// deleted its lease, the write's value stands.
func TestPlainNoStaleSet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rc := other(t, shared.ClientOption())
	for name, change := range map[string]func(c *cache.Cache[string, doc], key string){
		"invalidate": func(c *cache.Cache[string, doc], key string) { require.NoError(t, c.Invalidate(ctx, "k")) },
		"delete": func(c *cache.Cache[string, doc], key string) {
			n, err := c.Delete(ctx, "k")
			require.NoError(t, err)
			assert.Zero(t, n, "no value was there")
		},
		"invalidate pattern": func(c *cache.Cache[string, doc], key string) {
			_, err := c.InvalidatePattern(ctx, "[jk]")
			require.NoError(t, err)
		},
		"invalidate prefix": func(c *cache.Cache[string, doc], key string) {
			_, err := c.InvalidatePrefix(ctx, "k")
			require.NoError(t, err)
		},
		"client invalidate": func(c *cache.Cache[string, doc], key string) {
			cl := connect(t, shared)
			w := plainDocs(t, cl, strings.TrimSuffix(c.Key(""), ":"), nil)
			_, err := cl.Invalidate(ctx, cache.Keys(w, "k"))
			require.NoError(t, err)
		},
		"set":         func(c *cache.Cache[string, doc], key string) { require.NoError(t, c.Set(ctx, "k", doc{Name: "new"})) },
		"foreign set": func(c *cache.Cache[string, doc], key string) { rawSet(t, rc, key, `{"name":"new"}`, 0) },
	} {
		t.Run(name, func(t *testing.T) {
			ns := namespace(t)
			holder, release, done := parkedPlain(t, shared, ns, "k", doc{Name: "old"})
			writer := plainDocs(t, connect(t, shared), ns, nil)
			change(writer, holder.Key("k"))
			close(release)
			<-done
			require.NoError(t, cache.AwaitWrites(ctx, holder, "k"))
			assert.EqualValues(t, 1, holder.Stats().DiscardedFills)
			raw, ok := rawGet(t, rc, holder.Key("k"))
			if strings.Contains(name, "set") {
				require.True(t, ok)
				var d doc
				require.NoError(t, json.Unmarshal([]byte(raw), &d))
				assert.Equal(t, "new", d.Name)
			} else {
				assert.False(t, ok, "the old value was not written")
			}
			_, leased := rawGet(t, rc, cache.LeaseKey(ns, holder.Key("k")))
			assert.False(t, leased)
		})
	}
}

// TestPlainUnreadableIsLeftOrReplaced: in plain mode as with the envelope,
// bytes the codec cannot decode fail the Get and stay, unless
// ReplaceUnreadable.
func TestPlainUnreadableIsLeftOrReplaced(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rc := other(t, shared.ClientOption())
	ns := namespace(t)
	load := func(_ context.Context, k string) (doc, error) { return doc{Name: k}, nil }
	left := plainDocs(t, connect(t, shared), ns, load)
	rawSet(t, rc, left.Key("k"), "not json", 0)
	_, err := left.Get(ctx, "k")
	require.ErrorIs(t, err, cache.ErrCorrupt)
	raw, _ := rawGet(t, rc, left.Key("k"))
	assert.Equal(t, "not json", raw)

	replacing := plainDocs(t, connect(t, shared), ns, load, func(o *cache.Options[string, doc]) { o.ReplaceUnreadable = true })
	v, err := replacing.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, doc{Name: "k"}, v)
	require.NoError(t, cache.AwaitWrites(ctx, replacing, "k"))
	raw, _ = rawGet(t, rc, left.Key("k"))
	assert.JSONEq(t, `{"name":"k","n":0}`, raw)
}
