package azure_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/azure"
)

func TestClientOptionAccessKey(t *testing.T) {
	t.Parallel()
	base := &tls.Config{ServerName: ""}
	opt, err := azure.ClientOption(context.Background(), azure.Options{
		Host:      "shop.westeurope.redis.azure.net",
		AccessKey: "the-key",
		TLSConfig: base,
		Base:      rueidis.ClientOption{ClientName: "shop", CacheSizeEachConn: 1 << 20},
	})
	require.NoError(t, err)

	assert.Equal(t, []string{"shop.westeurope.redis.azure.net:10000"}, opt.InitAddress)
	assert.Empty(t, opt.Username, "an access key authenticates the default user")
	assert.Equal(t, "the-key", opt.Password)
	assert.Nil(t, opt.AuthCredentialsFn)
	assert.False(t, opt.ForceSingleClient, "OSS is the default policy: rueidis' cluster client")
	require.NotNil(t, opt.TLSConfig)
	assert.Equal(t, "shop.westeurope.redis.azure.net", opt.TLSConfig.ServerName)
	assert.Equal(t, uint16(tls.VersionTLS12), opt.TLSConfig.MinVersion)
	assert.False(t, opt.TLSConfig.InsecureSkipVerify)
	// Base settings pass through; the caller's TLS configuration is cloned.
	assert.Equal(t, "shop", opt.ClientName)
	assert.Equal(t, 1<<20, opt.CacheSizeEachConn)
	assert.NotSame(t, base, opt.TLSConfig)
	assert.Empty(t, base.ServerName)
}

func TestClientOptionTLS(t *testing.T) {
	t.Parallel()
	opt, err := azure.ClientOption(context.Background(), azure.Options{
		Host:      "10.0.0.4",
		Port:      10001,
		AccessKey: "k",
		TLSConfig: &tls.Config{ServerName: "shop.privatelink.redis.azure.net", MinVersion: tls.VersionTLS13},
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"10.0.0.4:10001"}, opt.InitAddress)
	assert.Equal(t, "shop.privatelink.redis.azure.net", opt.TLSConfig.ServerName, "an explicit server name is kept")
	assert.Equal(t, uint16(tls.VersionTLS13), opt.TLSConfig.MinVersion, "a stricter minimum is kept")

	opt, err = azure.ClientOption(context.Background(), azure.Options{Host: "[::1]", AccessKey: "k"})
	require.NoError(t, err)
	assert.Equal(t, []string{"[::1]:10000"}, opt.InitAddress)
	assert.Equal(t, "::1", opt.TLSConfig.ServerName)
}

func TestInsecureTLSRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, setting string
		cfg           *tls.Config
	}{
		{"skip verify", "TLSConfig.InsecureSkipVerify", &tls.Config{InsecureSkipVerify: true}},
		{"TLS 1.0", "TLSConfig.MinVersion", &tls.Config{MinVersion: tls.VersionTLS10}},
		{"TLS 1.1", "TLSConfig.MinVersion", &tls.Config{MinVersion: tls.VersionTLS11}},
		{"max TLS 1.1", "TLSConfig.MaxVersion", &tls.Config{MaxVersion: tls.VersionTLS11}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := azure.ClientOption(context.Background(), azure.Options{Host: "h", AccessKey: "k", TLSConfig: tc.cfg})
			require.ErrorIs(t, err, azure.ErrInsecure)
			require.ErrorIs(t, err, azure.ErrInvalidOptions)
			assert.Contains(t, err.Error(), tc.setting)
		})
	}
}

