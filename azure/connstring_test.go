package azure_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/azure"
	"github.com/aside-go/aside/internal/redistest"
)

func TestParseConnectionString(t *testing.T) {
	t.Parallel()
	const host = "shop.westeurope.redis.azure.net"
	for _, tc := range []struct {
		s    string
		want azure.Options
		tls  *tls.Config
	}{
		// The portal's form.
		{host + ":10000,password=" + accessKey + ",ssl=True,abortConnect=False",
			azure.Options{Host: host, Port: 10000, AccessKey: accessKey}, nil},
		// Names ignore case, parts ignore the space around them and empty
		// parts; a key keeps its '=' padding, '/' and '+'.
		{" " + host + " , PASSWORD = a/b+c== ,SSL=true,,AbortConnect=false,USER=default ",
			azure.Options{Host: host, AccessKey: "a/b+c=="}, nil},
		{host + ",ssl=1,clustering=enterprise", azure.Options{Host: host, Clustering: azure.Enterprise}, nil},
		{"10.1.2.3:6380,password=k,sslHost=" + host + ",sslProtocols=tls12|tls13,defaultDatabase=0,protocol=resp3",
			azure.Options{Host: "10.1.2.3", Port: 6380, AccessKey: "k"},
			&tls.Config{ServerName: host, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13}},
		{"[fd00::1]:10000,password=k,sslProtocols=Tls13", azure.Options{Host: "[fd00::1]", Port: 10000, AccessKey: "k"},
			&tls.Config{MinVersion: tls.VersionTLS13, MaxVersion: tls.VersionTLS13}},
		{host + ",connectTimeout=5000,syncTimeout=7000,asyncTimeout=3000,keepAlive=60,name=orders,connectRetry=3,allowAdmin=false",
			azure.Options{Host: host}, nil},
		{host + ",clientName=orders,keepAlive=-1", azure.Options{Host: host}, nil},
	} {
		got, err := azure.ParseConnectionString(tc.s)
		require.NoError(t, err, tc.s)
		assert.Equal(t, tc.want.Host, got.Host, tc.s)
		assert.Equal(t, tc.want.Port, got.Port, tc.s)
		assert.Equal(t, tc.want.AccessKey, got.AccessKey, tc.s)
		assert.Equal(t, tc.want.Clustering, got.Clustering, tc.s)
		assert.Nil(t, got.Credential, tc.s)
		if tc.tls == nil {
			assert.Nil(t, got.TLSConfig, tc.s)
		} else {
			require.NotNil(t, got.TLSConfig, tc.s)
			assert.Equal(t, tc.tls.ServerName, got.TLSConfig.ServerName, tc.s)
			assert.Equal(t, tc.tls.MinVersion, got.TLSConfig.MinVersion, tc.s)
			assert.Equal(t, tc.tls.MaxVersion, got.TLSConfig.MaxVersion, tc.s)
			assert.False(t, got.TLSConfig.InsecureSkipVerify, tc.s)
		}
	}

	o, err := azure.ParseConnectionString(host + ",connectTimeout=5000,syncTimeout=7000,asyncTimeout=3000,keepAlive=60,name=orders")
	require.NoError(t, err)
	assert.Equal(t, 5*time.Second, o.Base.Dialer.Timeout)
	assert.Equal(t, 7*time.Second, o.Base.ConnWriteTimeout, "the larger of syncTimeout and asyncTimeout")
	assert.Equal(t, time.Minute, o.Base.Dialer.KeepAlive)
	assert.Equal(t, "orders", o.Base.ClientName)
	o, err = azure.ParseConnectionString(host + ",clientName=billing,keepAlive=-1")
	require.NoError(t, err)
	assert.Equal(t, "billing", o.Base.ClientName)
	assert.Zero(t, o.Base.Dialer.KeepAlive, "-1 leaves rueidis' default")
}

