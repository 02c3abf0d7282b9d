package redistest_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/aside-go/aside/internal/redistest"
)

func TestMain(m *testing.M) {
	if os.Getenv(orphanEnv) != "" {
		runOrphanParent()
		return
	}
	goleak.VerifyTestMain(m,
		// rueidis closes the connections a topology refresh dropped (here: the
		// replicas given in InitAddress) 5 s later from a sleeping goroutine that
		// client.Close does not stop.
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*clusterClient)._refresh.func2"),
		// A cluster client that met a MOVED or a dropped node schedules a
		// topology refresh up to a second ahead (singleflight's DelayDo);
		// client.Close does not cancel it either.
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*call).DelayDo.func1"),
	)
}

// newClient connects a rueidis client and closes it at cleanup.
func newClient(t *testing.T, opt rueidis.ClientOption) rueidis.Client {
	t.Helper()
	client, err := rueidis.NewClient(opt)
	require.NoError(t, err)
	t.Cleanup(client.Close)
	return client
}

// ctx is a generous bound for commands that must succeed; a healthy local server
// answers in microseconds, so it never decides a result.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestStandalone(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Config{})

	assert.Equal(t, "127.0.0.1:"+strconv.Itoa(srv.Port()), srv.Addr())
	assert.Nil(t, srv.TLSConfig())
	assert.Nil(t, srv.CACertPEM())
	assert.Equal(t, []string{srv.Addr()}, srv.ClientOption().InitAddress)

	client := newClient(t, srv.ClientOption())
	pong, err := client.Do(ctx(t), client.B().Ping().Build()).ToString()
	require.NoError(t, err)
	assert.Equal(t, "PONG", pong)

	require.NoError(t, client.Do(ctx(t), client.B().Set().Key("k").Value("v").Build()).Error())
	got, err := srv.Do(ctx(t), "GET", "k")
	require.NoError(t, err)
	assert.Equal(t, "v", got)

	// The launcher's own settings are in force.
	save, err := srv.Do(ctx(t), "CONFIG", "GET", "save")
	require.NoError(t, err)
	assert.Equal(t, "save\n", save)
	assert.Contains(t, srv.Log(), "Ready to accept connections")
}

func TestDoRendersReplies(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Config{})
	c := ctx(t)

	n, err := srv.Do(c, "RPUSH", "list", "a", "b", "c")
	require.NoError(t, err)
	assert.Equal(t, "3", n)

	items, err := srv.Do(c, "LRANGE", "list", "0", "-1")
	require.NoError(t, err)
	assert.Equal(t, "a\nb\nc", items)

	missing, err := srv.Do(c, "GET", "nothing")
	require.NoError(t, err)
	assert.Empty(t, missing)

	_, err = srv.Do(c, "GET", "list")
	var re redistest.ReplyError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "WRONGTYPE", re.Prefix())

	_, err = srv.Do(c)
	assert.Error(t, err)
}

func TestExtraArgsOverrideDefaults(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Config{Args: []string{"--maxmemory", "10mb"}})

	got, err := srv.Do(ctx(t), "CONFIG", "GET", "maxmemory")
	require.NoError(t, err)
	assert.Equal(t, "maxmemory\n10485760", got)
}

func TestTLS(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Config{TLS: true, TLSHosts: []string{"redis.test"}})

	conf := srv.TLSConfig()
	require.NotNil(t, conf)
	assert.Equal(t, "localhost", conf.ServerName)
	assert.Equal(t, uint16(tls.VersionTLS12), conf.MinVersion)
	assert.NotSame(t, conf, srv.TLSConfig(), "each call returns a fresh config")
	assert.Contains(t, string(srv.CACertPEM()), "BEGIN CERTIFICATE")

	client := newClient(t, srv.ClientOption())
	pong, err := client.Do(ctx(t), client.B().Ping().Build()).ToString()
	require.NoError(t, err)
	assert.Equal(t, "PONG", pong)

	got, err := srv.Do(ctx(t), "PING")
	require.NoError(t, err, "Do speaks TLS")
	assert.Equal(t, "PONG", got)

	// The extra host is in the certificate: a client naming it verifies.
	byHost := srv.TLSConfig()
	byHost.ServerName = "redis.test"
	conn, err := tls.Dial("tcp", srv.Addr(), byHost)
	require.NoError(t, err)
	require.NoError(t, conn.Close())

	// A client trusting an unrelated CA must fail the handshake.
	pool, err := redistest.NewCAPool()
	require.NoError(t, err)
	untrusted := srv.ClientOption()
	untrusted.TLSConfig.RootCAs = pool
	_, err = rueidis.NewClient(untrusted)
	var unknown x509.UnknownAuthorityError
	require.ErrorAs(t, err, &unknown)

	// Plain TCP is not served at all.
	plain := srv.ClientOption()
	plain.TLSConfig = nil
	plain.DisableRetry = true
	_, err = rueidis.NewClient(plain)
	require.Error(t, err)
}

