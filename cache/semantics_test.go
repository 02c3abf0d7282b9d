package cache_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/internal/envelope"
	"github.com/aside-go/aside/loader"
	"github.com/aside-go/aside/ttlpolicy"
)

// markerCache is a cache of strings whose loader finds nothing for keys
// starting with "nf" and remembers that for a minute.
func markerCache(t *testing.T, client *cache.Client, ns string) *cache.Cache[string, string] {
	t.Helper()
	c, err := cache.New(client, cache.Options[string, string]{
		Namespace: ns,
		TTL:       ttlpolicy.Minutes(5).WithNegativeTTL(time.Minute),
		Loader: func(_ context.Context, k string) (string, error) {
			if len(k) >= 2 && k[:2] == "nf" {
				return "", loader.ErrNotFound
			}
			return "loaded " + k, nil
		},
	})
	require.NoError(t, err)
	return c
}

// rawOf returns what Redis holds under key and its PTTL, read beside aside.
func rawOf(t *testing.T, rc rueidis.Client, key string) (string, int64) {
	t.Helper()
	ctx := context.Background()
	v, err := rc.Do(ctx, rc.B().Get().Key(key).Build()).ToString()
	if rueidis.IsRedisNil(err) {
		v, err = "<nil>", nil
	}
	require.NoError(t, err)
	pttl, err := rc.Do(ctx, rc.B().Pttl().Key(key).Build()).AsInt64()
	require.NoError(t, err)
	return v, pttl
}

// TestNotFoundIsNoKey: a key holding a not-found marker, or a lease, is a
// key that does not exist for every operation (Exists 0, TTL ErrKeyMissing,
// Expire, ExpireAt and Persist false and nothing changed, Delete removes it
// and counts 0), where a value, and a key of another type, count as keys.
func TestNotFoundIsNoKey(t *testing.T) {
	t.Parallel()
	for _, topo := range topologies() {
		t.Run(topo.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			client := connectWith(t, topo.opt(t))
			rc := client.Rueidis()
			c := markerCache(t, client, namespace(t))

			// A not-found marker, in Redis and in process memory.
			_, err := c.Get(ctx, "nf1")
			require.ErrorIs(t, err, cache.ErrNotFound)
			warm(t, c, "nf1")
			// A not-found marker in Redis only (another process's).
			other := markerCache(t, connectWith(t, topo.opt(t)), nsOf(c))
			_, err = other.Get(ctx, "nf2")
			require.ErrorIs(t, err, cache.ErrNotFound)
			// Its write is the other's: c does not wait for it.
			require.NoError(t, cache.AwaitWrites(ctx, other, "nf2"))
			// A lease of a load in progress elsewhere.
			lease := envelope.Encode(envelope.Lease, false, time.Time{}, []byte("0123456789abcdef"))
			require.NoError(t, rc.Do(ctx, rc.B().Set().Key(c.Key("leased")).Value(rueidis.BinaryString(lease)).PxMilliseconds(60_000).Build()).Error())
			// A value, and a key of another type.
			require.NoError(t, c.Set(ctx, "v", "value", cache.WithTTL(time.Minute)))
			require.NoError(t, rc.Do(ctx, rc.B().Hset().Key(c.Key("hash")).FieldValue().FieldValue("f", "1").Build()).Error())
			require.NoError(t, rc.Do(ctx, rc.B().Pexpire().Key(c.Key("hash")).Milliseconds(60_000).Build()).Error())

			noKeys := []string{"nf1", "nf2", "leased", "missing"}
			n, err := c.Exists(ctx, append(noKeys, "v", "hash")...)
			require.NoError(t, err)
			assert.Equal(t, 2, n, "only the value and the hash exist")

			for _, k := range noKeys {
				before, beforeTTL := rawOf(t, rc, c.Key(k))
				_, err := c.TTL(ctx, k)
				require.ErrorIs(t, err, cache.ErrKeyMissing, k)
				assert.Equal(t, "cache: ttl "+c.Key(k)+": no such key", err.Error())
				for name, op := range map[string]func() (bool, error){
					"Expire":         func() (bool, error) { return c.Expire(ctx, k, time.Hour) },
					"Expire(0)":      func() (bool, error) { return c.Expire(ctx, k, 0) },
					"ExpireAt":       func() (bool, error) { return c.ExpireAt(ctx, k, time.Now().Add(time.Hour)) },
					"ExpireAt(past)": func() (bool, error) { return c.ExpireAt(ctx, k, time.Now().Add(-time.Hour)) },
					"Persist":        func() (bool, error) { return c.Persist(ctx, k) },
				} {
					ok, err := op()
					require.NoError(t, err, "%s %s", name, k)
					assert.False(t, ok, "%s of %s", name, k)
				}
				after, afterTTL := rawOf(t, rc, c.Key(k))
				assert.Equal(t, before, after, "%s is left as it was", k)
				assert.LessOrEqual(t, afterTTL, beforeTTL, "%s keeps its expiry", k)
				if beforeTTL > 0 {
					assert.Positive(t, afterTTL, "%s keeps its expiry", k)
				}
			}

			d, err := c.TTL(ctx, "hash")
			require.NoError(t, err)
			assert.Positive(t, d, "a key of another type has its TTL")
			ok, err := c.Persist(ctx, "hash")
			require.NoError(t, err)
			assert.True(t, ok)
			d, err = c.TTL(ctx, "hash")
			require.NoError(t, err)
			assert.Equal(t, cache.NoExpiry, d)
			ok, err = c.Expire(ctx, "v", time.Hour)
			require.NoError(t, err)
			assert.True(t, ok)

			n, err = c.Delete(ctx, append(noKeys, "v", "hash")...)
			require.NoError(t, err)
			assert.Equal(t, 2, n, "Delete counts the value and the hash only")
			for _, k := range append(noKeys, "v", "hash") {
				raw, _ := rawOf(t, rc, c.Key(k))
				assert.Equal(t, "<nil>", raw, "%s is gone, markers and lease included", k)
			}
			_, err = c.Get(ctx, "leased")
			require.NoError(t, err, "the lease deleted, the next Get loads")
		})
	}
}

