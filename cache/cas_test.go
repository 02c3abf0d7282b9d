package cache_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/internal/redistest"
)

// valkeyBinary is a Valkey 9 server (which has SET ... IFEQ and DELIFEQ):
// the one REDIS_SERVER names when it is one, else the one
// scripts/ensure-servers installs beside the project (CI installs it).
func valkeyBinary(t *testing.T) string {
	t.Helper()
	if s := os.Getenv("REDIS_SERVER"); strings.Contains(s, "valkey") {
		return s
	}
	installed, err := filepath.Abs("../.servers/valkey-9/bin/valkey-server")
	require.NoError(t, err)
	if _, err := os.Stat(installed); err != nil {
		t.Skip("no Valkey 9 server: run scripts/ensure-servers")
	}
	return installed
}

// On Valkey 9 a load's write is the compare-and-set transaction, not the
// script, and keeps every property of the script's: the value lands only
// under the load's own lease, its echo is the one push that comes back (the
// copy stays), the key is tracked again after it (another process's change
// reaches the copy), and a failed load's release deletes only its own lease.
func TestCompareAndSetWrite(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Config{Binary: valkeyBinary(t)})
	ctx := testContext(t)
	ns := namespace(t)
	src, g := gatedSource()
	pc, w := watchedClient(t, srv.ClientOption())
	setIfEq, delIfEq := cache.CompareAndSet(pc)
	require.True(t, setIfEq && delIfEq, "Valkey 9 has SET IFEQ and DELIFEQ")
	p := versionCache(t, pc, ns, src)
	q := versionCache(t, connect(t, srv), ns, src)

	src.set("k", 1)
	before := commandCalls(t, srv)
	v, err := p.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, int64(1), v)
	require.NoError(t, cache.AwaitWrites(ctx, p, "k"))
	after := commandCalls(t, srv)
	assert.Equal(t, before["evalsha"], after["evalsha"], "no script")
	assert.Equal(t, before["exec"]+1, after["exec"], "one transaction")

	// The copy stays: the write's echo was expected.
	hits := p.Stats().LocalHits
	v, err = p.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, int64(1), v)
	assert.Greater(t, p.Stats().LocalHits, hits, "the copy the load wrote is kept")

	// Another process's change reaches it.
	_, err = p.Get(ctx, "k", cache.SkipLocal()) // every push of p's own commands has come
	require.NoError(t, err)
	src.set("k", 2)
	mark := w.mark(p.Key("k"))
	require.NoError(t, q.Set(ctx, "k", 2))
	w.awaitPushOf(t, mark, "q's Set")
	v, err = p.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, int64(2), v)

	// A load whose lease was replaced writes nothing: an invalidation
	// between its read of the source and its write wins.
	src.set("j", 1)
	gt := g.park(t, "j", 1)
	read := inBackground(func(ctx context.Context) (int64, error) { return p.Get(ctx, "j") })
	gt.awaitParked(t, "the load of j")
	src.set("j", 5)
	require.NoError(t, q.Invalidate(ctx, "j"))
	gt.free()
	_, err = await(t, read, "the parked load")
	require.NoError(t, err)
	require.NoError(t, cache.AwaitWrites(ctx, p, "j"))
	v, err = q.Get(ctx, "j")
	require.NoError(t, err)
	assert.Equal(t, int64(5), v, "the load that read before the invalidation wrote nothing")

	// A failed load releases its own lease with DELIFEQ.
	boom := errors.New("boom")
	failing := versionCache(t, pc, ns, src, func(o *cache.Options[string, int64]) {
		o.Loader = func(context.Context, string) (int64, error) { return 0, boom }
	})
	before = commandCalls(t, srv)
	_, err = failing.Get(ctx, "f")
	require.ErrorIs(t, err, boom)
	require.NoError(t, cache.AwaitWrites(ctx, failing, "f"))
	assert.Equal(t, before["delifeq"]+1, commandCalls(t, srv)["delifeq"], "the release is one DELIFEQ")
	n, err := srv.Do(ctx, "EXISTS", p.Key("f"))
	require.NoError(t, err)
	assert.Equal(t, "0", n, "the lease is gone")
}

