package azure_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/azure"
)

func TestParseURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url  string
		want azure.Options
	}{
		{"rediss://:k3y@shop.westeurope.redis.azure.net:10000", azure.Options{Host: "shop.westeurope.redis.azure.net", Port: 10000, AccessKey: "k3y"}},
		{"rediss://default:k3y@shop.westeurope.redis.azure.net/0", azure.Options{Host: "shop.westeurope.redis.azure.net", AccessKey: "k3y"}},
		{"rediss://shop.westeurope.redis.azure.net?clustering=enterprise", azure.Options{Host: "shop.westeurope.redis.azure.net", Clustering: azure.Enterprise}},
		{"rediss://shop.westeurope.redis.azure.net:10000/?Clustering=NoCluster", azure.Options{Host: "shop.westeurope.redis.azure.net", Port: 10000, Clustering: azure.NonClustered}},
		{"rediss://:k@10.1.2.3:6380?clustering=oss&skip_verify=false&ssl_cert_reqs=required&ssl=true", azure.Options{Host: "10.1.2.3", Port: 6380, AccessKey: "k"}},
		{"rediss://:k@[fd00::1]:10000", azure.Options{Host: "[fd00::1]", Port: 10000, AccessKey: "k"}},
	} {
		got, err := azure.ParseURL(tc.url)
		require.NoError(t, err, tc.url)
		assert.Equal(t, tc.want.Host, got.Host, tc.url)
		assert.Equal(t, tc.want.Port, got.Port, tc.url)
		assert.Equal(t, tc.want.AccessKey, got.AccessKey, tc.url)
		assert.Equal(t, tc.want.Clustering, got.Clustering, tc.url)
		assert.Nil(t, got.Credential, tc.url)
		assert.Nil(t, got.TLSConfig, tc.url)
	}
}

// TestParseURLEncodedKey round-trips a base64 access key, which may hold '/',
// '+' and '=', through the URL encoding Go produces.
func TestParseURLEncodedKey(t *testing.T) {
	t.Parallel()
	const key = "aB3/+x9Q==z/"
	u := url.URL{Scheme: "rediss", User: url.UserPassword("", key), Host: "shop.westeurope.redis.azure.net:10000"}
	got, err := azure.ParseURL(u.String())
	require.NoError(t, err)
	assert.Equal(t, key, got.AccessKey)
}

func TestParseURLRefused(t *testing.T) {
	t.Parallel()
	const key = "SuperS3cretKey"
	for _, tc := range []struct {
		url, setting string
		insecure     bool
	}{
		{"redis://:" + key + "@shop.redis.azure.net:10000", "URL scheme", true},
		{"rediss://:" + key + "@h?skip_verify", "skip_verify", true},
		{"rediss://:" + key + "@h?skip_verify=true", "skip_verify", true},
		{"rediss://:" + key + "@h?insecure_skip_verify=1", "insecure_skip_verify", true},
		{"rediss://:" + key + "@h?InsecureSkipVerify=yes", "InsecureSkipVerify", true},
		{"rediss://:" + key + "@h?tls_insecure_skip_verify=true", "tls_insecure_skip_verify", true},
		{"rediss://:" + key + "@h?insecure=true", "insecure", true},
		{"rediss://:" + key + "@h?ssl_cert_reqs=none", "ssl_cert_reqs", true},
		{"rediss://:" + key + "@h?ssl=false", "ssl", true},
		{"http://:" + key + "@h", "URL scheme", false},
		{"rediss://:" + key + "@h?protocol=2", "URL parameter", false},
		{"rediss://:" + key + "@h?clustering=sharded", "Clustering", false},
		{"rediss://:" + key + "@h?clustering=oss&clustering=enterprise", "clustering", false},
		{"rediss://:" + key + "@h/1", "URL path", false},
		{"rediss://:" + key + "@h:0", "URL port", false},
		{"rediss://alice:" + key + "@h", "URL user", false},
		{"rediss://default@h", "URL password", false},
		{"rediss://:" + key + "@", "URL", false},
		{"rediss://:" + key + "@h#frag", "URL fragment", false},
		// A key with an unescaped '/' splits the URL in odd places; with
		// only digits before the '/', url.Parse even accepts it.
		{"rediss://:" + key + "/abc@h:10000", "percent-encode", false},
		{"rediss://:123/" + key + "@h:10000", "percent-encode", false},
		{"rediss://:%zz" + key + "@h", "does not parse", false},
		{"rediss://:" + key + "@h:port", "does not parse", false},
		{"rediss://:" + key + "@h?a=%zz", "URL query", false},
	} {
		_, err := azure.ParseURL(tc.url)
		require.ErrorIs(t, err, azure.ErrInvalidOptions, tc.url)
		assert.Equal(t, tc.insecure, errors.Is(err, azure.ErrInsecure), tc.url)
		assert.Contains(t, err.Error(), tc.setting, tc.url)
		assert.NotContains(t, err.Error(), key, tc.url)
		assert.NotContains(t, err.Error(), "S3cret", tc.url)
	}
}

// FuzzParseURL: no input panics, and no error quotes the user information,
// where the key goes.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"rediss://:key@shop.westeurope.redis.azure.net:10000?clustering=enterprise",
		"rediss://h", "redis://:k@h", "rediss://:a/b@h", "rediss://[::1]:1", "rediss://:k@h?skip_verify",
	} {
		f.Add(s, "Secret")
	}
	f.Fuzz(func(t *testing.T, raw, key string) {
		o, err := azure.ParseURL(raw)
		if err != nil {
			if !assert.ErrorIs(t, err, azure.ErrInvalidOptions) {
				return
			}
		} else {
			assert.NotEmpty(t, o.Host)
		}
		// The marker keeps the key from matching the fixed text of a message;
		// a key that also appears elsewhere in the URL may be quoted from there.
		key = "K3y" + key + "K3y"
		if strings.Contains(raw, key) {
			return
		}
		withKey := "rediss://:" + key + "@" + raw
		if _, err := azure.ParseURL(withKey); err != nil {
			assert.NotContains(t, err.Error(), key)
		}
	})
}