func TestACLUsersAndPassword(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Config{
		Password: "default-secret",
		Users: []redistest.User{
			{Name: "noget", Password: "pw", Rules: []string{"~*", "&*", "+@all", "-get"}},
		},
	})

	admin := newClient(t, srv.ClientOption())
	require.NoError(t, admin.Do(ctx(t), admin.B().Set().Key("k").Value("v").Build()).Error())
	got, err := admin.Do(ctx(t), admin.B().Get().Key("k").Build()).ToString()
	require.NoError(t, err)
	assert.Equal(t, "v", got)

	opt := srv.ClientOption()
	opt.Username, opt.Password = "noget", "pw"
	restricted := newClient(t, opt)
	require.NoError(t, restricted.Do(ctx(t), restricted.B().Set().Key("k2").Value("v").Build()).Error())
	err = restricted.Do(ctx(t), restricted.B().Get().Key("k").Build()).Error()
	rerr, ok := rueidis.IsRedisErr(err)
	require.True(t, ok, "want a Redis error, got %v", err)
	assert.True(t, strings.HasPrefix(rerr.Error(), "NOPERM"), rerr.Error())

	// Without the password the default user is refused.
	anon := srv.ClientOption()
	anon.Password = ""
	anon.DisableRetry = true
	_, err = rueidis.NewClient(anon)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "NOAUTH")

	// Do authenticates by itself.
	who, err := srv.Do(ctx(t), "ACL", "WHOAMI")
	require.NoError(t, err)
	assert.Equal(t, "default", who)
}

func TestCluster(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, redistest.ClusterConfig{Primaries: 3})

	require.Len(t, cl.Nodes(), 3)
	require.Len(t, cl.Primaries(), 3)
	assert.Equal(t, cl.Addrs(), cl.ClientOption().InitAddress)

	client := newClient(t, cl.ClientOption())
	assert.Len(t, client.Nodes(), 3)
	const n = 200
	sets := make(rueidis.Commands, n)
	gets := make(rueidis.Commands, n)
	for i := range n {
		k := "key:" + strconv.Itoa(i)
		sets[i] = client.B().Set().Key(k).Value(strconv.Itoa(i)).Build()
		gets[i] = client.B().Get().Key(k).Build()
	}
	for _, r := range client.DoMulti(ctx(t), sets...) {
		require.NoError(t, r.Error())
	}
	for i, r := range client.DoMulti(ctx(t), gets...) {
		v, err := r.ToString()
		require.NoError(t, err)
		assert.Equal(t, strconv.Itoa(i), v)
	}

	total := 0
	for _, p := range cl.Primaries() {
		size, err := p.Do(ctx(t), "DBSIZE")
		require.NoError(t, err)
		count, err := strconv.Atoi(size)
		require.NoError(t, err)
		assert.Positive(t, count, "primary %s holds no key", p.Addr())
		total += count

		info, err := p.Do(ctx(t), "CLUSTER", "INFO")
		require.NoError(t, err)
		assert.Contains(t, info, "cluster_state:ok")
	}
	assert.Equal(t, n, total)
	require.NoError(t, cl.Wait(ctx(t)))
}