func TestInvalidOptions(t *testing.T) {
	t.Parallel()
	cred := staticToken(azcore.AccessToken{})
	for _, tc := range []struct {
		name, setting string
		o             azure.Options
	}{
		{"no host", "Host", azure.Options{AccessKey: "k"}},
		{"host with port", "Host", azure.Options{Host: "h:10000", AccessKey: "k"}},
		{"host with scheme", "Host", azure.Options{Host: "rediss://h", AccessKey: "k"}},
		{"negative port", "Port", azure.Options{Host: "h", Port: -1, AccessKey: "k"}},
		{"port too large", "Port", azure.Options{Host: "h", Port: 70000, AccessKey: "k"}},
		{"key and credential", "AccessKey", azure.Options{Host: "h", AccessKey: "k", Credential: cred}},
		{"unknown policy", "Clustering", azure.Options{Host: "h", AccessKey: "k", Clustering: 7}},
		{"negative token timeout", "TokenTimeout", azure.Options{Host: "h", Credential: cred, TokenTimeout: -time.Second}},
		{"negative attempts", "TokenAttempts", azure.Options{Host: "h", Credential: cred, TokenAttempts: -1}},
		{"negative retry delay", "TokenRetryDelay", azure.Options{Host: "h", Credential: cred, TokenRetryDelay: -1}},
		{"base address", "Base.InitAddress", azure.Options{Host: "h", AccessKey: "k", Base: rueidis.ClientOption{InitAddress: []string{"x:1"}}}},
		{"base TLS", "Base.TLSConfig", azure.Options{Host: "h", AccessKey: "k", Base: rueidis.ClientOption{TLSConfig: &tls.Config{}}}},
		{"base password", "Base.Username/Password", azure.Options{Host: "h", AccessKey: "k", Base: rueidis.ClientOption{Password: "p"}}},
		{"base auth fn", "Base.AuthCredentialsFn", azure.Options{Host: "h", AccessKey: "k", Base: rueidis.ClientOption{
			AuthCredentialsFn: func(rueidis.AuthCredentialsContext) (rueidis.AuthCredentials, error) {
				return rueidis.AuthCredentials{}, nil
			},
		}}},
		{"base sentinel", "Base.Sentinel", azure.Options{Host: "h", AccessKey: "k", Base: rueidis.ClientOption{Sentinel: rueidis.SentinelOption{MasterSet: "m"}}}},
		{"single client under OSS", "Base.ForceSingleClient", azure.Options{Host: "h", AccessKey: "k", Base: rueidis.ClientOption{ForceSingleClient: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := azure.ClientOption(context.Background(), tc.o)
			require.ErrorIs(t, err, azure.ErrInvalidOptions)
			assert.NotErrorIs(t, err, azure.ErrInsecure)
			assert.Contains(t, err.Error(), tc.setting)
			assert.Zero(t, cred.Calls(), "no token is requested for invalid options")
		})
	}
}

func TestClusteringPolicy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		c      azure.Clustering
		name   string
		single bool
	}{
		{azure.OSS, "oss", false},
		{azure.Enterprise, "enterprise", true},
		{azure.NonClustered, "non-clustered", true},
	} {
		opt, err := azure.ClientOption(context.Background(), azure.Options{Host: "h", AccessKey: "k", Clustering: tc.c})
		require.NoError(t, err)
		assert.Equal(t, tc.single, opt.ForceSingleClient, tc.name)

		assert.Equal(t, tc.name, tc.c.String())
		text, err := tc.c.MarshalText()
		require.NoError(t, err)
		var back azure.Clustering
		require.NoError(t, back.UnmarshalText(text))
		assert.Equal(t, tc.c, back)
	}
	// Azure's own names, in any case.
	for text, want := range map[string]azure.Clustering{
		"OSSCluster": azure.OSS, "EnterpriseCluster": azure.Enterprise, "NoCluster": azure.NonClustered, " Enterprise ": azure.Enterprise,
	} {
		var c azure.Clustering
		require.NoError(t, c.UnmarshalText([]byte(text)), text)
		assert.Equal(t, want, c, text)
	}
	var c azure.Clustering
	require.ErrorIs(t, c.UnmarshalText([]byte("sharded")), azure.ErrInvalidOptions)
	_, err := azure.Clustering(9).MarshalText()
	require.ErrorIs(t, err, azure.ErrInvalidOptions)

	// A policy that forces a single client anyway accepts Base.ForceSingleClient.
	_, err = azure.ClientOption(context.Background(), azure.Options{Host: "h", AccessKey: "k", Clustering: azure.Enterprise, Base: rueidis.ClientOption{ForceSingleClient: true}})
	require.NoError(t, err)
}