func TestParseConnectionStringRefused(t *testing.T) {
	t.Parallel()
	const key = "SuperS3cretKey"
	const h = "h.redis.azure.net:10000,password=" + key
	for _, tc := range []struct {
		s, text  string
		insecure bool
	}{
		{h + ",ssl=False", "azure: invalid options: insecure TLS setting refused: connection string option ssl must not turn TLS off: Azure Managed Redis takes TLS only", true},
		{h + ",sslProtocols=tls11|tls12", "azure: invalid options: insecure TLS setting refused: connection string option sslProtocols allows a protocol older than TLS 1.2", true},
		{h + ",ssl=maybe", "azure: invalid options: connection string option ssl is not true or false", false},
		{h + ",sslProtocols=tls14", "connection string option sslProtocols names a protocol other than tls12 and tls13", false},
		{h + ",ssl=true,tlsEverything=yes", "azure: invalid options: connection string option tlsEverything is unknown", false},
		{h + ",tlsEverything=yes", "azure: invalid options: connection string has an unknown option (its name is not quoted: it may be a piece of the access key)", false},
		{h + ",serviceName=mymaster", "azure: invalid options: connection string option serviceName is a StackExchange.Redis option that azure does not support", false},
		{h + ",checkCertificateRevocation=true", "connection string option checkCertificateRevocation is a StackExchange.Redis option", false},
		{h + ",password=again", "azure: invalid options: connection string option password is given twice", false},
		{h + ",name=a,clientName=b", "connection string option clientName is given twice", false},
		{h + ",user=alice", "connection string option user must be empty or \"default\"", false},
		{"h,password=", "connection string option password is empty", false},
		{h + ",defaultDatabase=1", "connection string option defaultDatabase must be 0: Azure Managed Redis has database 0 only", false},
		{h + ",protocol=resp2", "connection string option protocol must be resp3", false},
		{h + ",connectTimeout=soon", "connection string option connectTimeout is not a whole number of milliseconds from 1 to a day", false},
		{h + ",syncTimeout=0", "connection string option syncTimeout is not a whole number", false},
		{h + ",keepAlive=-2", "connection string option keepAlive is not a number of seconds", false},
		{h + ",connectRetry=x", "connection string option connectRetry is not a number of attempts", false},
		{h + ",abortConnect=nope", "connection string option abortConnect is not true or false", false},
		{h + ",clustering=sharded", "connection string option clustering is not one of oss, enterprise, non-clustered", false},
		{h + ",other.host:10000", "azure: invalid options: connection string names a second endpoint", false},
		{"password=" + key + ",ssl=true", "azure: invalid options: connection string names no endpoint (expected host[:port] first)", false},
		{"h:0,password=" + key, "connection string endpoint has a port that is not a number in 1..65535", false},
		{"h:port,password=" + key, "connection string endpoint has a port", false},
		{"fd00::1,password=" + key, "connection string endpoint has more than one ':'", false},
		{"[fd00::1,password=" + key, "connection string endpoint has a '[' without ']'", false},
		{"[host]:1,password=" + key, "connection string endpoint has brackets around something other than an IPv6 address", false},
		// A key holding a comma, which the form cannot carry: its pieces
		// are never quoted, whatever they look like.
		{"h,password=" + key[:5] + "," + key[5:], "connection string names a second endpoint (not quoted", false},
		{"h,password=" + key[:5] + "," + key[5:] + "=x", "connection string has an unknown option (its name is not quoted", false},
		{"h,password=k,ssl=true,tlsEverything=yes", "connection string option tlsEverything is unknown", false},
		{"h,password=ab,c/" + key + "=x", "connection string has an unknown option (its name is not quoted", false},
		{"h/" + key + ",ssl=true", "connection string endpoint is not host[:port] (not quoted", false},
	} {
		_, err := azure.ParseConnectionString(tc.s)
		require.ErrorIs(t, err, azure.ErrInvalidOptions, tc.s)
		assert.Equal(t, tc.insecure, errors.Is(err, azure.ErrInsecure), tc.s)
		assert.Contains(t, err.Error(), tc.text, tc.s)
		assert.NotContains(t, err.Error(), key[5:], tc.s)
		assert.NotContains(t, err.Error(), key, tc.s)
	}
}

