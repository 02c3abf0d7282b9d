package azure_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/azure"
	"github.com/aside-go/aside/internal/redistest"
)

const accessKey = "Xk9vQ2AccessKey0123456789abcdefABCDEF+/w="

// TestAccessKey connects over TLS with an access key, under every clustering
// policy: against a single server OSS finds no cluster and rueidis falls back
// to its single-node client.
func TestAccessKey(t *testing.T) {
	t.Parallel()
	srv := startServer(t, redistest.Config{Password: accessKey})
	for _, c := range []azure.Clustering{azure.OSS, azure.Enterprise, azure.NonClustered} {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			o := serverOptions(t, srv)
			o.AccessKey = accessKey
			o.Clustering = c
			client, err := azure.NewClient(ctx, o)
			require.NoError(t, err)
			defer client.Close()

			key := "key:" + c.String()
			require.NoError(t, client.Do(ctx, client.B().Set().Key(key).Value("v").Build()).Error())
			got, err := client.Do(ctx, client.B().Get().Key(key).Build()).ToString()
			require.NoError(t, err)
			assert.Equal(t, "v", got)
			user, err := client.Do(ctx, client.B().AclWhoami().Build()).ToString()
			require.NoError(t, err)
			assert.Equal(t, "default", user)
		})
	}
}

// tlsFailure connects with o and returns the error, which must be a failed
// TLS handshake.
func tlsFailure(t *testing.T, o azure.Options) error {
	t.Helper()
	client, err := azure.NewClient(testCtx(t), o)
	if err == nil {
		client.Close()
		t.Fatal("connected, but the TLS handshake should have failed")
	}
	assert.NotContains(t, err.Error(), accessKey)
	return err
}

func TestServerFromAnotherCARejected(t *testing.T) {
	t.Parallel()
	srv := startServer(t, redistest.Config{Password: accessKey})
	pool, err := redistest.NewCAPool()
	require.NoError(t, err)

	o := serverOptions(t, srv)
	o.AccessKey = accessKey
	o.TLSConfig = &tls.Config{RootCAs: pool}
	var unknown x509.UnknownAuthorityError
	require.ErrorAs(t, tlsFailure(t, o), &unknown)

	// Without a TLSConfig the system roots are used, which do not know the
	// test CA either: verification is on by default.
	o.TLSConfig = nil
	require.ErrorAs(t, tlsFailure(t, o), &unknown)
}

func TestWrongHostNameRejected(t *testing.T) {
	t.Parallel()
	srv := startServer(t, redistest.Config{Password: accessKey})
	const other = "someone-else.westeurope.redis.azure.net"
	o := serverOptions(t, srv)
	o.Host = other
	o.AccessKey = accessKey
	o.Base = rueidis.ClientOption{DialCtxFn: loopbackDial(other, srv.Port(), srv.Addr())}

	var hostErr x509.HostnameError
	require.ErrorAs(t, tlsFailure(t, o), &hostErr)
	assert.Equal(t, other, hostErr.Host)
}

func TestWrongAccessKeyRejected(t *testing.T) {
	t.Parallel()
	srv := startServer(t, redistest.Config{Password: accessKey})
	o := serverOptions(t, srv)
	o.AccessKey = "Wr0ngKeyWr0ngKeyWr0ngKey"
	_, err := azure.NewClient(testCtx(t), o)
	require.Error(t, err)
	var re *rueidis.RedisError
	require.True(t, errors.As(err, &re), "the server's refusal: %v", err)
	assert.Contains(t, err.Error(), "WRONGPASS")
	assert.NotContains(t, err.Error(), o.AccessKey)
}
