package cache_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/internal/redistest"
)

// TestLeastPrivilegeUser runs every operation of a cache as a user limited
// to the README's ACL (redistest.CacheUserRules), standalone and on a
// cluster: nothing is refused, tracking is on, and the user can neither
// reach another namespace nor kill connections.
func TestLeastPrivilegeUser(t *testing.T) {
	t.Parallel()
	const ns = "app"
	users := []redistest.User{{Name: "app", Password: "secret", Rules: redistest.CacheUserRules(ns)}}
	t.Run("standalone", func(t *testing.T) {
		t.Parallel()
		srv := redistest.Start(t, redistest.Config{Users: users})
		opt := srv.ClientOption()
		opt.Username, opt.Password = "app", "secret"
		leastPrivilege(t, opt, ns)
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		cl := redistest.StartCluster(t, redistest.ClusterConfig{Primaries: 3, Server: redistest.Config{Users: users}})
		opt := cl.ClientOption()
		opt.Username, opt.Password = "app", "secret"
		leastPrivilege(t, opt, ns)
	})
}

// TestREADMEGivesTheACL: the README's ACL line is the one the tests use.
func TestREADMEGivesTheACL(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	line := "ACL SETUSER app on >secret " + strings.Join(redistest.CacheUserRules("app"), " ")
	assert.True(t, strings.Contains(string(readme), line), "README.md lacks the line\n%s", line)
}

func leastPrivilege(t *testing.T, opt rueidis.ClientOption, ns string) {
	client := connectWith(t, opt)
	require.True(t, client.Tracking(), "client tracking is granted")
	// Each format in turn: the second starts from the empty namespace the
	// first leaves.
	for _, plain := range []bool{false, true} {
		leastPrivilegeOps(t, client, ns, plain)
	}
}

func leastPrivilegeOps(t *testing.T, client *cache.Client, ns string, plain bool) {
	ctx := context.Background()
	c := userCache(t, client, ns, nil, func(o *cache.Options[int64, User]) { o.Plain = plain })

	_, err := c.Get(ctx, 1) // a miss: visit, load, write under the lease
	require.NoError(t, err)
	_, err = c.Get(ctx, 1)
	require.NoError(t, err)
	_, err = c.GetMany(ctx, []int64{1, 2, 3})
	require.NoError(t, err)
	require.NoError(t, c.Set(ctx, 4, sampleUser(4), cache.WithTags("t")))
	require.NoError(t, c.SetMany(ctx, map[int64]User{5: sampleUser(5)}, cache.WithTTL(time.Minute)))
	n, err := c.Exists(ctx, 4, 5, 6)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	_, err = c.Expire(ctx, 5, time.Hour)
	require.NoError(t, err)
	_, err = c.ExpireAt(ctx, 5, time.Now().Add(time.Hour))
	require.NoError(t, err)
	_, err = c.Persist(ctx, 5)
	require.NoError(t, err)
	_, err = c.TTL(ctx, 5)
	require.NoError(t, err)
	_, err = c.PruneTags(ctx, "t")
	require.NoError(t, err)
	removed, err := c.InvalidateTag(ctx, "t")
	require.NoError(t, err)
	assert.EqualValues(t, 1, removed)
	_, err = c.InvalidatePattern(ctx, "*")
	require.NoError(t, err)
	require.NoError(t, c.Invalidate(ctx, 1))
	_, err = c.Delete(ctx, 2)
	require.NoError(t, err)
	require.NoError(t, c.Set(ctx, 6, sampleUser(6), cache.WithTags("t")))
	removed, err = client.Invalidate(ctx, cache.Keys(c, 3, 5), cache.Tags(c, "t"))
	require.NoError(t, err)
	assert.EqualValues(t, 1, removed, "the tagged key 6 (3 and 5 went with the pattern)")
	require.NoError(t, c.Set(ctx, 7, sampleUser(7)))
	_, err = c.Clear(ctx)
	require.NoError(t, err)
	_, err = c.Get(ctx, 7) // cleared: loaded again
	require.NoError(t, err)
	s := c.Stats()
	assert.Zero(t, s.WriteErrors)
	assert.Zero(t, s.RedisErrors)
	assert.Zero(t, s.DecodeErrors)
	if plain {
		return
	}

	// The ACL does limit: another namespace is out of reach.
	other := userCache(t, client, "other", nil)
	err = other.Set(ctx, 1, sampleUser(1))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "NOPERM")
	rc := client.Rueidis()
	err = rc.Do(ctx, rc.B().ClientKill().Maxage(1).Build()).Error()
	require.Error(t, err, "CLIENT KILL is not the cache's to send")
	assert.Contains(t, err.Error(), "NOPERM")
}
