package cache_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/internal/redistest"
)

// leastPrivilege is the ACL the README gives for a cache of namespace ns:
// its keys and tag indexes, and the commands aside sends (those its scripts
// run included).
func leastPrivilege(ns string) []string {
	return strings.Fields("~" + ns + ":* ~" + ns + "#tag:* resetchannels -@all +@connection " +
		"+evalsha +eval +get +set +pttl +del +unlink +exists +pexpire +pexpireat +persist " +
		"+sadd +spop +sscan +srem +srandmember +scan +role")
}

// TestLeastPrivilegeUser runs every operation of a cache as a user limited
// to the README's ACL: nothing is refused, and tracking is on.
func TestLeastPrivilegeUser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const ns = "app"
	srv := redistest.Start(t, redistest.Config{Users: []redistest.User{{Name: "app", Password: "secret", Rules: leastPrivilege(ns)}}})
	opt := srv.ClientOption()
	opt.Username, opt.Password = "app", "secret"
	client := connectWith(t, opt)
	require.True(t, client.Tracking(), "client tracking is granted")
	c := userCache(t, client, ns, nil)

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
	s := c.Stats()
	assert.Zero(t, s.WriteErrors)
	assert.Zero(t, s.RedisErrors)
	assert.Zero(t, s.DecodeErrors)

	// The ACL does limit: another namespace is out of reach.
	other := userCache(t, client, "other", nil)
	err = other.Set(ctx, 1, sampleUser(1))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "NOPERM")
}
