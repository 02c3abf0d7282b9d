package cache_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/asidetest"
	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/internal/redistest"
	"github.com/aside-go/aside/ttlpolicy"
)

// recorder is a slog.Handler that keeps every record, its attributes
// flattened to text.
type recorder struct {
	mu      *sync.Mutex
	records *[]logged
	attrs   []slog.Attr
}

type logged struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func newRecorder() *recorder {
	return &recorder{mu: &sync.Mutex{}, records: &[]logged{}}
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	l := logged{level: rec.Level, msg: rec.Message, attrs: map[string]string{}}
	for _, a := range r.attrs {
		l.attrs[a.Key] = a.Value.String()
	}
	rec.Attrs(func(a slog.Attr) bool {
		l.attrs[a.Key] = a.Value.String()
		return true
	})
	r.mu.Lock()
	*r.records = append(*r.records, l)
	r.mu.Unlock()
	return nil
}

func (r *recorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &recorder{mu: r.mu, records: r.records, attrs: append(append([]slog.Attr(nil), r.attrs...), attrs...)}
}

func (r *recorder) WithGroup(string) slog.Handler { return r }

func (r *recorder) all() []logged {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]logged(nil), *r.records...)
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(*r.records)
}

// text is the record as one string: message and every attribute.
func (l logged) text() string {
	var b strings.Builder
	b.WriteString(l.msg)
	for k, v := range l.attrs {
		fmt.Fprintf(&b, " %s=%s", k, v)
	}
	return b.String()
}

// find returns the records whose message starts with prefix.
func find(records []logged, prefix string) []logged {
	var out []logged
	for _, r := range records {
		if strings.HasPrefix(r.msg, prefix) {
			out = append(out, r)
		}
	}
	return out
}

