package invalidation_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/internal/redistest"
	"github.com/aside-go/aside/invalidation"
)

// prefixSeq makes key prefixes unique across the tests sharing a cluster.
var prefixSeq atomic.Int64

func uniquePrefix(name string) string {
	return name + "-" + strconv.FormatInt(prefixSeq.Add(1), 10) + ":"
}

// recorder collects what Pattern reports through its callbacks, which it
// calls from the caller's goroutine.
type recorder struct {
	progress []invalidation.Progress
	deleted  map[string]bool
	calls    int // OnDelete calls
}

func (r *recorder) options(o invalidation.Options) invalidation.Options {
	r.deleted = make(map[string]bool)
	o.Progress = func(p invalidation.Progress) { r.progress = append(r.progress, p) }
	o.OnDelete = func(ks []string) {
		r.calls++
		for _, k := range ks {
			r.deleted[k] = true
		}
	}
	return o
}

// checkProgress asserts the reported totals never go down, never count more
// removed than scanned, name only primaries, and end at the returned count.
func (r *recorder) checkProgress(t *testing.T, d deployment, removed int64) {
	t.Helper()
	require.NotEmpty(t, r.progress)
	var prev invalidation.Progress
	for i, p := range r.progress {
		assert.GreaterOrEqual(t, p.Scanned, prev.Scanned, "Scanned went down at report %d", i)
		assert.GreaterOrEqual(t, p.Removed, prev.Removed, "Removed went down at report %d", i)
		assert.LessOrEqual(t, p.Removed, p.Scanned, "report %d", i)
		assert.Contains(t, d.primaries, p.Node, "report %d names a node that is not a primary", i)
		prev = p
	}
	assert.Equal(t, removed, prev.Removed, "last Progress.Removed")
	assert.Len(t, r.progress, r.calls, "one Progress per OnDelete batch")
}

func TestPrimaries(t *testing.T) {
	t.Parallel()
	for _, top := range topologies() {
		t.Run(top.name, func(t *testing.T) {
			t.Parallel()
			d := top.start(t)
			client := connect(t, d)
			nodes, err := invalidation.Primaries(testContext(t), client)
			require.NoError(t, err)
			addrs := make([]string, len(nodes))
			for i, n := range nodes {
				addrs[i] = n.Addr
				require.NotNil(t, n.Client)
			}
			assert.Equal(t, d.primaries, addrs)
		})
	}
}

func TestPattern(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		opts invalidation.Options
	}{
		{"defaults", invalidation.Options{}},
		{"small pages and batches", invalidation.Options{Count: 10, Batch: 7}},
		{"one key per batch", invalidation.Options{Count: 5000, Batch: 1}},
	}
	for _, top := range topologies() {
		for _, tc := range cases {
			t.Run(top.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				d := top.start(t)
				client := connect(t, d)
				ctx := testContext(t)
				ns := uniquePrefix("pattern")

				doomed := keys(ns+"del:", 1500)
				// Near misses: no ':' after "del", another segment, an
				// upper-case variant, and a key that merely contains the
				// prefix.
				kept := append(keys(ns+"keep:", 200), ns+"del", ns+"dele:1", ns+"DEL:1", "x"+ns+"del:1")
				fill(t, ctx, client, doomed)
				fill(t, ctx, client, kept)
				for addr, ks := range scanNodes(t, ctx, d, d.primaries, ns+"del:*") {
					require.NotEmpty(t, ks, "primary %s holds none of the keys", addr)
				}

				var rec recorder
				n, err := invalidation.Pattern(ctx, client, ns+"del:*", rec.options(tc.opts))
				require.NoError(t, err)
				assert.EqualValues(t, len(doomed), n)
				assert.Equal(t, set(doomed...), rec.deleted, "OnDelete keys")
				rec.checkProgress(t, d, n)

				for addr, ks := range scanNodes(t, ctx, d, d.nodes, ns+"del:*") {
					assert.Empty(t, ks, "left on %s", addr)
				}
				left := union(scanNodes(t, ctx, d, d.nodes, "*"+ns+"*"))
				assert.Equal(t, set(kept...), left, "keys outside the pattern")
			})
		}
	}
}

