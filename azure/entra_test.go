package azure_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/azure"
	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/internal/redistest"
)

const oid = "5f0c8a2e-1b7d-4c3e-9a61-2d4f8e7b9c10"

// entraOptions are Options with a fake clock, for tests that call the
// AuthCredentialsFn themselves instead of connecting.
func entraOptions(cred azcore.TokenCredential, clk *clock) azure.Options {
	o := azure.Options{Host: testHost, Credential: cred, Logger: quietLogger(), TokenRetryDelay: time.Millisecond}
	azure.SetClock(&o, clk.Now)
	return o
}

// authFn builds the option and returns its AuthCredentialsFn, called as
// rueidis calls it.
func authFn(t *testing.T, o azure.Options) func() (rueidis.AuthCredentials, error) {
	t.Helper()
	opt, err := azure.ClientOption(testCtx(t), o)
	require.NoError(t, err)
	require.NotNil(t, opt.AuthCredentialsFn)
	assert.Empty(t, opt.Password)
	return func() (rueidis.AuthCredentials, error) {
		return opt.AuthCredentialsFn(rueidis.AuthCredentialsContext{})
	}
}

// TestEntraIDConnects authenticates against a server whose ACL user is named
// by the token's oid and has the token as password; the user is the README's
// least-privileged one (and may ask who it is).
func TestEntraIDConnects(t *testing.T) {
	t.Parallel()
	tok := newJWT(map[string]any{"oid": oid, "exp": time.Now().Add(time.Hour).Unix()})
	srv := startServer(t, redistest.Config{
		Password: "admin",
		Users:    []redistest.User{{Name: oid, Password: tok, Rules: append(redistest.CacheUserRules("app"), "+acl|whoami")}},
	})
	cred := staticToken(azcore.AccessToken{Token: tok, ExpiresOn: time.Now().Add(time.Hour)})
	o := serverOptions(t, srv)
	o.Credential = cred
	ctx := testCtx(t)
	client, err := azure.NewClient(ctx, o)
	require.NoError(t, err)
	defer client.Close()

	user, err := client.Do(ctx, client.B().AclWhoami().Build()).ToString()
	require.NoError(t, err)
	assert.Equal(t, oid, user)
	require.NotEmpty(t, cred.Scopes())
	for _, s := range cred.Scopes() {
		assert.Equal(t, []string{azure.Scope}, s)
	}
	assert.Equal(t, 1, cred.Calls(), "the client's connections share the token fetched by ClientOption")
}

// TestCacheAsLeastPrivilegeEntraUser runs a cache on an Entra ID client
// whose user is the README's least-privileged one of namespace "app": reads,
// loads, writes and every kind of invalidation go through, with client-side
// caching on.
func TestCacheAsLeastPrivilegeEntraUser(t *testing.T) {
	t.Parallel()
	tok := newJWT(map[string]any{"oid": oid, "exp": time.Now().Add(time.Hour).Unix()})
	srv := startServer(t, redistest.Config{
		Password: "admin",
		Users:    []redistest.User{{Name: oid, Password: tok, Rules: redistest.CacheUserRules("app")}},
	})
	o := serverOptions(t, srv)
	o.Credential = staticToken(azcore.AccessToken{Token: tok, ExpiresOn: time.Now().Add(time.Hour)})
	ctx := testCtx(t)
	opt, err := azure.ClientOption(ctx, o)
	require.NoError(t, err)
	client, err := cache.Connect(opt, cache.RequireRedis())
	require.NoError(t, err)
	defer client.Close()
	require.True(t, client.Tracking(), "client tracking is granted")
	loads := 0
	c, err := cache.New(client, cache.Options[string, string]{
		Namespace: "app",
		Loader: func(_ context.Context, k string) (string, error) {
			loads++
			return "loaded " + k, nil
		},
	})
	require.NoError(t, err)

	for range 2 {
		v, err := c.Get(ctx, "a")
		require.NoError(t, err)
		assert.Equal(t, "loaded a", v)
	}
	assert.Equal(t, 1, loads, "the second Get is a hit")
	require.NoError(t, c.Set(ctx, "b", "set b", cache.WithTags("t")))
	m, err := c.GetMany(ctx, []string{"a", "b"})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"a": "loaded a", "b": "set b"}, m)
	n, err := c.InvalidateTag(ctx, "t")
	require.NoError(t, err)
	assert.EqualValues(t, 1, n)
	n, err = c.InvalidatePattern(ctx, "*")
	require.NoError(t, err)
	assert.EqualValues(t, 1, n)
	require.NoError(t, c.Invalidate(ctx, "a"))
	s := c.Stats()
	assert.Zero(t, s.RedisErrors)
	assert.Zero(t, s.WriteErrors)
}