// TestLogger: with WithLogger, a write-back that Redis refuses and the
// breaker tripping by a dead Redis are logged, at Warn, with the namespace
// and no key; the keys are in Debug records only; a hit logs nothing.
func TestLogger(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	rec := newRecorder()
	logger := slog.New(rec)
	const secret = "secret-key-4f1c"

	// A user who may read and take leases (plain commands) but not run
	// scripts nor transactions: the load's write, a script, is refused.
	ns := namespace(t)
	srv := redistest.Start(t, redistest.Config{Users: []redistest.User{{
		Name: "noscript", Password: "pw", Rules: append(redistest.CacheUserRules(ns), "-evalsha", "-eval", "-multi"),
	}}})
	opt := srv.ClientOption()
	opt.Username, opt.Password = "noscript", "pw"
	client, err := cache.Connect(opt, cache.WithLogger(logger))
	require.NoError(t, err)
	t.Cleanup(client.Close)
	src := newSource()
	src.set(secret, 7)
	c := versionCache(t, client, ns, src)
	v, err := c.Get(ctx, secret)
	require.NoError(t, err)
	require.EqualValues(t, 7, v)
	require.NoError(t, cache.AwaitWrites(ctx, c, secret))
	require.EqualValues(t, 1, c.Stats().WriteErrors)

	writes := find(rec.all(), "cache: write-back of a loaded value failed")
	require.Len(t, writes, 2, "a Warn record and its Debug record: %v", rec.all())
	assert.Equal(t, slog.LevelWarn, writes[0].level)
	assert.Equal(t, ns, writes[0].attrs["namespace"])
	assert.Equal(t, "redis", writes[0].attrs["error_class"])
	assert.Contains(t, writes[0].attrs["error"], "NOPERM", "Redis' error, which names no key")
	assert.Equal(t, slog.LevelDebug, writes[1].level)
	assert.Contains(t, writes[1].attrs["keys"], c.Key(secret), "the key, at Debug")

	// The breaker: Redis dies, the threshold's failures open it.
	srv2 := redistest.Start(t, redistest.Config{})
	client2, err := cache.Connect(srv2.ClientOption(), cache.WithLogger(logger))
	require.NoError(t, err)
	t.Cleanup(client2.Close)
	clock := asidetest.NewClock(time.Now())
	ns2 := namespace(t) + "-breaker"
	src2 := newSource()
	src2.set(secret, 1)
	b := versionCache(t, client2, ns2, src2, func(o *cache.Options[string, int64]) {
		o.Now = clock.Now
		o.BreakerThreshold = 3
		o.BreakerCooldown = time.Minute
	})
	// Hits log nothing.
	warmCopy(t, b, secret)
	n := rec.len()
	for range 10 {
		_, err := b.Get(ctx, secret)
		require.NoError(t, err)
	}
	assert.Equal(t, n, rec.len(), "hits log nothing")

	require.NoError(t, srv2.Kill())
	for i := range 10 {
		k := fmt.Sprintf("%s-%d", secret, i)
		src2.set(k, 1)
		_, err := b.Get(ctx, k)
		require.NoError(t, err, "fail open")
	}
	require.EqualValues(t, 1, b.Stats().BreakerTrips)
	opened := find(rec.all(), "cache: Redis-down breaker opened")
	require.Len(t, opened, 1)
	assert.Equal(t, slog.LevelWarn, opened[0].level)
	assert.Equal(t, ns2, opened[0].attrs["namespace"])
	assert.Equal(t, "3", opened[0].attrs["failures"])
	assert.Equal(t, "unavailable", opened[0].attrs["error_class"])

	// Redis is back: after the cooldown a probe closes the breaker.
	require.NoError(t, srv2.Restart())
	clock.Add(2 * time.Minute)
	src2.set(secret+"-after", 1)
	require.Eventually(t, func() bool {
		_, err := b.Get(ctx, secret+"-after")
		return err == nil && !b.Stats().BreakerOpen
	}, 10*time.Second, 10*time.Millisecond)
	closed := find(rec.all(), "cache: Redis-down breaker closed")
	require.Len(t, closed, 1)
	assert.Equal(t, slog.LevelInfo, closed[0].level)

	// No key in any record at Info or above; the keys are at Debug.
	var debugKeys int
	for _, r := range rec.all() {
		if r.level >= slog.LevelInfo {
			assert.NotContains(t, r.text(), secret, "a key in a %v record", r.level)
		} else if strings.Contains(r.text(), secret) {
			debugKeys++
		}
	}
	assert.Positive(t, debugKeys)
}

// TestLoggerDefault: without WithLogger nothing is logged (slog's default
// logger is not used).
func TestLoggerDefault(t *testing.T) {
	// Not parallel: it sets the default logger.
	rec := newRecorder()
	prev := slog.Default()
	slog.SetDefault(slog.New(rec))
	t.Cleanup(func() { slog.SetDefault(prev) })
	ctx := testContext(t)
	ns := namespace(t)
	srv := redistest.Start(t, redistest.Config{Users: []redistest.User{{
		Name: "noscript", Password: "pw", Rules: append(redistest.CacheUserRules(ns), "-evalsha", "-eval", "-multi"),
	}}})
	opt := srv.ClientOption()
	opt.Username, opt.Password = "noscript", "pw"
	src := newSource()
	src.set("k", 1)
	c := versionCache(t, connectWith(t, opt), ns, src)
	_, err := c.Get(ctx, "k")
	require.NoError(t, err)
	require.NoError(t, cache.AwaitWrites(ctx, c, "k"))
	require.EqualValues(t, 1, c.Stats().WriteErrors)
	assert.Zero(t, rec.len())
}