// TestConnectionStringConnects: the portal's string, pointed at a private
// TLS server, connects with its access key and client name; nothing logged
// or printed of the options, and no error of a wrong key, shows the key.
func TestConnectionStringConnects(t *testing.T) {
	t.Parallel()
	srv := startServer(t, redistest.Config{Password: accessKey})
	ctx := testCtx(t)
	s := fmt.Sprintf("%s:%d,password=%s,ssl=True,abortConnect=False,sslHost=%s,name=orders,connectTimeout=5000,syncTimeout=5000,clustering=non-clustered",
		testHost, srv.Port(), accessKey, testHost)
	o, err := azure.ParseConnectionString(s)
	require.NoError(t, err)
	logs := &capture{}
	o.Logger = logs.Logger()
	o.TLSConfig.RootCAs = caPool(t, srv.CACertPEM())
	o.Base.DialCtxFn = loopbackDial(testHost, srv.Port(), srv.Addr())

	client, err := azure.NewClient(ctx, o)
	require.NoError(t, err)
	defer client.Close()
	name, err := client.Do(ctx, client.B().ClientGetname().Build()).ToString()
	require.NoError(t, err)
	assert.Equal(t, "orders", name)

	o.Logger.Info("connected", slog.Any("options", o))
	printed := fmt.Sprintf("%v %+v %#v %s %q", o, o, o, o, o)
	assert.NotContains(t, logs.String(), accessKey)
	assert.Contains(t, logs.String(), testHost)
	assert.NotContains(t, printed, accessKey)

	wrong, err := azure.ParseConnectionString(strings.Replace(s, accessKey, "Wr0ngKeyWr0ngKey", 1))
	require.NoError(t, err)
	wrong.Logger = logs.Logger()
	wrong.TLSConfig.RootCAs = o.TLSConfig.RootCAs
	wrong.Base.DialCtxFn = o.Base.DialCtxFn
	_, err = azure.NewClient(ctx, wrong)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "WRONGPASS")
	assert.NotContains(t, err.Error(), "Wr0ngKeyWr0ngKey")
	assert.NotContains(t, logs.String(), "Wr0ngKeyWr0ngKey")
}

// FuzzParseConnectionString: no input panics, a string that parses has a
// host, and no error quotes the key, wherever in the string it is put.
func FuzzParseConnectionString(f *testing.F) {
	for _, s := range []string{
		"shop.westeurope.redis.azure.net:10000,ssl=True,abortConnect=False",
		"h", "h,ssl=false", "[::1]:1,sslProtocols=tls12|tls13", "h,serviceName=x", "a,b", "h,x=", "=,=", "h,password=",
	} {
		f.Add(s, "Secret")
	}
	f.Fuzz(func(t *testing.T, s, key string) {
		o, err := azure.ParseConnectionString(s)
		if err != nil {
			if !assert.ErrorIs(t, err, azure.ErrInvalidOptions) {
				return
			}
		} else {
			assert.NotEmpty(t, o.Host)
		}
		// The marker keeps the key from matching the fixed text of a
		// message; a key that also appears elsewhere may be quoted from
		// there.
		key = "K3y" + key + "K3y"
		if strings.Contains(s, key) || strings.Contains(key, ",") {
			return
		}
		for _, withKey := range []string{
			s + ",password=" + key,
			"password=" + key + "," + s,
			strings.Replace(s, ",", ",password="+key+",", 1),
		} {
			if o, err := azure.ParseConnectionString(withKey); err != nil {
				assert.NotContains(t, err.Error(), key)
			} else {
				assert.NotContains(t, fmt.Sprint(o), key)
			}
		}
	})
}
