package azure_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/redis/rueidis"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/azure"
	"github.com/aside-go/aside/internal/redistest"
)

// testHost is the name the tests give their local servers: an Azure-shaped
// name that does not resolve, reached through loopbackDial. The launcher puts
// it in every server certificate.
const testHost = "aside-test.westeurope.redis.azure.net"

// testCtx bounds what must succeed; a local server answers in microseconds,
// so the bound never decides a result.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// startServer starts a TLS-only redis-server whose certificate also names
// testHost.
func startServer(t *testing.T, cfg redistest.Config) *redistest.Server {
	t.Helper()
	cfg.TLS = true
	cfg.TLSHosts = append(cfg.TLSHosts, testHost)
	return redistest.Start(t, cfg)
}

func caPool(t *testing.T, pem []byte) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem))
	return pool
}

// loopbackDial is a rueidis DialCtxFn that sends host:port to addr, since
// testHost does not resolve, and dials every other address (the shards a
// cluster reports) as it is. It refuses anything but loopback. The TLS
// configuration is the one rueidis passes in, which is the one package azure
// built: the tests check that configuration, not one of their own.
func loopbackDial(host string, port int, addr string) func(context.Context, string, *net.Dialer, *tls.Config) (net.Conn, error) {
	target := net.JoinHostPort(host, strconv.Itoa(port))
	return func(ctx context.Context, dst string, d *net.Dialer, cfg *tls.Config) (net.Conn, error) {
		if dst == target {
			dst = addr
		}
		if h, _, err := net.SplitHostPort(dst); err != nil || !net.ParseIP(h).IsLoopback() {
			return nil, fmt.Errorf("test dialer: %q is not a loopback address", dst)
		}
		if cfg == nil {
			return nil, fmt.Errorf("test dialer: no TLS configuration for %s", dst)
		}
		td := tls.Dialer{NetDialer: d, Config: cfg}
		return td.DialContext(ctx, "tcp", dst)
	}
}

// quietLogger drops everything; tests that check a warning use capture.
func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// serverOptions reach srv as testHost, trusting only its CA.
func serverOptions(t *testing.T, srv *redistest.Server) azure.Options {
	return azure.Options{
		Host:      testHost,
		Port:      srv.Port(),
		TLSConfig: &tls.Config{RootCAs: caPool(t, srv.CACertPEM())},
		Logger:    quietLogger(),
		Base:      rueidis.ClientOption{DialCtxFn: loopbackDial(testHost, srv.Port(), srv.Addr())},
	}
}

// newJWT builds a token shaped like an Entra ID access token: a header, a
// base64url JSON payload with the given claims and a random "signature", so
// that every token is distinct.
func newJWT(claims map[string]any) string {
	enc := base64.RawURLEncoding
	body, err := json.Marshal(claims)
	if err != nil {
		panic(err)
	}
	sig := make([]byte, 32)
	_, _ = rand.Read(sig)
	return enc.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc.EncodeToString(body) + "." + enc.EncodeToString(sig)
}

// fakeCred is an azcore.TokenCredential whose answer is fn's; it records the
// scopes of every request.
type fakeCred struct {
	fn func(ctx context.Context, call int) (azcore.AccessToken, error)

	mu     sync.Mutex
	calls  int
	scopes [][]string
}

func (f *fakeCred) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	f.mu.Lock()
	f.calls++
	n := f.calls
	f.scopes = append(f.scopes, opts.Scopes)
	f.mu.Unlock()
	return f.fn(ctx, n)
}

func (f *fakeCred) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeCred) Scopes() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]string(nil), f.scopes...)
}

// staticToken always answers tok.
func staticToken(tok azcore.AccessToken) *fakeCred {
	return &fakeCred{fn: func(context.Context, int) (azcore.AccessToken, error) { return tok, nil }}
}

// clock is a settable time source for azure.SetClock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// capture is a logger whose records tests can read.
type capture struct {
	mu  sync.Mutex
	buf []byte
}

func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf = append(c.buf, p...)
	return len(p), nil
}

func (c *capture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.buf)
}

func (c *capture) Logger() *slog.Logger { return slog.New(slog.NewTextHandler(c, nil)) }
