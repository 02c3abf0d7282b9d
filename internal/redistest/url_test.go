package redistest_test

import (
	"context"
	"net"
	"testing"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/internal/redistest"
)

// TestForURL: a URL where a server answers is used as it is; one where
// nothing answers gets a private redis-server of its own.
func TestForURL(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Config{})
	var said []string
	say := func(s string) { said = append(said, s) }

	opt, stop, err := redistest.ForURL("redis://"+srv.Addr(), say)
	require.NoError(t, err)
	stop()
	assert.Equal(t, []string{srv.Addr()}, opt.InitAddress, "the running server is used")
	assert.Contains(t, said[0], "using Redis at")

	// A loopback port nothing listens on: taken, then released.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := l.Addr().String()
	require.NoError(t, l.Close())
	opt, stop, err = redistest.ForURL("redis://"+dead, say)
	require.NoError(t, err)
	assert.NotEqual(t, []string{dead}, opt.InitAddress)
	assert.Contains(t, said[1], "started a private redis-server")
	opt.DisableCache = true
	rc, err := rueidis.NewClient(opt)
	require.NoError(t, err)
	assert.NoError(t, rc.Do(context.Background(), rc.B().Ping().Build()).Error(), "the private server answers")
	rc.Close()
	stop()

	_, _, err = redistest.ForURL("http://x", nil)
	assert.Error(t, err)
}
