package cache_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/codec"
	"github.com/aside-go/aside/loader"
)

// TestCloseStopsEveryCall: once Close is called, every call of a cache
// fails with ErrClosed — a Get of a key held in process memory too, and a
// Get of a new key does not call the loader (FailOpen answers for Redis in
// trouble, not for a closed client) — and so do Client.Invalidate, Ping and
// New.
func TestCloseStopsEveryCall(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	client, err := cache.Connect(shared.ClientOption())
	require.NoError(t, err)
	src := newSource()
	src.set("held", 1)
	c := versionCache(t, client, namespace(t), src)
	require.EqualValues(t, 1, warmCopy(t, c, "held"))
	loads := src.loads.Load()
	client.Close()

	closed := func(what string, err error) {
		t.Helper()
		assert.ErrorIs(t, err, cache.ErrClosed, what)
		assert.NotErrorIs(t, err, cache.ErrUnavailable, what)
	}
	_, err = c.Get(ctx, "held")
	closed("Get of a key held in memory", err)
	_, err = c.Get(ctx, "new")
	closed("Get of a new key", err)
	_, err = c.Get(ctx, "held", cache.SkipLocal())
	closed("Get with an option", err)
	_, err = c.GetMany(ctx, []string{"held", "new"})
	closed("GetMany", err)
	assert.Equal(t, loads, src.loads.Load(), "no load after Close")
	closed("Set", c.Set(ctx, "k", 1))
	closed("SetMany", c.SetMany(ctx, map[string]int64{"k": 1}))
	_, err = c.Delete(ctx, "k")
	closed("Delete", err)
	closed("Invalidate", c.Invalidate(ctx, "k"))
	_, err = client.Invalidate(ctx, cache.Keys(c, "k"))
	closed("Client.Invalidate", err)
	_, err = c.InvalidatePattern(ctx, "*")
	closed("InvalidatePattern", err)
	_, err = c.InvalidateTag(ctx, "t")
	closed("InvalidateTag", err)
	_, err = c.Exists(ctx, "held")
	closed("Exists", err)
	_, err = c.TTL(ctx, "held")
	closed("TTL", err)
	_, err = c.Expire(ctx, "held", time.Minute)
	closed("Expire", err)
	closed("Ping", client.Ping(ctx))
	_, err = cache.New(client, cache.Options[string, int64]{Namespace: "late", Codec: codec.MsgPack[int64]()})
	closed("New", err)
	assert.True(t, client.Status().Closed)
}

// TestPingAndStatus: Ping answers nil while every node answers and an
// ErrUnavailable once Redis stops answering, or before the client ever
// reached it; Status says whether the client is connected and when every
// node last answered a heartbeat.
func TestPingAndStatus(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	for _, topo := range topologies() {
		t.Run(topo.name, func(t *testing.T) {
			t.Parallel()
			client := connectWith(t, topo.opt(t))
			require.NoError(t, client.Ping(ctx))
			st := client.Status()
			assert.True(t, st.Connected)
			assert.True(t, st.Tracking)
			assert.False(t, st.Closed)
			assert.False(t, st.LastHeard.IsZero(), "a heartbeat round was answered")
		})
	}

	t.Run("Redis stops answering", func(t *testing.T) {
		t.Parallel()
		px := startCoreProxy(t, shared.Addr())
		client := connectWith(t, px.option(shared.ClientOption()))
		require.NoError(t, client.Ping(ctx))
		px.setDown(true)
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		err := client.Ping(pctx)
		assert.ErrorIs(t, err, cache.ErrUnavailable)
	})

	t.Run("never connected", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		client, err := cache.Connect(rueidis.ClientOption{InitAddress: []string{addr}})
		require.NoError(t, err, "Connect succeeds while Redis is down")
		t.Cleanup(client.Close)
		err = client.Ping(ctx)
		assert.ErrorIs(t, err, cache.ErrUnavailable)
		st := client.Status()
		assert.False(t, st.Connected)
		assert.True(t, st.LastHeard.IsZero())
	})
}

// TestStatsCountLoaderCallsAndKeys: Loads counts the calls of the loader
// functions — Loader once per key, BatchLoader once per batch — and
// KeysLoaded the keys they were asked for.
func TestStatsCountLoaderCallsAndKeys(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	client := connect(t, shared)
	keys := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}

	src := newSource()
	one := versionCache(t, client, namespace(t), src)
	_, err := one.GetMany(ctx, keys)
	require.NoError(t, err)
	s := one.Stats()
	assert.EqualValues(t, len(keys), src.loads.Load())
	assert.EqualValues(t, len(keys), s.Loads, "Loader is called once per key")
	assert.EqualValues(t, len(keys), s.KeysLoaded)

	batches := 0
	many := versionCache(t, client, namespace(t)+"-batch", src, func(o *cache.Options[string, int64]) {
		o.Loader = nil
		o.BatchLoader = func(_ context.Context, ks []string) (map[string]int64, error) {
			batches++
			return nil, errors.Join(loader.ErrNotFound)
		}
	})
	_, err = many.GetMany(ctx, keys)
	require.NoError(t, err)
	s = many.Stats()
	assert.Equal(t, 1, batches)
	assert.EqualValues(t, 1, s.Loads, "BatchLoader is called once per batch")
	assert.EqualValues(t, len(keys), s.KeysLoaded)
}

// TestConnectURL: a redis:// URL connects without a rueidis.ClientOption; an
// unreadable URL, or one that turns TLS verification off, is an invalid
// option, and the error does not repeat the URL's password.
func TestConnectURL(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	client, err := cache.ConnectURL("redis://" + shared.Addr())
	require.NoError(t, err)
	t.Cleanup(client.Close)
	require.NoError(t, client.Ping(ctx))
	assert.True(t, client.Tracking())

	for _, url := range []string{
		"http://user:s3cret@" + shared.Addr(),
		"rediss://user:s3cret@" + shared.Addr() + "?skip_verify=true",
	} {
		_, err := cache.ConnectURL(url)
		require.ErrorIs(t, err, cache.ErrInvalidOptions, url)
		assert.NotContains(t, err.Error(), "s3cret", "the error repeats the password")
	}
}
