package cache_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/codec"
	"github.com/aside-go/aside/internal/redistest"
)

// pythonWithRedis returns a python3 that imports redis-py: Debian's
// python3-redis installs for /usr/bin/python3, which may not be the python3
// first on PATH (pyenv). The test fails, saying how to install it, when
// there is none.
func pythonWithRedis(t *testing.T) string {
	t.Helper()
	var tried []string
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		path, err := exec.LookPath(py)
		if err != nil {
			continue
		}
		tried = append(tried, path)
		if exec.Command(path, "-c", "import redis").Run() == nil {
			return path
		}
	}
	if len(tried) == 0 {
		t.Fatal("python3 is required for the redis-py interop test: install it with\n  sudo apt-get install -y python3 python3-redis")
	}
	t.Fatalf("redis-py is required for the interop test (tried %v): install it with\n  sudo apt-get install -y python3-redis\n(Debian's package is for /usr/bin/python3; elsewhere: python3 -m pip install redis)", tried)
	return ""
}

// runPy runs testdata/interop.py against addr and decodes what it prints
// into out.
func runPy(t *testing.T, py, addr string, out any, args ...string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(py, append([]string{"testdata/interop.py", addr}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "interop.py %v: %s", args, stderr.String())
	require.NoError(t, json.Unmarshal(stdout.Bytes(), out), "interop.py printed %q", stdout.String())
}

// agree asserts that a PTTL read first (first, by one side) and a TTL read
// after it (then, by the other) agree to the millisecond: the key's expiry
// is one instant of the server's clock, so the later reading is never
// longer, and shorter by at most the time between the two readings, which
// is bounded by between, measured around both (plus 1ms: each side
// truncates to whole milliseconds).
func agree(t *testing.T, key string, first, then time.Duration, between time.Duration) {
	t.Helper()
	d := first - then
	t.Logf("%s: %v, then %v: %v apart, within %v", key, first, then, d, between)
	assert.GreaterOrEqual(t, d, time.Duration(0), "%s: read first %v, then %v", key, first, then)
	assert.LessOrEqual(t, d, between.Truncate(time.Millisecond)+time.Millisecond, "%s: read first %v, then %v, %v apart at most", key, first, then, between)
}

// TestInteropWithRedisPy runs the guide's operations in Python (redis-py)
// against a private redis-server, reads what they wrote through aside
// (codec.String, codec.JSON) with the expiries Python set, then writes
// through aside in plain mode and reads it back in Python, expiries
// included. A PTTL read by one side and a TTL read by the other agree to the
// millisecond (see agree).
func TestInteropWithRedisPy(t *testing.T) {
	t.Parallel()
	py := pythonWithRedis(t)
	ctx := context.Background()
	srv := redistest.Start(t, redistest.Config{})
	client := connect(t, srv)
	const ns = "guide"
	strs, err := cache.New(client, cache.Options[string, string]{Namespace: ns, Codec: codec.String()})
	require.NoError(t, err)
	type person struct {
		Name  string   `json:"name"`
		Roles []string `json:"roles"`
		Age   int      `json:"age"`
	}
	people, err := cache.New(client, cache.Options[string, person]{Namespace: ns + "-json", Codec: codec.JSON[person]()})
	require.NoError(t, err)

	// Python writes, aside reads.
	var wrote struct {
		Deleted int              `json:"deleted"`
		PTTL    map[string]int64 `json:"pttl"`
	}
	start := time.Now()
	runPy(t, py, srv.Addr(), &wrote, "write", ns)
	want := map[string]string{
		"set": "hello", "mset1": "one", "mset2": "two", "setex": "sixty seconds", "psetex": "45000 ms",
		"expire": "expire 30 s", "pexpire": "pexpire 25000 ms", "expireat": "expire at", "persist": "persisted",
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	got, err := strs.GetMany(ctx, keys)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	ada, err := people.Get(ctx, "ada")
	require.NoError(t, err)
	assert.Equal(t, person{Name: "Ada", Roles: []string{"admin", "author"}, Age: 36}, ada)

	for name, set := range map[string]time.Duration{
		"setex": 60 * time.Second, "psetex": 45 * time.Second, "expire": 30 * time.Second,
		"pexpire": 25 * time.Second, "expireat": 121 * time.Second,
	} {
		ttl, err := strs.TTL(ctx, name)
		require.NoError(t, err)
		between := time.Since(start)
		agree(t, name, time.Duration(wrote.PTTL[strs.Key(name)])*time.Millisecond, ttl, between)
		assert.LessOrEqual(t, ttl, set, name)
	}
	for _, name := range []string{"set", "mset1", "persist"} {
		ttl, err := strs.TTL(ctx, name)
		require.NoError(t, err)
		assert.Equal(t, cache.NoExpiry, ttl, "%s has no expiry (PTTL %d in Python)", name, wrote.PTTL[strs.Key(name)])
		assert.EqualValues(t, -1, wrote.PTTL[strs.Key(name)])
	}
	assert.Equal(t, 5, wrote.Deleted, "the SCAN-pattern delete removed the sessions")
	n, err := strs.Exists(ctx, "session:0", "session:1", "session:2", "session:3", "session:4")
	require.NoError(t, err)
	assert.Zero(t, n)
	_, err = strs.Get(ctx, "session:0")
	assert.ErrorIs(t, err, cache.ErrNotFound)

	// aside writes in plain mode, Python reads.
	plain, err := cache.New(client, cache.Options[string, string]{
		Namespace: ns + "-plain", Codec: codec.String(), Plain: true,
		Loader: func(_ context.Context, k string) (string, error) { return "loaded " + k, nil },
	})
	require.NoError(t, err)
	plainPeople, err := cache.New(client, cache.Options[string, person]{Namespace: ns + "-plainjson", Codec: codec.JSON[person](), Plain: true})
	require.NoError(t, err)
	require.NoError(t, plain.Set(ctx, "greeting", "hello from Go", cache.WithTTL(77*time.Second)))
	require.NoError(t, plain.SetMany(ctx, map[string]string{"a": "α", "b": "β"}, cache.WithTTL(90_500*time.Millisecond)))
	require.NoError(t, plainPeople.Set(ctx, "grace", person{Name: "Grace", Roles: []string{"admiral"}, Age: 85}, cache.WithTTL(time.Hour)))
	loaded, err := plain.Get(ctx, "lazy")
	require.NoError(t, cache.AwaitWrites(ctx, plain, "lazy"))
	require.NoError(t, err)
	require.Equal(t, "loaded lazy", loaded)
	require.NoError(t, plain.Set(ctx, "forever", "no expiry"))
	_, err = plain.Persist(ctx, "forever")
	require.NoError(t, err)

	goTTL := map[string]time.Duration{}
	start = time.Now()
	for _, k := range []string{"greeting", "a", "b", "lazy"} {
		ttl, err := plain.TTL(ctx, k)
		require.NoError(t, err)
		goTTL[plain.Key(k)] = ttl
	}
	ttl, err := plainPeople.TTL(ctx, "grace")
	require.NoError(t, err)
	goTTL[plainPeople.Key("grace")] = ttl
	var read map[string]struct {
		Value *string `json:"value"`
		PTTL  int64   `json:"pttl"`
	}
	pyKeys := []string{plain.Key("greeting"), plain.Key("a"), plain.Key("b"), plain.Key("lazy"), plain.Key("forever"), plainPeople.Key("grace"), plain.Key("missing")}
	runPy(t, py, srv.Addr(), &read, append([]string{"read"}, pyKeys...)...)
	between := time.Since(start)
	value := func(key string) string {
		require.NotNil(t, read[key].Value, key)
		return *read[key].Value
	}
	assert.Equal(t, "hello from Go", value(plain.Key("greeting")))
	assert.Equal(t, "α", value(plain.Key("a")))
	assert.Equal(t, "β", value(plain.Key("b")))
	assert.Equal(t, "loaded lazy", value(plain.Key("lazy")), "a load writes the plain value")
	assert.Equal(t, "no expiry", value(plain.Key("forever")))
	assert.EqualValues(t, -1, read[plain.Key("forever")].PTTL)
	assert.JSONEq(t, `{"name":"Grace","roles":["admiral"],"age":85}`, value(plainPeople.Key("grace")))
	assert.Nil(t, read[plain.Key("missing")].Value)
	assert.EqualValues(t, -2, read[plain.Key("missing")].PTTL)
	for key, ttl := range goTTL {
		agree(t, key, ttl, time.Duration(read[key].PTTL)*time.Millisecond, between)
	}
	assert.LessOrEqual(t, goTTL[plain.Key("greeting")], 77*time.Second)
	assert.LessOrEqual(t, goTTL[plain.Key("a")], 90500*time.Millisecond)

	// The copy aside holds follows Python's pattern delete (tracking).
	v, err := plain.Get(ctx, "greeting")
	require.NoError(t, err)
	require.Equal(t, "hello from Go", v)
	var deleted struct {
		Deleted int `json:"deleted"`
	}
	runPy(t, py, srv.Addr(), &deleted, "delete", ns+"-plain:*")
	assert.Equal(t, 5, deleted.Deleted, "Python's pattern delete finds the five values and no lease key")
	require.Eventually(t, func() bool {
		v, err := plain.Get(ctx, "greeting")
		return err == nil && v == "loaded greeting"
	}, 10*time.Second, time.Millisecond, "the copy went with Python's delete; the next Get loads")
}