func TestPatternNoMatch(t *testing.T) {
	t.Parallel()
	for _, top := range topologies() {
		t.Run(top.name, func(t *testing.T) {
			t.Parallel()
			d := top.start(t)
			client := connect(t, d)
			ctx := testContext(t)
			ns := uniquePrefix("nomatch")
			ks := keys(ns, 100)
			fill(t, ctx, client, ks)

			var rec recorder
			n, err := invalidation.Pattern(ctx, client, ns+"nothing:*", rec.options(invalidation.Options{}))
			require.NoError(t, err)
			assert.Zero(t, n)
			assert.Empty(t, rec.deleted)
			assert.Equal(t, set(ks...), union(scanNodes(t, ctx, d, d.nodes, ns+"*")))
		})
	}
}

// TestPatternGlob: Pattern passes the whole glob to Redis, not just a prefix.
func TestPatternGlob(t *testing.T) {
	t.Parallel()
	for _, top := range topologies() {
		t.Run(top.name, func(t *testing.T) {
			t.Parallel()
			d := top.start(t)
			client := connect(t, d)
			ctx := testContext(t)
			ns := uniquePrefix("glob")
			all := keys(ns, 100) // ns0 .. ns99
			fill(t, ctx, client, all)

			endsIn9 := []string{ns + "9"} // and 29 .. 99; "1?" took 19
			for i := 29; i < 100; i += 10 {
				endsIn9 = append(endsIn9, ns+strconv.Itoa(i))
			}
			for _, tc := range []struct {
				glob string
				gone []string
			}{
				{"1?", keys(ns+"1", 10)},                // ns10 .. ns19
				{"[2-3]", []string{ns + "2", ns + "3"}}, // one digit only
				{"*[^0-8]", endsIn9},
				{"[!4]", []string{ns + "4"}}, // '!' is a member, not a negation
			} {
				all = removeAndCheck(t, ctx, client, d, ns, all, ns+tc.glob, tc.gone)
			}
		})
	}
}

// removeAndCheck runs Pattern with pattern over the keys all, which must
// remove exactly gone, and checks that every node holds the rest under ns. It
// returns the rest.
func removeAndCheck(t *testing.T, ctx context.Context, client rueidis.Client, d deployment, ns string, all []string, pattern string, gone []string) []string {
	t.Helper()
	n, err := invalidation.Pattern(ctx, client, pattern, invalidation.Options{})
	require.NoError(t, err)
	assert.EqualValues(t, len(gone), n, "pattern %q", pattern)
	all = slices.DeleteFunc(all, func(k string) bool { return slices.Contains(gone, k) })
	assert.Equal(t, set(all...), union(scanNodes(t, ctx, d, d.nodes, ns+"*")), "after pattern %q", pattern)
	return all
}

// TestPatternEscapedUserInput is the package example: a user id with a
// metacharacter, or one that is a prefix of another, removes only its own
// keys once escaped.
func TestPatternEscapedUserInput(t *testing.T) {
	t.Parallel()
	for _, top := range topologies() {
		t.Run(top.name, func(t *testing.T) {
			t.Parallel()
			d := top.start(t)
			client := connect(t, d)
			ctx := testContext(t)
			ns := uniquePrefix("user")
			all := []string{
				ns + "1*:a", ns + "1*:b", ns + "10:a", ns + "1:a",
				ns + "1001:x", ns + "10010:x", ns + "1001",
				ns + `[1]:a`, ns + "1]:a",
			}
			fill(t, ctx, client, all)

			for _, tc := range []struct {
				id   string
				gone []string
			}{
				{"1*", []string{ns + "1*:a", ns + "1*:b"}},
				{"1001", []string{ns + "1001:x"}},
				{"[1]", []string{ns + "[1]:a"}},
			} {
				all = removeAndCheck(t, ctx, client, d, ns, all, ns+invalidation.Escape(tc.id)+":*", tc.gone)
			}
		})
	}
}

func TestPatternCancel(t *testing.T) {
	t.Parallel()
	for _, top := range topologies() {
		t.Run(top.name, func(t *testing.T) {
			t.Parallel()
			d := top.start(t)
			client := connect(t, d)
			ctx, cancel := context.WithCancel(testContext(t))
			defer cancel()
			ns := uniquePrefix("cancel")
			ks := keys(ns, 500)
			fill(t, ctx, client, ks)

			var rec recorder
			opts := rec.options(invalidation.Options{Count: 1000, Batch: 10})
			progress := opts.Progress
			opts.Progress = func(p invalidation.Progress) {
				progress(p)
				cancel() // after the first batch
			}
			n, err := invalidation.Pattern(ctx, client, ns+"*", opts)
			require.ErrorIs(t, err, context.Canceled)
			assert.EqualValues(t, 10, n, "removed before the cancel")
			assert.Len(t, rec.progress, 1)
			assert.Len(t, rec.deleted, 10)

			check := testContext(t)
			left := union(scanNodes(t, check, d, d.nodes, ns+"*"))
			assert.Len(t, left, len(ks)-int(n), "keys left")
			for k := range rec.deleted {
				assert.NotContains(t, left, k)
			}
		})
	}
}

