package cache_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/codec"
	"github.com/aside-go/aside/internal/redistest"
	"github.com/aside-go/aside/invalidation"
	"github.com/aside-go/aside/loader"
)

// TestErrorTextsReadOnce: no error text repeats a prefix ("cache: connect:
// cache: redis unavailable" was one); a few are checked to the letter, the
// rest for "cache: " appearing once.
func TestErrorTextsReadOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := connect(t, shared)
	ns := namespace(t)
	c := markerCache(t, client, ns)
	plain, err := cache.New(client, cache.Options[string, string]{Namespace: ns})
	require.NoError(t, err)
	rc := client.Rueidis()
	require.NoError(t, rc.Do(ctx, rc.B().Set().Key(ns+":garbage").Value("\xae\x01\xff").Build()).Error())

	// A server that goes away, for the unavailable errors.
	gone := redistest.Start(t, redistest.Config{})
	goneClient := connect(t, gone)
	failFast, err := cache.New(goneClient, cache.Options[string, string]{Namespace: ns, OnRedisDown: cache.FailFast})
	require.NoError(t, err)
	require.NoError(t, gone.Close())
	_, err = cache.Connect(rueidis.ClientOption{InitAddress: []string{gone.Addr()}}, cache.RequireRedis())
	connectErr := err

	exact := map[string]struct {
		err  error
		is   error
		want string
	}{}
	add := func(name string, err, is error, want string) {
		exact[name] = struct {
			err  error
			is   error
			want string
		}{err, is, want}
	}
	_, err = c.TTL(ctx, "missing")
	add("TTL of a missing key", err, cache.ErrKeyMissing, "cache: ttl "+ns+":missing: no such key")
	add("Set WithTTL(0)", c.Set(ctx, "a", "b", cache.WithTTL(0)), cache.ErrInvalidOptions,
		"cache: set: invalid options: WithTTL(0s): the TTL must be at least 1ms")
	add("Set WithTTL(500µs)", c.Set(ctx, "a", "b", cache.WithTTL(500*time.Microsecond)), cache.ErrInvalidOptions,
		"cache: set: invalid options: WithTTL(500µs): the TTL must be at least 1ms")
	add("SetMany WithTTL(-1s)", c.SetMany(ctx, map[string]string{"a": "b"}, cache.WithTTL(-time.Second)), cache.ErrInvalidOptions,
		"cache: set many: invalid options: WithTTL(-1s): the TTL must be at least 1ms")
	add("Set WithTags(\"\")", c.Set(ctx, "a", "b", cache.WithTags("t", "")), cache.ErrInvalidOptions,
		"cache: set: invalid options: WithTags: an empty tag")
	_, err = c.InvalidatePattern(ctx, "[")
	add("InvalidatePattern([)", err, invalidation.ErrPattern,
		`cache: invalidate pattern "[": invalidation: invalid pattern: the [ at offset 0 is never closed (escape it as \[ to match a bracket)`)
	_, err = c.InvalidatePattern(ctx, `x\`)
	add(`InvalidatePattern(x\)`, err, invalidation.ErrPattern,
		`cache: invalidate pattern "x\\": invalidation: invalid pattern: ends in a lone backslash at offset 1 (escape it as \\)`)
	_, err = c.InvalidatePattern(ctx, "*", cache.WithScanCount(0))
	add("WithScanCount(0)", err, cache.ErrInvalidOptions,
		`cache: invalidate pattern "*": invalid options: WithScanCount(0): the count must be at least 1`)
	_, err = c.InvalidateTag(ctx, "")
	add("InvalidateTag(\"\")", err, cache.ErrInvalidOptions,
		"cache: invalidate: invalid options: Tags("+ns+"): an empty tag")
	_, err = cache.New(client, cache.Options[string, string]{})
	add("New without a namespace", err, cache.ErrInvalidOptions, "cache: invalid options: Namespace: required")
	add("Connect to a server that is gone", connectErr, cache.ErrUnavailable, "")
	_, err = plain.Get(ctx, "garbage")
	add("Get of bytes aside cannot read", err, cache.ErrCorrupt, "")
	_, err = plain.Get(ctx, "none")
	add("Get without a loader", err, cache.ErrNotFound, "cache: get "+ns+":none: loader: not found (no loader)")
	_, err = c.Get(ctx, "nf1")
	add("Get of a record the source does not have", err, cache.ErrNotFound, "cache: get "+ns+":nf1: loader: not found")
	require.NoError(t, cache.AwaitWrites(ctx, c, "nf1"))
	for range 2 { // from Redis, then from process memory
		_, err = c.Get(ctx, "nf1")
		add("Get of a cached not-found marker", err, cache.ErrNotFound, "cache: get "+ns+":nf1: loader: not found (a cached not-found marker)")
	}
	failing, err := cache.New(client, cache.Options[int, string]{Namespace: ns + "-failing", Codec: codec.String(),
		Loader: func(context.Context, int) (string, error) { return "", errors.New("database down") }})
	require.NoError(t, err)
	_, err = failing.Get(ctx, 7)
	add("Get whose load failed", err, nil, "cache: get "+ns+"-failing:7: load: database down")
	var ke *loader.KeyError[int]
	require.ErrorAs(t, err, &ke, "a failed Get names its key in a *loader.KeyError")
	assert.Equal(t, 7, ke.Key)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = failing.Get(cancelled, 8)
	add("Get with a cancelled context", err, context.Canceled, "cache: get "+ns+"-failing:8: context canceled")
	_, err = failFast.Get(ctx, "x")
	add("Get with Redis gone", err, cache.ErrUnavailable, "")
	add("Set with Redis gone", failFast.Set(ctx, "x", "y"), cache.ErrUnavailable, "")
	_, err = failFast.TTL(ctx, "x")
	add("TTL with Redis gone", err, cache.ErrUnavailable, "")
	_, err = goneClient.Invalidate(ctx, cache.Keys(failFast, "x"))
	add("Client.Invalidate with Redis gone", err, cache.ErrUnavailable, "")
	_, err = client.Invalidate(ctx, cache.Keys(failFast, "x"))
	add("Client.Invalidate of another client's cache", err, cache.ErrInvalidOptions,
		`cache: invalidate: invalid options: the cache of namespace "`+ns+`" is a cache of another Client`)

	for name, tc := range exact {
		require.Error(t, tc.err, name)
		if tc.is != nil {
			assert.ErrorIs(t, tc.err, tc.is, name)
		}
		text := tc.err.Error()
		t.Logf("%s: %s", name, text)
		if tc.want != "" {
			assert.Equal(t, tc.want, text, name)
		}
		assert.Equal(t, 1, strings.Count(text, "cache: "), "%s: %q names the package once", name, text)
		for _, sentinel := range []error{cache.ErrUnavailable, cache.ErrKeyMissing, cache.ErrCorrupt, cache.ErrInvalidOptions} {
			if errors.Is(tc.err, sentinel) {
				assert.Equal(t, 1, strings.Count(text, sentinel.Error()), "%s: %q", name, text)
			}
		}
	}
	assert.True(t, strings.HasPrefix(connectErr.Error(), "cache: connect: redis unavailable: "), connectErr.Error())
}