func TestClusterWithReplicas(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, redistest.ClusterConfig{Primaries: 3, Replicas: 1})

	require.Len(t, cl.Nodes(), 6)
	require.Len(t, cl.Primaries(), 3)
	for i, s := range cl.Nodes() {
		role, err := s.Do(ctx(t), "ROLE")
		require.NoError(t, err)
		want := "master"
		if i >= 3 {
			want = "slave"
		}
		assert.True(t, strings.HasPrefix(role, want+"\n"), "node %d role %q", i, role)
	}

	// Every node reports the same six nodes at 127.0.0.1.
	for _, s := range cl.Nodes() {
		nodes, err := s.Do(ctx(t), "CLUSTER", "NODES")
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSpace(nodes), "\n")
		require.Len(t, lines, 6)
		for _, l := range lines {
			assert.Contains(t, strings.Fields(l)[1], "127.0.0.1:")
		}
	}

	client := newClient(t, cl.ClientOption())
	require.NoError(t, client.Do(ctx(t), client.B().Set().Key("k").Value("v").Build()).Error())
	got, err := client.Do(ctx(t), client.B().Get().Key("k").Build()).ToString()
	require.NoError(t, err)
	assert.Equal(t, "v", got)
}

func TestTLSClusterWithPasswordAndReplica(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, redistest.ClusterConfig{
		Primaries: 2,
		Replicas:  1,
		Server:    redistest.Config{TLS: true, Password: "secret"},
	})

	opt := cl.ClientOption()
	require.NotNil(t, opt.TLSConfig)
	assert.Equal(t, "secret", opt.Password)
	client := newClient(t, opt)
	for i := range 20 {
		k := "k" + strconv.Itoa(i)
		require.NoError(t, client.Do(ctx(t), client.B().Set().Key(k).Value("v").Build()).Error())
	}
	// Replication runs over TLS with masterauth: the replicas report a live link.
	for _, s := range cl.Nodes()[2:] {
		info, err := s.Do(ctx(t), "INFO", "replication")
		require.NoError(t, err)
		assert.Contains(t, info, "master_link_status:up")
	}
}

func TestClusterNodeRestart(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, redistest.ClusterConfig{Primaries: 1, Replicas: 1})
	primary, replica := cl.Nodes()[0], cl.Nodes()[1]
	pid := replica.PID()

	require.NoError(t, replica.Kill())
	require.NoError(t, replica.Restart())
	assert.NotEqual(t, pid, replica.PID())
	// The node keeps its identity (nodes.conf) and rejoins as the same replica.
	require.NoError(t, cl.Wait(ctx(t)))
	role, err := replica.Do(ctx(t), "ROLE")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(role, "slave\n127.0.0.1\n"+strconv.Itoa(primary.Port())+"\n"), role)

	// Wait reports a node that does not answer instead of passing.
	require.NoError(t, replica.Pause())
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, cl.Wait(short), context.DeadlineExceeded)
	require.NoError(t, replica.Resume())
	require.NoError(t, cl.Wait(ctx(t)))
}

func TestKillAndRestart(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Config{Users: []redistest.User{{Name: "u", Password: "p", Rules: []string{"+@all", "~*"}}}})
	port, pid := srv.Port(), srv.PID()

	require.NoError(t, srv.Kill())
	require.NoError(t, srv.Kill(), "killing a dead server does nothing")
	_, err := srv.Do(ctx(t), "PING")
	require.ErrorIs(t, err, syscall.ECONNREFUSED)
	assert.Error(t, srv.Pause(), "cannot pause a dead server")

	require.NoError(t, srv.Restart())
	assert.Equal(t, port, srv.Port())
	assert.NotEqual(t, pid, srv.PID())

	opt := srv.ClientOption()
	opt.Username, opt.Password = "u", "p"
	client := newClient(t, opt)
	pong, err := client.Do(ctx(t), client.B().Ping().Build()).ToString()
	require.NoError(t, err, "ACL users exist again after Restart")
	assert.Equal(t, "PONG", pong)

	// Restart of a running server kills it first.
	pid = srv.PID()
	require.NoError(t, srv.Restart())
	assert.NotEqual(t, pid, srv.PID())
	got, err := srv.Do(ctx(t), "PING")
	require.NoError(t, err)
	assert.Equal(t, "PONG", got)
}