// TestRefreshSchedule follows one token through its life on a fake clock.
func TestRefreshSchedule(t *testing.T) {
	t.Parallel()
	clk := newClock()
	var mu sync.Mutex
	tokens := []string{}
	cred := &fakeCred{fn: func(context.Context, int) (azcore.AccessToken, error) {
		mu.Lock()
		defer mu.Unlock()
		tok := newJWT(map[string]any{"oid": oid})
		tokens = append(tokens, tok)
		return azcore.AccessToken{Token: tok, ExpiresOn: clk.Now().Add(time.Hour)}, nil
	}}
	fn := authFn(t, entraOptions(cred, clk))
	start := clk.Now()

	// Until 70% of the hour every call gets the first token, each with its
	// own moment to re-authenticate between 70% and 80%.
	seen := map[time.Time]bool{}
	for range 200 {
		c, err := fn()
		require.NoError(t, err)
		assert.Equal(t, oid, c.Username)
		assert.Equal(t, tokens[0], c.Password)
		assert.False(t, c.RefreshAfter.Before(start.Add(42*time.Minute)), c.RefreshAfter.Sub(start))
		assert.False(t, c.RefreshAfter.After(start.Add(48*time.Minute)), c.RefreshAfter.Sub(start))
		seen[c.RefreshAfter] = true
	}
	assert.Greater(t, len(seen), 100, "RefreshAfter is spread out, not one instant for all connections")
	clk.Advance(41 * time.Minute)
	_, err := fn()
	require.NoError(t, err)
	assert.Equal(t, 1, cred.Calls(), "no request before the token is 70% through its life")

	// The first call from 70% on fetches a new token, and the schedule
	// starts again from it.
	clk.Advance(2 * time.Minute)
	now := clk.Now()
	c, err := fn()
	require.NoError(t, err)
	assert.Equal(t, 2, cred.Calls())
	assert.Equal(t, tokens[1], c.Password)
	assert.False(t, c.RefreshAfter.Before(now.Add(42*time.Minute)))
	assert.False(t, c.RefreshAfter.After(now.Add(48*time.Minute)))
	for _, s := range cred.Scopes() {
		assert.Equal(t, []string{azure.Scope}, s)
	}
}

func TestRefreshScheduleFollowsRefreshOn(t *testing.T) {
	t.Parallel()
	clk := newClock()
	start := clk.Now()
	cred := staticToken(azcore.AccessToken{
		Token:     newJWT(map[string]any{"oid": oid}),
		ExpiresOn: start.Add(24 * time.Hour),
		RefreshOn: start.Add(12 * time.Hour),
	})
	fn := authFn(t, entraOptions(cred, clk))
	for range 50 {
		c, err := fn()
		require.NoError(t, err)
		assert.False(t, c.RefreshAfter.Before(start.Add(12*time.Hour)))
		// The spread behind RefreshOn is 10% of the life: 2.4 h.
		assert.False(t, c.RefreshAfter.After(start.Add(12*time.Hour+144*time.Minute)))
	}
}

// TestRefreshNeverInThePast: a token already close to its expiry when it is
// received still gets a RefreshAfter in the future and before the expiry.
func TestRefreshNeverInThePast(t *testing.T) {
	t.Parallel()
	clk := newClock()
	start := clk.Now()
	cred := staticToken(azcore.AccessToken{Token: newJWT(map[string]any{"oid": oid}), ExpiresOn: start.Add(2 * time.Second)})
	fn := authFn(t, entraOptions(cred, clk))
	c, err := fn()
	require.NoError(t, err)
	assert.True(t, c.RefreshAfter.After(start))
	assert.True(t, c.RefreshAfter.Before(start.Add(2*time.Second)))
}