// TestLoggerConnect: Connect logs a server that refuses client tracking and
// the fallback taken, and Redis unreachable at Connect then the background
// connection made.
func TestLoggerConnect(t *testing.T) {
	t.Parallel()
	t.Run("tracking refused", func(t *testing.T) {
		t.Parallel()
		rec := newRecorder()
		srv := redistest.Start(t, redistest.Config{Users: []redistest.User{{
			Name: "app", Password: "secret", Rules: []string{"~*", "&*", "+@all", "-client|tracking"},
		}}})
		opt := srv.ClientOption()
		opt.Username, opt.Password = "app", "secret"
		client, err := cache.Connect(opt, cache.WithLogger(slog.New(rec)))
		require.NoError(t, err)
		t.Cleanup(client.Close)
		require.False(t, client.Tracking())
		refused := find(rec.all(), "cache: the server refused client tracking")
		require.Len(t, refused, 1, "%v", rec.all())
		assert.Equal(t, slog.LevelWarn, refused[0].level)
		assert.Contains(t, refused[0].msg, "without client-side caching")
	})
	t.Run("connected in the background", func(t *testing.T) {
		t.Parallel()
		rec := newRecorder()
		srv := redistest.Start(t, redistest.Config{})
		require.NoError(t, srv.Kill())
		client, err := cache.Connect(srv.ClientOption(), cache.WithLogger(slog.New(rec)))
		require.NoError(t, err)
		t.Cleanup(client.Close)
		unreachable := find(rec.all(), "cache: Redis unreachable; connecting in the background")
		require.Len(t, unreachable, 1, "%v", rec.all())
		assert.Equal(t, slog.LevelWarn, unreachable[0].level)
		require.NoError(t, srv.Restart())
		require.Eventually(t, client.Connected, 10*time.Second, 10*time.Millisecond)
		require.Eventually(t, func() bool {
			return len(find(rec.all(), "cache: connected to Redis in the background")) == 1
		}, 10*time.Second, 10*time.Millisecond, "logged after the client is stored")
		connected := find(rec.all(), "cache: connected to Redis in the background")
		assert.Equal(t, slog.LevelInfo, connected[0].level)
		assert.Equal(t, "true", connected[0].attrs["tracking"])
	})
}

// TestLoggerRefreshFailure: a background refresh whose loader fails is
// logged at Warn without the loader's text (which names the key), and at
// Debug with it.
func TestLoggerRefreshFailure(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	rec := newRecorder()
	srv := redistest.Start(t, redistest.Config{})
	client, err := cache.Connect(srv.ClientOption(), cache.WithLogger(slog.New(rec)))
	require.NoError(t, err)
	t.Cleanup(client.Close)
	const key = "refresh-key-9d2e"
	clock := asidetest.NewClock(time.Now())
	var failing atomic.Bool
	ns := namespace(t)
	c := versionCache(t, client, ns, newSource(), func(o *cache.Options[string, int64]) {
		o.TTL = ttlpolicy.Fixed(10 * time.Minute).WithSoft(0.5)
		o.Now = clock.Now
		o.Refresh = cache.RefreshBackground
		o.Loader = func(_ context.Context, k string) (int64, error) {
			if failing.Load() {
				return 0, errors.New("the database has no row for " + k)
			}
			return 1, nil
		}
	})
	warm(t, c, key)
	failing.Store(true)
	clock.Add(6 * time.Minute) // past the soft TTL, within the hard one
	v, err := c.Get(ctx, key)
	require.NoError(t, err)
	require.EqualValues(t, 1, v)
	const msg = "cache: background refresh failed"
	require.Eventually(t, func() bool { return len(find(rec.all(), msg)) == 2 }, 10*time.Second, time.Millisecond)
	got := find(rec.all(), msg)
	assert.Equal(t, slog.LevelWarn, got[0].level)
	assert.Equal(t, "error", got[0].attrs["error_class"])
	assert.NotContains(t, got[0].text(), key)
	assert.Equal(t, slog.LevelDebug, got[1].level)
	assert.Contains(t, got[1].attrs["error"], "the database has no row for "+key)
	assert.EqualValues(t, 1, c.Stats().RefreshErrors)
}