func TestClusteringCrossSlot(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"DEL", "unlink", "EXISTS", "MGET", "MSET", "TOUCH"} {
		assert.False(t, azure.OSS.CrossSlot(cmd), cmd)
		assert.True(t, azure.Enterprise.CrossSlot(cmd), cmd)
		assert.True(t, azure.NonClustered.CrossSlot(cmd), cmd)
	}
	for _, cmd := range []string{"MSETNX", "RENAME", "SUNIONSTORE", "EVALSHA", "EXEC"} {
		assert.False(t, azure.OSS.CrossSlot(cmd), cmd)
		assert.False(t, azure.Enterprise.CrossSlot(cmd), cmd)
		assert.True(t, azure.NonClustered.CrossSlot(cmd), cmd)
	}
}

// TestOptionsRedacted formats Options every way a program might log it: the
// access key must never come out.
func TestOptionsRedacted(t *testing.T) {
	t.Parallel()
	const key = "S3cr3tAccessKeyValue+/="
	o := azure.Options{Host: "shop.westeurope.redis.azure.net", AccessKey: key, Clustering: azure.Enterprise}

	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T", "%10.3v"} {
		outputs = append(outputs, fmt.Sprintf(verb, o), fmt.Sprintf(verb, &o), fmt.Sprintf(verb, []azure.Options{o}))
	}
	outputs = append(outputs, o.String(), o.GoString(), fmt.Sprint(o), fmt.Sprintln(o))
	outputs = append(outputs, fmt.Sprintf("%v", struct{ O azure.Options }{o}))

	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("connecting", "options", o, "ptr", &o)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("connecting", "options", o)
	outputs = append(outputs, text.String(), js.String())

	for _, out := range outputs {
		assert.NotContains(t, out, key)
		assert.NotContains(t, out, "S3cr3t")
	}
	assert.Equal(t, `azure.Options{Host: "shop.westeurope.redis.azure.net", Port: 10000, Auth: access key [redacted], Clustering: enterprise}`, o.String())
	assert.Contains(t, text.String(), "options.auth=\"access key [redacted]\"")
	var rec map[string]any
	require.NoError(t, json.Unmarshal(js.Bytes(), &rec))
	assert.Equal(t, "shop.westeurope.redis.azure.net", rec["options"].(map[string]any)["host"])

	entra := azure.Options{Host: "h", Credential: staticToken(azcore.AccessToken{})}
	assert.Contains(t, entra.String(), "Entra ID (*azure_test.fakeCred)")
	assert.Contains(t, azure.Options{Host: "h"}.String(), "Entra ID (DefaultAzureCredential)")
}

// TestErrorsRedacted checks the errors of the access-key paths: a rejected
// key and invalid options must not carry the key.
func TestErrorsRedacted(t *testing.T) {
	t.Parallel()
	const key = "An0therS3cretKey"
	for _, o := range []azure.Options{
		{Host: "h", AccessKey: key, Credential: staticToken(azcore.AccessToken{})},
		{Host: "h", AccessKey: key, TLSConfig: &tls.Config{InsecureSkipVerify: true}},
		{Host: "h", AccessKey: key, Base: rueidis.ClientOption{Password: key}},
	} {
		_, err := azure.ClientOption(context.Background(), o)
		require.Error(t, err)
		assert.NotContains(t, err.Error(), key)
		assert.False(t, errors.Is(err, azure.ErrCredential))
	}
}