// TestRefreshFailureKeepsCurrentToken: when the identity endpoint fails at
// refresh time, connections keep the current token and retry soon, until the
// token is about to expire; then the failure surfaces.
func TestRefreshFailureKeepsCurrentToken(t *testing.T) {
	t.Parallel()
	clk := newClock()
	start := clk.Now()
	first := newJWT(map[string]any{"oid": oid})
	outage := errors.New("identity endpoint unreachable")
	cred := &fakeCred{fn: func(_ context.Context, call int) (azcore.AccessToken, error) {
		if call == 1 {
			return azcore.AccessToken{Token: first, ExpiresOn: start.Add(time.Hour)}, nil
		}
		return azcore.AccessToken{}, outage
	}}
	var logs capture
	o := entraOptions(cred, clk)
	o.Logger = logs.Logger()
	o.TokenRetryDelay = time.Second // real pauses between attempts: keep them short...
	o.TokenAttempts = 1             // ...by not retrying within one request
	fn := authFn(t, o)

	clk.Advance(50 * time.Minute)
	c, err := fn()
	require.NoError(t, err, "the current token is still good for 10 minutes")
	assert.Equal(t, first, c.Password)
	assert.True(t, c.RefreshAfter.After(clk.Now()))
	assert.True(t, c.RefreshAfter.Before(start.Add(time.Hour)), "retry before the token expires")
	assert.Less(t, c.RefreshAfter.Sub(clk.Now()), 5*time.Minute, "retry soon")
	assert.Equal(t, 2, cred.Calls())
	assert.Contains(t, logs.String(), "refresh failed")
	// Other connections asking right after the failure get the same answer
	// without a request of their own.
	for range 10 {
		c, err := fn()
		require.NoError(t, err)
		assert.Equal(t, first, c.Password)
	}
	assert.Equal(t, 2, cred.Calls())
	assert.Contains(t, logs.String(), outage.Error())
	assert.NotContains(t, logs.String(), first)

	// 20 s before expiry the token is no longer handed out (grace: 5% of
	// the life, at most 30 s).
	clk.Advance(9*time.Minute + 40*time.Second)
	_, err = fn()
	require.ErrorIs(t, err, azure.ErrCredential)
	require.ErrorIs(t, err, outage)
	assert.NotContains(t, err.Error(), first)
	assert.Equal(t, 3, cred.Calls())
}

func TestTransientFailureRetried(t *testing.T) {
	t.Parallel()
	clk := newClock()
	cred := &fakeCred{fn: func(_ context.Context, call int) (azcore.AccessToken, error) {
		if call <= 2 {
			return azcore.AccessToken{}, errors.New("503 from the identity endpoint")
		}
		return azcore.AccessToken{Token: newJWT(map[string]any{"oid": oid}), ExpiresOn: clk.Now().Add(time.Hour)}, nil
	}}
	fn := authFn(t, entraOptions(cred, clk))
	assert.Equal(t, 3, cred.Calls())
	c, err := fn()
	require.NoError(t, err)
	assert.Equal(t, oid, c.Username)
}

func TestTransientFailureExhausted(t *testing.T) {
	t.Parallel()
	outage := errors.New("503 from the identity endpoint")
	cred := &fakeCred{fn: func(context.Context, int) (azcore.AccessToken, error) { return azcore.AccessToken{}, outage }}
	o := entraOptions(cred, newClock())
	o.TokenAttempts = 4
	_, err := azure.ClientOption(testCtx(t), o)
	require.ErrorIs(t, err, azure.ErrCredential)
	require.ErrorIs(t, err, outage)
	assert.Equal(t, 4, cred.Calls())
	assert.Contains(t, err.Error(), "4 attempts")
}

