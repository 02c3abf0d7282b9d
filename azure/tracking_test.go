package azure_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/azure"
	"github.com/aside-go/aside/internal/redistest"
)

// TestClientSideCachingFallback: a server that refuses CLIENT TRACKING, or
// RESP3 altogether, gets a client without client-side caching and a warning,
// rather than a client whose every command fails.
func TestClientSideCachingFallback(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  redistest.Config
	}{
		{"tracking denied", redistest.Config{Password: accessKey, Users: []redistest.User{{
			Name: "default", Password: accessKey, Rules: []string{"~*", "&*", "+@all", "-client|tracking"},
		}}}},
		// With HELLO unknown the server speaks RESP2 only, which has no
		// invalidation pushes.
		{"RESP2 only", redistest.Config{Password: accessKey, Args: []string{"--rename-command", "HELLO", ""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, tc.cfg)
			ctx := testCtx(t)
			var logs capture
			o := serverOptions(t, srv)
			o.AccessKey = accessKey
			o.Clustering = azure.Enterprise
			o.Logger = logs.Logger()
			client, err := azure.NewClient(ctx, o)
			require.NoError(t, err)
			defer client.Close()

			assert.Contains(t, logs.String(), "level=WARN")
			assert.Contains(t, logs.String(), "refused client-side caching")
			assert.NotContains(t, logs.String(), accessKey)

			require.NoError(t, client.Do(ctx, client.B().Set().Key("k").Value("v1").Build()).Error())
			got, err := client.DoCache(ctx, client.B().Get().Key("k").Cache(), time.Minute).ToString()
			require.NoError(t, err)
			assert.Equal(t, "v1", got)
			// No copy is kept: a change made elsewhere is read at once.
			_, err = srv.Do(ctx, "SET", "k", "v2")
			require.NoError(t, err)
			got, err = client.DoCache(ctx, client.B().Get().Key("k").Cache(), time.Minute).ToString()
			require.NoError(t, err)
			assert.Equal(t, "v2", got)
		})
	}
}

// TestClientSideCachingOn: against a server that allows it, tracking is on
// and nothing is logged.
func TestClientSideCachingOn(t *testing.T) {
	t.Parallel()
	srv := startServer(t, redistest.Config{Password: accessKey})
	ctx := testCtx(t)
	var logs capture
	o := serverOptions(t, srv)
	o.AccessKey = accessKey
	o.Logger = logs.Logger()
	client, err := azure.NewClient(ctx, o)
	require.NoError(t, err)
	defer client.Close()

	info, err := client.Do(ctx, client.B().ClientTrackinginfo().Build()).AsMap()
	require.NoError(t, err)
	flagsMsg := info["flags"]
	flags, err := flagsMsg.AsStrSlice()
	require.NoError(t, err)
	assert.Contains(t, flags, "on")
	assert.Empty(t, logs.String())
}