// A server that does not know the commands (Redis 7, made to be sent them
// here as a node of an older version would be after a failover) refuses
// them before the transaction runs: the write goes as the script, and the
// client stops sending them.
func TestCompareAndSetFallsBackToTheScript(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Config{Binary: "redis-server"})
	ctx := testContext(t)
	ns := namespace(t)
	src := newSource()
	client := connect(t, srv)
	setIfEq, delIfEq := cache.CompareAndSet(client)
	require.False(t, setIfEq || delIfEq, "Redis 7 has neither")
	cache.ForceCompareAndSet(client)
	p := versionCache(t, client, ns, src)

	src.set("k", 1)
	v, err := p.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, int64(1), v)
	require.NoError(t, cache.AwaitWrites(ctx, p, "k"))
	setIfEq, delIfEq = cache.CompareAndSet(client)
	assert.False(t, setIfEq || delIfEq, "the client stopped sending them")
	calls := commandCalls(t, srv)
	assert.Positive(t, calls["evalsha"], "the write went as the script")
	q := versionCache(t, connect(t, srv), ns, newSource())
	v, err = q.Get(ctx, "k")
	require.NoError(t, err, "another process reads the value written, without loading")
	assert.Equal(t, int64(1), v)
	assert.Zero(t, q.Stats().Loads)

	// A release meets the same refusal.
	cache.ForceCompareAndSet(client)
	boom := errors.New("boom")
	failing := versionCache(t, client, ns, src, func(o *cache.Options[string, int64]) {
		o.Loader = func(context.Context, string) (int64, error) { return 0, boom }
	})
	_, err = failing.Get(ctx, "f")
	require.ErrorIs(t, err, boom)
	require.NoError(t, cache.AwaitWrites(ctx, failing, "f"))
	n, err := srv.Do(ctx, "EXISTS", p.Key("f"))
	require.NoError(t, err)
	assert.Equal(t, "0", n, "the lease is gone")
	_, delIfEq = cache.CompareAndSet(client)
	assert.False(t, delIfEq, "the client stopped sending DELIFEQ")
}

// A user whose ACL allows transactions but not DELIFEQ (the README's line,
// which Redis 7 could not take with +delifeq): writes stay transactions,
// releases go back to the script.
func TestCompareAndSetWithoutDelIfEqPermission(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	srv := redistest.Start(t, redistest.Config{Binary: valkeyBinary(t), Users: []redistest.User{{
		Name: "app", Password: "secret", Rules: redistest.CacheUserRules(ns),
	}}})
	ctx := testContext(t)
	opt := srv.ClientOption()
	opt.Username, opt.Password = "app", "secret"
	client := connectWith(t, opt)
	setIfEq, delIfEq := cache.CompareAndSet(client)
	require.True(t, setIfEq && delIfEq)
	src := newSource()
	boom := errors.New("boom")
	failing := versionCache(t, client, ns, src, func(o *cache.Options[string, int64]) {
		o.Loader = func(context.Context, string) (int64, error) { return 0, boom }
	})
	_, err := failing.Get(ctx, "f")
	require.ErrorIs(t, err, boom)
	require.NoError(t, cache.AwaitWrites(ctx, failing, "f"))
	n, err := srv.Do(ctx, "EXISTS", failing.Key("f"))
	require.NoError(t, err)
	assert.Equal(t, "0", n, "the lease is gone")
	setIfEq, delIfEq = cache.CompareAndSet(client)
	assert.True(t, setIfEq, "writes stay transactions")
	assert.False(t, delIfEq, "releases are scripts")

	src.set("k", 1)
	p := versionCache(t, client, ns, src)
	v, err := p.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, int64(1), v)
	require.NoError(t, cache.AwaitWrites(ctx, p, "k"))
	raw, err := client.Rueidis().Do(ctx, client.Rueidis().B().Pttl().Key(p.Key("k")).Build()).AsInt64()
	require.NoError(t, err)
	assert.Positive(t, raw, "the value was written")
}
