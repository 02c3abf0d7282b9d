package cache_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/codec"
	"github.com/aside-go/aside/internal/redistest"
)

// guideCaches are the three kinds of the guide's "invalidate on update":
// user:{id}:profile, user:{id}:summary and dashboard:user:{id}, as three
// caches (two of one namespace) on one client, loading "<kind> v<version>"
// of the user's version in rows.
type guideCaches struct {
	profiles, summaries, dashboards *cache.Cache[int64, string]
}

type versions struct {
	mu   sync.Mutex
	rows map[int64]int
}

func (v *versions) bump(id int64) {
	v.mu.Lock()
	v.rows[id]++
	v.mu.Unlock()
}

func (v *versions) of(kind string) func(context.Context, int64) (string, error) {
	return func(_ context.Context, id int64) (string, error) {
		v.mu.Lock()
		defer v.mu.Unlock()
		return fmt.Sprintf("%s v%d", kind, v.rows[id]), nil
	}
}

func newGuideCaches(t *testing.T, client *cache.Client, user, dashboard string, rows *versions) guideCaches {
	t.Helper()
	build := func(ns, kind string, key func(int64) string) *cache.Cache[int64, string] {
		c, err := cache.New(client, cache.Options[int64, string]{Namespace: ns, Key: key, Codec: codec.String(), Loader: rows.of(kind)})
		require.NoError(t, err)
		return c
	}
	return guideCaches{
		profiles:   build(user, "profile", func(id int64) string { return strconv.FormatInt(id, 10) + ":profile" }),
		summaries:  build(user, "summary", func(id int64) string { return strconv.FormatInt(id, 10) + ":summary" }),
		dashboards: build(dashboard, "dashboard", func(id int64) string { return "user:" + strconv.FormatInt(id, 10) }),
	}
}

// fill loads every kind of users 1 and 2, tags the dashboards "user:<id>"
// and makes sure process memory holds a copy of each.
func (g guideCaches) fill(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for _, id := range []int64{1, 2} {
		v, err := g.dashboards.Get(ctx, id)
		require.NoError(t, err)
		require.NoError(t, g.dashboards.Set(ctx, id, v, cache.WithTags("user:"+strconv.FormatInt(id, 10))))
		for _, c := range []*cache.Cache[int64, string]{g.profiles, g.summaries, g.dashboards} {
			warm(t, c, id)
		}
	}
}

// expect checks what every kind of user id reads.
func (g guideCaches) expect(t *testing.T, id int64, version int, who string) {
	t.Helper()
	ctx := context.Background()
	for kind, c := range map[string]*cache.Cache[int64, string]{"profile": g.profiles, "summary": g.summaries, "dashboard": g.dashboards} {
		v, err := c.Get(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("%s v%d", kind, version), v, "%s reads %s of user %d", who, kind, id)
	}
}

// TestClientInvalidateGuideExample runs the guide's "invalidate on update"
// as one call, with the guide's own key names on a private server and a
// private 3-primary cluster: after user 1 changed, one Client.Invalidate
// removes user:1:profile, user:1:summary and (by its tag) dashboard:user:1,
// returns Redis' count of 3, and from then on this process reads the new
// version through every cache, and so does a second client (another
// process) once Redis' invalidation pushes reached it. User 2 is untouched.
func TestClientInvalidateGuideExample(t *testing.T) {
	t.Parallel()
	for name, start := range map[string]func(t *testing.T) rueidis.ClientOption{
		"standalone": func(t *testing.T) rueidis.ClientOption { return redistest.Start(t, redistest.Config{}).ClientOption() },
		"cluster": func(t *testing.T) rueidis.ClientOption {
			return redistest.StartCluster(t, redistest.ClusterConfig{Primaries: 3}).ClientOption()
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			opt := start(t)
			rows := &versions{rows: map[int64]int{}}
			client := connectWith(t, opt)
			here := newGuideCaches(t, client, "user", "dashboard", rows)
			otherClient, pushes := watchedClient(t, opt)
			other := newGuideCaches(t, otherClient, "user", "dashboard", rows)
			here.fill(t)
			other.fill(t)
			here.expect(t, 1, 0, "before the update, this process")

			marks := map[string]pushMark{}
			for _, key := range []string{"user:1:profile", "user:1:summary", "dashboard:user:1"} {
				marks[key] = pushes.mark(key)
			}
			rows.bump(1)
			n, err := client.Invalidate(ctx,
				cache.Keys(here.profiles, 1),
				cache.Keys(here.summaries, 1),
				cache.Tags(here.dashboards, "user:1"))
			require.NoError(t, err)
			assert.EqualValues(t, 3, n, "Redis removed the profile, the summary and the tagged dashboard")

			here.expect(t, 1, 1, "right after Invalidate, this process")
			for key, m := range marks {
				pushes.awaitKey(t, m, "the other process's invalidation of "+key)
			}
			other.expect(t, 1, 1, "after the pushes, the other process")
			here.expect(t, 2, 0, "user 2, this process")
			other.expect(t, 2, 0, "user 2, the other process")

			rc := client.Rueidis()
			left, err := rc.Do(ctx, rc.B().Exists().Key("dashboard#tag:user:1").Build()).AsInt64()
			require.NoError(t, err)
			assert.Zero(t, left, "the tag's index is gone with its keys")
		})
	}
}

