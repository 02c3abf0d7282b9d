package invalidation_test

import (
	"testing"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/internal/redistest"
	"github.com/aside-go/aside/invalidation"
)

// TestPatternAsLeastPrivilegeUser runs Pattern as the README's user of
// namespace "app" (redistest.CacheUserRules), standalone and on a cluster:
// it finds the primaries and deletes the namespace's matching keys, and a
// pattern that reaches outside the namespace is refused rather than
// deleting anything there.
func TestPatternAsLeastPrivilegeUser(t *testing.T) {
	t.Parallel()
	users := []redistest.User{{Name: "app", Password: "secret", Rules: redistest.CacheUserRules("app")}}
	for _, tc := range []struct {
		name  string
		start func(t *testing.T) deployment
	}{
		{"standalone", func(t *testing.T) deployment {
			srv := redistest.Start(t, redistest.Config{Users: users})
			return deployment{name: "standalone", opt: srv.ClientOption(), primaries: []string{srv.Addr()}, nodes: []string{srv.Addr()}}
		}},
		{"cluster", func(t *testing.T) deployment {
			return clusterDeployment("cluster", redistest.StartCluster(t, redistest.ClusterConfig{Primaries: 3, Server: redistest.Config{Users: users}}))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := tc.start(t)
			ctx := testContext(t)
			admin := connect(t, d)
			doomed := keys("app:del:", 300)
			fill(t, ctx, admin, doomed)
			fill(t, ctx, admin, []string{"app:keep:1", "other:del:1"})

			opt := d.opt
			opt.Username, opt.Password = "app", "secret"
			app, err := rueidis.NewClient(opt)
			require.NoError(t, err)
			defer app.Close()

			primaries, err := invalidation.Primaries(ctx, app)
			require.NoError(t, err)
			assert.Len(t, primaries, len(d.primaries))
			n, err := invalidation.Pattern(ctx, app, "app:del:*", invalidation.Options{})
			require.NoError(t, err)
			assert.EqualValues(t, len(doomed), n)
			assert.Equal(t, set("app:keep:1", "other:del:1"), union(scanNodes(t, ctx, d, d.nodes, "*")))

			// SCAN is not limited by key patterns, UNLINK is: a match
			// outside the namespace fails and stays.
			_, err = invalidation.Pattern(ctx, app, "*:del:*", invalidation.Options{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), "NOPERM")
			assert.Contains(t, union(scanNodes(t, ctx, d, d.nodes, "*")), "other:del:1")
		})
	}
}