func nsOf[K comparable, V any](c *cache.Cache[K, V]) string {
	var zero K
	key := c.Key(zero)
	for i := range key {
		if key[i] == ':' {
			return key[:i]
		}
	}
	return key
}

// TestDeleteCountsRaceWithSet: a Delete racing with a Set over a not-found
// marker counts the value exactly when it removed it: either it ran first
// (it removed the marker, counted 0, and the value stays) or second (it
// removed the value and counted 1). A Delete that read the key and deleted
// it in two steps would count 0 and remove the value when the Set fell in
// between.
func TestDeleteCountsRaceWithSet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := connect(t, shared)
	c := markerCache(t, client, namespace(t))
	rc := client.Rueidis()
	firsts := map[bool]int{}
	for i := range 300 {
		_, err := c.Get(ctx, "nf")
		require.ErrorIs(t, err, cache.ErrNotFound, "round %d", i)
		var wg sync.WaitGroup
		var n int
		var derr, serr error
		wg.Go(func() { n, derr = c.Delete(ctx, "nf") })
		wg.Go(func() { serr = c.Set(ctx, "nf", "v") })
		wg.Wait()
		require.NoError(t, derr)
		require.NoError(t, serr)
		raw, _ := rawOf(t, rc, c.Key("nf"))
		valueLeft := raw != "<nil>"
		assert.Equal(t, !valueLeft, n == 1, "round %d: Delete counted %d, value left: %v", i, n, valueLeft)
		firsts[valueLeft]++
		_, err = c.Delete(ctx, "nf")
		require.NoError(t, err)
	}
	t.Logf("Delete first: %d rounds, Set first: %d", firsts[true], firsts[false])
}