// TestClientInvalidateAcrossNamespaces: on both topologies, keys of caches of
// two namespaces and one tag used in both, in one call; the count is Redis'
// (a key named twice, a missing key and a not-found marker count as DEL
// counts them); nothing else is touched.
func TestClientInvalidateAcrossNamespaces(t *testing.T) {
	t.Parallel()
	for _, topo := range topologies() {
		t.Run(topo.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			client := connectWith(t, topo.opt(t))
			ns := namespace(t)
			a := markerCache(t, client, ns+".a")
			b, err := cache.New(client, cache.Options[int64, User]{Namespace: ns + ".b"})
			require.NoError(t, err)
			_, err = a.Get(ctx, "nf") // a not-found marker
			require.ErrorIs(t, err, cache.ErrNotFound)
			for i := range 300 { // more than one SPOP batch
				require.NoError(t, a.Set(ctx, "t"+strconv.Itoa(i), "v", cache.WithTags("shared")))
			}
			require.NoError(t, a.Set(ctx, "x", "v"))
			require.NoError(t, a.Set(ctx, "keep", "v", cache.WithTags("other")))
			require.NoError(t, b.Set(ctx, 1, sampleUser(1), cache.WithTags("shared")))
			require.NoError(t, b.Set(ctx, 2, sampleUser(2)))
			require.NoError(t, b.Set(ctx, 3, sampleUser(3)))
			warm(t, a, "x")
			warm(t, b, 2)

			n, err := client.Invalidate(ctx,
				cache.Keys(a, "x", "x", "missing", "nf"),
				cache.Keys(b, 2),
				cache.Tags(a, "shared"),
				cache.Tags(b, "shared", "shared"))
			require.NoError(t, err)
			assert.EqualValues(t, 1+1+1+300+1, n, "x once, the marker, b:2, 300 tagged in a, 1 tagged in b")

			left, err := a.Exists(ctx, "x", "t0", "t299", "nf")
			require.NoError(t, err)
			assert.Zero(t, left)
			left, err = b.Exists(ctx, 1, 2)
			require.NoError(t, err)
			assert.Zero(t, left)
			left, err = a.Exists(ctx, "keep")
			require.NoError(t, err)
			assert.Equal(t, 1, left, "another tag is untouched")
			left, err = b.Exists(ctx, 3)
			require.NoError(t, err)
			assert.Equal(t, 1, left, "an unnamed key is untouched")
			_, err = b.Get(ctx, 2)
			require.ErrorIs(t, err, cache.ErrNotFound, "the copy in process memory went with the key")

			n, err = client.Invalidate(ctx)
			require.NoError(t, err)
			assert.Zero(t, n)
			n, err = client.Invalidate(ctx, cache.Target{}, cache.Keys(a), cache.Tags(b))
			require.NoError(t, err)
			assert.Zero(t, n)
		})
	}
}

// TestClientInvalidateRefusesBadTargets: a cache of another client, a nil
// cache or an empty tag fail the whole call, before anything is removed.
func TestClientInvalidateRefusesBadTargets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := connect(t, shared)
	ns := namespace(t)
	mine := markerCache(t, client, ns)
	theirs := markerCache(t, connect(t, shared), ns)
	require.NoError(t, mine.Set(ctx, "k", "v"))
	var none *cache.Cache[string, string]
	for _, targets := range [][]cache.Target{
		{cache.Keys(mine, "k"), cache.Keys(theirs, "k")},
		{cache.Keys(mine, "k"), cache.Keys(none, "k")},
		{cache.Keys(mine, "k"), cache.Tags(none, "t")},
		{cache.Keys(mine, "k"), cache.Tags(mine, "t", "")},
	} {
		n, err := client.Invalidate(ctx, targets...)
		require.ErrorIs(t, err, cache.ErrInvalidOptions)
		assert.Zero(t, n)
		t.Log(err)
	}
	left, err := mine.Exists(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, 1, left)
}