// TestPatternCountsOwnRemovals: keys another client removes while Pattern
// runs are not counted, though OnDelete still gets them.
func TestPatternCountsOwnRemovals(t *testing.T) {
	t.Parallel()
	for _, top := range topologies() {
		t.Run(top.name, func(t *testing.T) {
			t.Parallel()
			d := top.start(t)
			client := connect(t, d)
			ctx := testContext(t)
			ns := uniquePrefix("race")
			ks := keys(ns, 300)
			fill(t, ctx, client, ks)

			var rec recorder
			opts := rec.options(invalidation.Options{Count: 5000, Batch: 10})
			progress := opts.Progress
			opts.Progress = func(p invalidation.Progress) {
				progress(p)
				if len(rec.progress) == 1 { // after the first batch, remove the rest
					cmds := make(rueidis.Commands, len(ks))
					for i, k := range ks {
						cmds[i] = client.B().Del().Key(k).Build()
					}
					for _, res := range client.DoMulti(ctx, cmds...) {
						require.NoError(t, res.Error())
					}
				}
			}
			n, err := invalidation.Pattern(ctx, client, ns+"*", opts)
			require.NoError(t, err)
			assert.EqualValues(t, 10, n)
			rec.checkProgress(t, d, n)
			assert.Greater(t, len(rec.deleted), 10, "OnDelete gets the batches whose keys were gone")
			assert.Empty(t, union(scanNodes(t, ctx, d, d.nodes, ns+"*")))
		})
	}
}

func TestPatternEndedContext(t *testing.T) {
	t.Parallel()
	for _, top := range topologies() {
		t.Run(top.name, func(t *testing.T) {
			t.Parallel()
			d := top.start(t)
			client := connect(t, d)
			ns := uniquePrefix("ended")
			ks := keys(ns, 50)
			fill(t, testContext(t), client, ks)

			canceled, cancel := context.WithCancel(context.Background())
			cancel()
			n, err := invalidation.Pattern(canceled, client, ns+"*", invalidation.Options{})
			assert.ErrorIs(t, err, context.Canceled)
			assert.Zero(t, n)

			expired, cancel2 := context.WithDeadline(context.Background(), time.Unix(0, 0))
			defer cancel2()
			n, err = invalidation.Pattern(expired, client, ns+"*", invalidation.Options{})
			assert.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Zero(t, n)

			assert.Equal(t, set(ks...), union(scanNodes(t, testContext(t), d, d.nodes, ns+"*")))
		})
	}
}

func TestPatternEmpty(t *testing.T) {
	t.Parallel()
	d := standalone(t)
	client := connect(t, d)
	ctx := testContext(t)
	fill(t, ctx, client, []string{"a", ""})

	called := false
	n, err := invalidation.Pattern(ctx, client, "", invalidation.Options{
		OnDelete: func([]string) { called = true },
	})
	require.ErrorIs(t, err, invalidation.ErrPattern)
	assert.Zero(t, n)
	assert.False(t, called)
	assert.Equal(t, set("a", ""), union(scanNodes(t, ctx, d, d.nodes, "*")))
}