// TestPermanentFailureNotRetried: an error the Azure SDK marks final is
// returned at once.
func TestPermanentFailureNotRetried(t *testing.T) {
	t.Parallel()
	final := azidentity.NewCredentialUnavailableError("no managed identity endpoint")
	cred := &fakeCred{fn: func(context.Context, int) (azcore.AccessToken, error) { return azcore.AccessToken{}, final }}
	_, err := azure.ClientOption(testCtx(t), entraOptions(cred, newClock()))
	require.ErrorIs(t, err, azure.ErrCredential)
	require.ErrorIs(t, err, final)
	assert.Equal(t, 1, cred.Calls())
	assert.Contains(t, err.Error(), "no managed identity endpoint")
}

// TestTokenRequestTimeout: a credential that never answers is cut off by
// TokenTimeout, whether it honours its context or not.
func TestTokenRequestTimeout(t *testing.T) {
	t.Parallel()
	t.Run("honours context", func(t *testing.T) {
		t.Parallel()
		var deadlines []bool
		var mu sync.Mutex
		cred := &fakeCred{fn: func(ctx context.Context, _ int) (azcore.AccessToken, error) {
			_, ok := ctx.Deadline()
			mu.Lock()
			deadlines = append(deadlines, ok)
			mu.Unlock()
			<-ctx.Done()
			return azcore.AccessToken{}, ctx.Err()
		}}
		o := entraOptions(cred, newClock())
		o.TokenTimeout = 20 * time.Millisecond
		o.TokenAttempts = 2
		_, err := azure.ClientOption(context.Background(), o)
		require.ErrorIs(t, err, azure.ErrCredential)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, 2, cred.Calls())
		mu.Lock()
		defer mu.Unlock()
		assert.Equal(t, []bool{true, true}, deadlines, "every request carries a deadline")
	})
	t.Run("ignores context", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		cred := &fakeCred{fn: func(context.Context, int) (azcore.AccessToken, error) {
			defer wg.Done()
			<-release
			return azcore.AccessToken{}, errors.New("too late")
		}}
		o := entraOptions(cred, newClock())
		o.TokenTimeout = 20 * time.Millisecond
		o.TokenAttempts = 1
		_, err := azure.ClientOption(context.Background(), o)
		require.ErrorIs(t, err, azure.ErrCredential)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Contains(t, err.Error(), "TokenTimeout")
		close(release) // let the abandoned request end before goleak looks
		wg.Wait()
	})
	t.Run("caller's context", func(t *testing.T) {
		t.Parallel()
		cred := &fakeCred{fn: func(ctx context.Context, _ int) (azcore.AccessToken, error) {
			<-ctx.Done()
			return azcore.AccessToken{}, ctx.Err()
		}}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := azure.ClientOption(ctx, entraOptions(cred, newClock()))
		require.ErrorIs(t, err, azure.ErrCredential)
		require.ErrorIs(t, err, context.Canceled)
		assert.Zero(t, cred.Calls(), "a cancelled caller makes no request")
	})
}

// TestUnusableTokens: tokens aside cannot use fail with a clear error that
// does not contain them.
func TestUnusableTokens(t *testing.T) {
	t.Parallel()
	noOID := newJWT(map[string]any{"sub": "x", "appid": "y"})
	for _, tc := range []struct {
		name     string
		tok      azcore.AccessToken
		sentinel error
		text     string
	}{
		{"no oid", azcore.AccessToken{Token: noOID, ExpiresOn: time.Now().Add(time.Hour)}, azure.ErrNoOID, "oid"},
		{"not a JWT", azcore.AccessToken{Token: "opaque-reference-token-value", ExpiresOn: time.Now().Add(time.Hour)}, azure.ErrCredential, "not a JWT"},
		{"empty", azcore.AccessToken{ExpiresOn: time.Now().Add(time.Hour)}, azure.ErrCredential, "empty"},
		{"expired", azcore.AccessToken{Token: newJWT(map[string]any{"oid": oid}), ExpiresOn: time.Now().Add(-time.Minute)}, azure.ErrCredential, "expired"},
		{"no expiry", azcore.AccessToken{Token: newJWT(map[string]any{"oid": oid})}, azure.ErrCredential, "no expiry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cred := staticToken(tc.tok)
			o := azure.Options{Host: testHost, Credential: cred, Logger: quietLogger()}
			_, err := azure.ClientOption(testCtx(t), o)
			require.ErrorIs(t, err, tc.sentinel)
			require.ErrorIs(t, err, azure.ErrCredential)
			assert.Contains(t, err.Error(), tc.text)
			if tc.tok.Token != "" {
				assert.NotContains(t, err.Error(), tc.tok.Token)
			}
			assert.Equal(t, 1, cred.Calls(), "a bad token is not asked for again")
		})
	}

	// ExpiresOn missing: the exp claim stands in.
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	cred := staticToken(azcore.AccessToken{Token: newJWT(map[string]any{"oid": oid, "exp": exp.Unix()})})
	_, err := azure.ClientOption(testCtx(t), azure.Options{Host: testHost, Credential: cred, Logger: quietLogger()})
	require.NoError(t, err)
}