func TestPauseAndResume(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Config{})
	client := newClient(t, srv.ClientOption())

	require.NoError(t, srv.Pause())
	// A stopped server cannot answer, so the deadline decides, whatever its length.
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	err := client.Do(short, client.B().Ping().Build()).Error()
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	short, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err = srv.Do(short, "PING")
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)

	require.NoError(t, srv.Resume())
	pong, err := client.Do(ctx(t), client.B().Ping().Build()).ToString()
	require.NoError(t, err)
	assert.Equal(t, "PONG", pong)
}

func TestClose(t *testing.T) {
	t.Parallel()
	srv, err := redistest.Launch(redistest.Config{TLS: true})
	require.NoError(t, err)
	pid, dir := srv.PID(), srv.Dir()
	_, err = os.Stat(dir)
	require.NoError(t, err)

	require.NoError(t, srv.Pause(), "Close must also stop a paused server")
	require.NoError(t, srv.Close())
	assert.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH)
	_, err = os.Stat(dir)
	assert.ErrorIs(t, err, os.ErrNotExist)

	require.NoError(t, srv.Close(), "Close is idempotent")
	assert.ErrorIs(t, srv.Kill(), redistest.ErrClosed)
	assert.ErrorIs(t, srv.Restart(), redistest.ErrClosed)
	assert.ErrorIs(t, srv.Resume(), redistest.ErrClosed)
	assert.Contains(t, srv.Log(), "Ready to accept connections", "the log outlives the directory")
}

func TestClusterClose(t *testing.T) {
	t.Parallel()
	cl, err := redistest.LaunchCluster(redistest.ClusterConfig{Primaries: 1})
	require.NoError(t, err)
	require.Len(t, cl.Nodes(), 1)
	pid, dir := cl.Nodes()[0].PID(), cl.Nodes()[0].Dir()

	require.NoError(t, cl.Close())
	assert.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH)
	_, err = os.Stat(dir)
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestNotInstalled(t *testing.T) {
	t.Parallel()
	missing := redistest.Config{Binary: "/nonexistent/redis-server"}

	_, err := redistest.Launch(missing)
	require.ErrorIs(t, err, redistest.ErrNotInstalled)
	assert.Contains(t, err.Error(), "sudo apt-get install redis-server")
	assert.Contains(t, err.Error(), "brew install redis")

	_, err = redistest.LaunchCluster(redistest.ClusterConfig{Server: missing})
	require.ErrorIs(t, err, redistest.ErrNotInstalled)

	// Start fails the test with the same hint.
	ftb := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		redistest.Start(ftb, missing)
	}()
	<-done
	require.True(t, ftb.fatal)
	assert.Contains(t, ftb.msg, "sudo apt-get install redis-server")
}

// The REDIS_SERVER environment variable names the binary. Not parallel: it
// changes the environment of the whole test binary, before parallel tests resume.
func TestRedisServerEnv(t *testing.T) {
	t.Setenv("REDIS_SERVER", "/nonexistent/redis-server")
	_, err := redistest.Launch(redistest.Config{})
	require.ErrorIs(t, err, redistest.ErrNotInstalled)
	assert.Contains(t, err.Error(), "/nonexistent/redis-server")
}

// fatalTB records Fatal instead of failing the real test, ending the goroutine
// like the real Fatal does.
type fatalTB struct {
	testing.TB
	mu    sync.Mutex
	fatal bool
	msg   string
}

func (f *fatalTB) Fatal(args ...any) {
	f.mu.Lock()
	f.fatal, f.msg = true, fmt.Sprint(args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func TestStartupFailureShowsLog(t *testing.T) {
	t.Parallel()
	_, err := redistest.Launch(redistest.Config{Args: []string{"--no-such-directive", "yes"}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "exited during startup")
	assert.Contains(t, err.Error(), "no-such-directive", "the error carries the log tail")
}

// orphanEnv makes the test binary, run again as a child, launch a server, print
// its pid and wait to be killed.
const orphanEnv = "REDISTEST_ORPHAN_PARENT"

func runOrphanParent() {
	srv, err := redistest.Launch(redistest.Config{})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println(srv.PID(), srv.Dir())
	// Block until killed; the server is deliberately never closed.
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	os.Exit(0)
}