// TestPatternClusterWithReplicas: replicas are among a cluster client's
// nodes, but Pattern scans only the primaries, removes each key once, and
// the replicas end up empty too.
func TestPatternClusterWithReplicas(t *testing.T) {
	t.Parallel()
	d := clusterDeployment("replicas", redistest.StartCluster(t, redistest.ClusterConfig{Primaries: 3, Replicas: 1}))
	client := connect(t, d)
	ctx := testContext(t)
	require.Len(t, d.nodes, 6)
	require.Len(t, client.Nodes(), 6, "the client should see the replicas, or this test proves nothing")

	nodes, err := invalidation.Primaries(ctx, client)
	require.NoError(t, err)
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.Addr
	}
	assert.Equal(t, d.primaries, addrs)

	ks := keys("r:", 3000)
	fill(t, ctx, client, ks)
	waitReplicas(t, ctx, nodes)
	replicas := slices.DeleteFunc(slices.Clone(d.nodes), func(a string) bool { return slices.Contains(d.primaries, a) })
	require.Equal(t, set(ks...), union(scanNodes(t, ctx, d, replicas, "r:*")), "replicas before")

	var rec recorder
	n, err := invalidation.Pattern(ctx, client, "r:*", rec.options(invalidation.Options{}))
	require.NoError(t, err)
	assert.EqualValues(t, len(ks), n)
	assert.Equal(t, set(ks...), rec.deleted)
	rec.checkProgress(t, d, n)
	scannedNodes := make(map[string]bool)
	for _, p := range rec.progress {
		scannedNodes[p.Node] = true
	}
	assert.Equal(t, d.primaries, slices.Sorted(maps.Keys(scannedNodes)))

	waitReplicas(t, ctx, nodes)
	for addr, left := range scanNodes(t, ctx, d, d.nodes, "r:*") {
		assert.Empty(t, left, "left on %s", addr)
	}
}

// TestPrimariesStandaloneWithReplica: a standalone client given a replica
// (Standalone.ReplicaAddress) lists it among its nodes; Pattern must scan
// only the primary.
func TestPrimariesStandaloneWithReplica(t *testing.T) {
	t.Parallel()
	primary := redistest.Start(t, redistest.Config{})
	replica := redistest.Start(t, redistest.Config{})
	ctx := testContext(t)
	_, err := replica.Do(ctx, "REPLICAOF", "127.0.0.1", strconv.Itoa(primary.Port()))
	require.NoError(t, err)

	opt := primary.ClientOption()
	opt.Standalone.ReplicaAddress = []string{replica.Addr()}
	opt.SendToReplicas = func(cmd rueidis.Completed) bool { return cmd.IsReadOnly() }
	client, err := rueidis.NewClient(opt)
	require.NoError(t, err)
	t.Cleanup(client.Close)
	require.Len(t, client.Nodes(), 2, "the client should see the replica, or this test proves nothing")

	nodes, err := invalidation.Primaries(ctx, client)
	require.NoError(t, err)
	require.Len(t, nodes, 1)
	assert.Equal(t, primary.Addr(), nodes[0].Addr)

	d := deployment{name: "standalone+replica", opt: primary.ClientOption(), primaries: []string{primary.Addr()}}
	ks := keys("s:", 500)
	fill(t, ctx, client, ks)
	waitReplicas(t, ctx, nodes)
	var rec recorder
	n, err := invalidation.Pattern(ctx, client, "s:*", rec.options(invalidation.Options{}))
	require.NoError(t, err)
	assert.EqualValues(t, len(ks), n)
	rec.checkProgress(t, d, n) // every report names the primary
	waitReplicas(t, ctx, nodes)
	d.nodes = []string{primary.Addr(), replica.Addr()}
	for addr, left := range scanNodes(t, ctx, d, d.nodes, "s:*") {
		assert.Empty(t, left, "left on %s", addr)
	}
}

// waitReplicas blocks until every primary's writes so far reached its
// replica (WAIT 1 0).
func waitReplicas(t *testing.T, ctx context.Context, primaries []invalidation.Node) {
	t.Helper()
	for _, p := range primaries {
		n, err := p.Client.Do(ctx, p.Client.B().Wait().Numreplicas(1).Timeout(0).Build()).AsInt64()
		require.NoError(t, err)
		require.EqualValues(t, 1, n)
	}
}

// TestPatternWrapsErrors: a node that refuses SCAN makes Pattern fail with
// Redis' error, wrapped.
func TestPatternWrapsErrors(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Config{Users: []redistest.User{
		{Name: "default", Rules: []string{"~*", "&*", "+@all", "-scan"}},
	}})
	client, err := rueidis.NewClient(srv.ClientOption())
	require.NoError(t, err)
	t.Cleanup(client.Close)
	ctx := testContext(t)
	require.NoError(t, client.Do(ctx, client.B().Set().Key("k").Value("v").Build()).Error())

	n, err := invalidation.Pattern(ctx, client, "*", invalidation.Options{})
	require.Error(t, err)
	assert.Zero(t, n)
	var re *rueidis.RedisError
	require.True(t, errors.As(err, &re), "error %v should wrap the Redis error", err)
	assert.Contains(t, err.Error(), "scan")
	assert.NotErrorIs(t, err, invalidation.ErrPattern)
}