// TestConcurrentCallsShareOneRequest: connections refreshing together cause
// one token request, not one each.
func TestConcurrentCallsShareOneRequest(t *testing.T) {
	t.Parallel()
	clk := newClock()
	gate := make(chan struct{})
	cred := &fakeCred{fn: func(_ context.Context, call int) (azcore.AccessToken, error) {
		if call > 1 {
			<-gate
		}
		return azcore.AccessToken{Token: newJWT(map[string]any{"oid": oid}), ExpiresOn: clk.Now().Add(time.Hour)}, nil
	}}
	fn := authFn(t, entraOptions(cred, clk))
	clk.Advance(45 * time.Minute)

	const callers = 16
	results := make(chan rueidis.AuthCredentials, callers)
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			c, err := fn()
			assert.NoError(t, err)
			results <- c
		})
	}
	// Every caller either waits on the one request or has not started; the
	// request cannot finish before the gate opens, so at most one is made.
	close(gate)
	wg.Wait()
	close(results)
	var passwords []string
	for c := range results {
		passwords = append(passwords, c.Password)
	}
	require.Len(t, passwords, callers)
	assert.Equal(t, 2, cred.Calls())
	for _, p := range passwords {
		assert.Equal(t, passwords[0], p)
	}
}

// TestLiveClientSurfacesCredentialFailure: once the credential fails for
// good and the current token runs out, commands fail with the credential's
// error instead of hanging.
func TestLiveClientSurfacesCredentialFailure(t *testing.T) {
	t.Parallel()
	tok := newJWT(map[string]any{"oid": oid})
	srv := startServer(t, redistest.Config{
		Password: "admin",
		Users:    []redistest.User{{Name: oid, Password: tok, Rules: []string{"~*", "&*", "+@all"}}},
	})
	revoked := azidentity.NewCredentialUnavailableError("managed identity removed")
	cred := &fakeCred{fn: func(_ context.Context, call int) (azcore.AccessToken, error) {
		if call == 1 {
			return azcore.AccessToken{Token: tok, ExpiresOn: time.Now().Add(time.Second)}, nil
		}
		return azcore.AccessToken{}, revoked
	}}
	o := serverOptions(t, srv)
	o.Credential = cred
	o.TokenRetryDelay = 50 * time.Millisecond
	ctx := testCtx(t)
	client, err := azure.NewClient(ctx, o)
	require.NoError(t, err)
	defer client.Close()
	require.NoError(t, client.Do(ctx, client.B().Ping().Build()).Error())

	// The token lives a second; ctx bounds the wait should the failure
	// never surface, and then the test fails.
	for {
		err = client.Do(ctx, client.B().Ping().Build()).Error()
		if err != nil || ctx.Err() != nil {
			break
		}
	}
	require.ErrorIs(t, err, azure.ErrCredential)
	require.ErrorIs(t, err, revoked)
	assert.NotContains(t, err.Error(), tok)
	assert.GreaterOrEqual(t, cred.Calls(), 2)
}
