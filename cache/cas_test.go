package cache_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/internal/redistest"
)

// casServers are the servers with compare-and-set that scripts/ensure-servers
// installs beside the project (make test and CI install them): Valkey 9
// (SET IFEQ, DELIFEQ) and Redis 8.6 (SET IFEQ, DELEX), by name. Both must be
// there: each has a form of its own. Only with ASIDE_NO_EXTRA_SERVERS=1
// (which `make test SERVERS=` sets, for a machine without apt-get) does a
// missing one skip the test, saying so.
func casServers(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	var missing []string
	for name, bin := range map[string]string{"valkey-9": "valkey-server", "redis-86": "redis-server"} {
		path, err := filepath.Abs(filepath.Join("../.servers", name, "bin", bin))
		require.NoError(t, err)
		if _, err := os.Stat(path); err != nil {
			missing = append(missing, name)
			continue
		}
		out[name] = path
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("no %v server with compare-and-set: run scripts/ensure-servers %s", missing, strings.Join(missing, " "))
		if os.Getenv("ASIDE_NO_EXTRA_SERVERS") == "1" {
			t.Skip(msg + " (skipped: ASIDE_NO_EXTRA_SERVERS=1)")
		}
		t.Fatal(msg + ", or set ASIDE_NO_EXTRA_SERVERS=1 to skip the tests that need it")
	}
	return out
}

// On Valkey 9 and Redis 8.6 a load's write is the compare-and-set
// transaction, not the script, and keeps every property of the script's:
// the value lands only under the load's own lease, its echo is the one push
// that comes back (the copy stays), the key is tracked again after it
// (another process's change reaches the copy), and a failed load's release
// deletes only its own lease.
func TestCompareAndSetWrite(t *testing.T) {
	t.Parallel()
	for name, bin := range casServers(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			compareAndSetWrite(t, redistest.Start(t, redistest.Config{Binary: bin}))
		})
	}
}

func compareAndSetWrite(t *testing.T, srv *redistest.Server) {
	ctx := testContext(t)
	ns := namespace(t)
	src, g := gatedSource()
	pc, w := watchedClient(t, srv.ClientOption())
	setIfEq, delIfEq := cache.CompareAndSet(pc)
	require.True(t, setIfEq && delIfEq, "the server has SET IFEQ, and DELIFEQ or DELEX")
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

	// A failed load releases its own lease with DELIFEQ or DELEX.
	boom := errors.New("boom")
	failing := versionCache(t, pc, ns, src, func(o *cache.Options[string, int64]) {
		o.Loader = func(context.Context, string) (int64, error) { return 0, boom }
	})
	before = commandCalls(t, srv)
	_, err = failing.Get(ctx, "f")
	require.ErrorIs(t, err, boom)
	require.NoError(t, cache.AwaitWrites(ctx, failing, "f"))
	after = commandCalls(t, srv)
	assert.Equal(t, before["delifeq"]+before["delex"]+1, after["delifeq"]+after["delex"], "the release is one DELIFEQ or DELEX")
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

	// A release meets the same refusal, of DELIFEQ or DELEX.
	boom := errors.New("boom")
	failing := versionCache(t, client, ns, src, func(o *cache.Options[string, int64]) {
		o.Loader = func(context.Context, string) (int64, error) { return 0, boom }
	})
	for i, force := range []func(*cache.Client){cache.ForceCompareAndSet, cache.ForceDelEx} {
		force(client)
		key := fmt.Sprintf("f%d", i)
		_, err = failing.Get(ctx, key)
		require.ErrorIs(t, err, boom)
		require.NoError(t, cache.AwaitWrites(ctx, failing, key))
		n, err := srv.Do(ctx, "EXISTS", p.Key(key))
		require.NoError(t, err)
		assert.Equal(t, "0", n, "the lease is gone")
		_, delIfEq = cache.CompareAndSet(client)
		assert.False(t, delIfEq, "the client stopped sending the deletion")
	}
}

// A user whose ACL allows transactions but not DELIFEQ or DELEX (the
// README's line, which Redis 7 could not take with +delifeq or +delex):
// writes stay transactions, releases go back to the script.
func TestCompareAndSetWithoutDeletePermission(t *testing.T) {
	t.Parallel()
	for name, bin := range casServers(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ns := namespace(t)
			compareAndSetWithoutDeletePermission(t, ns, redistest.Start(t, redistest.Config{Binary: bin, Users: []redistest.User{{
				Name: "app", Password: "secret", Rules: redistest.CacheUserRules(ns),
			}}}))
		})
	}
}

func compareAndSetWithoutDeletePermission(t *testing.T, ns string, srv *redistest.Server) {
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
