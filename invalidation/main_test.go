package invalidation_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/aside-go/aside/internal/redistest"
)

// The package's private 3-primary Redis Cluster, launched by the first test
// or benchmark that needs it and closed by TestMain. Tests sharing it use key
// prefixes no other test uses.
var (
	clusterOnce sync.Once
	cluster     *redistest.Cluster
	clusterErr  error
)

// fuzzServer is the standalone server FuzzEscape queries, launched on its
// first input (in each fuzz worker process) and closed by TestMain. Only
// FuzzEscape uses it, one input at a time.
var (
	fuzzOnce   sync.Once
	fuzzServer *redistest.Server
	fuzzClient rueidis.Client
	fuzzErr    error
)

const (
	// refreshSleeper is a goroutine a rueidis cluster client leaves asleep
	// for 5 s after Close, to close the connections a topology refresh
	// dropped.
	refreshSleeper = "github.com/redis/rueidis.(*clusterClient)._refresh.func2"
	// refreshDelay is the goroutine in which a rueidis cluster client waits
	// up to a second before a topology refresh a MOVED or a dropped node
	// scheduled; Close does not cancel it.
	refreshDelay = "github.com/redis/rueidis.(*call).DelayDo.func1"
	// processWaiter is the goroutine that reaps a running redis-server.
	processWaiter = "github.com/aside-go/aside/internal/redistest.(*Server).start.func1"
)

func TestMain(m *testing.M) {
	before := goleak.IgnoreCurrent()
	code := m.Run()
	if fuzzClient != nil {
		fuzzClient.Close()
	}
	// Leaks are looked for while the shared servers still run: a client
	// left open would otherwise see its connections drop and end its
	// goroutines, hiding the leak.
	if code == 0 {
		if err := goleak.Find(before,
			goleak.IgnoreAnyFunction(refreshSleeper), goleak.IgnoreAnyFunction(refreshDelay),
			goleak.IgnoreAnyFunction(processWaiter)); err != nil {
			fmt.Fprintln(os.Stderr, "leaked goroutines:", err)
			code = 1
		}
	}
	if fuzzServer != nil {
		_ = fuzzServer.Close()
	}
	if cluster != nil {
		if err := cluster.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "close cluster:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// deployment is one Redis topology a test runs against.
type deployment struct {
	name string
	opt  rueidis.ClientOption
	// primaries and nodes are the addresses the launcher created, sorted:
	// the test's own record of the topology, independent of the code under
	// test.
	primaries, nodes []string
}

// standalone starts a private redis-server for the test.
func standalone(tb testing.TB) deployment {
	tb.Helper()
	srv := redistest.Start(tb, redistest.Config{})
	return deployment{
		name:      "standalone",
		opt:       srv.ClientOption(),
		primaries: []string{srv.Addr()},
		nodes:     []string{srv.Addr()},
	}
}

// sharedCluster returns the package's 3-primary cluster, launching it once.
func sharedCluster(tb testing.TB) deployment {
	tb.Helper()
	clusterOnce.Do(func() {
		cluster, clusterErr = redistest.LaunchCluster(redistest.ClusterConfig{Primaries: 3})
	})
	if clusterErr != nil {
		tb.Fatalf("cluster: %v", clusterErr)
	}
	return clusterDeployment("cluster", cluster)
}

func clusterDeployment(name string, c *redistest.Cluster) deployment {
	d := deployment{name: name, opt: c.ClientOption(), nodes: c.Addrs()}
	for _, s := range c.Primaries() {
		d.primaries = append(d.primaries, s.Addr())
	}
	slices.Sort(d.primaries)
	slices.Sort(d.nodes)
	return d
}

// topology names a deployment and starts (or shares) it.
type topology struct {
	name  string
	start func(testing.TB) deployment
}

// topologies are what every Pattern test runs on: a standalone server of
// the test's own, and the shared cluster.
func topologies() []topology {
	return []topology{{"standalone", standalone}, {"cluster", sharedCluster}}
}

// connect returns a client of d closed at the end of the test.
func connect(tb testing.TB, d deployment) rueidis.Client {
	tb.Helper()
	c, err := rueidis.NewClient(d.opt)
	require.NoError(tb, err)
	tb.Cleanup(c.Close)
	return c
}

// testContext bounds a test's Redis calls. A local server answers in
// microseconds, so the bound only turns a hang into a failure.
func testContext(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// keys returns n keys "<prefix><i>".
func keys(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

// fill writes every key, in pipelines of single-key SETs (so they work on a
// cluster too).
func fill(tb testing.TB, ctx context.Context, client rueidis.Client, ks []string) {
	tb.Helper()
	const chunk = 2000
	cmds := make(rueidis.Commands, 0, chunk)
	for start := 0; start < len(ks); start += chunk {
		cmds = cmds[:0]
		for _, k := range ks[start:min(start+chunk, len(ks))] {
			cmds = append(cmds, client.B().Set().Key(k).Value("v").Build())
		}
		for i, res := range client.DoMulti(ctx, cmds...) {
			if err := res.Error(); err != nil {
				tb.Fatalf("set %q: %v", ks[start+i], err)
			}
		}
	}
}

// scanNodes returns, for each address, the set of keys matching pattern that
// a full SCAN of that node alone finds. It connects to each node directly,
// not through the code under test.
func scanNodes(tb testing.TB, ctx context.Context, d deployment, addrs []string, pattern string) map[string]map[string]bool {
	tb.Helper()
	out := make(map[string]map[string]bool, len(addrs))
	for _, addr := range addrs {
		opt := d.opt
		opt.InitAddress = []string{addr}
		opt.ForceSingleClient = true
		opt.DisableCache = true
		c, err := rueidis.NewClient(opt)
		require.NoError(tb, err)
		found, err := scan(ctx, c, pattern)
		c.Close()
		require.NoError(tb, err)
		out[addr] = found
	}
	return out
}

// scan runs SCAN MATCH pattern to the end on one node.
func scan(ctx context.Context, c rueidis.Client, pattern string) (map[string]bool, error) {
	found := make(map[string]bool)
	var cursor uint64
	for {
		e, err := c.Do(ctx, c.B().Scan().Cursor(cursor).Match(pattern).Count(1000).Build()).AsScanEntry()
		if err != nil {
			return nil, err
		}
		for _, k := range e.Elements {
			found[k] = true
		}
		if cursor = e.Cursor; cursor == 0 {
			return found, nil
		}
	}
}

// union merges per-node key sets.
func union(perNode map[string]map[string]bool) map[string]bool {
	all := make(map[string]bool)
	for _, ks := range perNode {
		for k := range ks {
			all[k] = true
		}
	}
	return all
}

// set makes a set of keys.
func set(ks ...string) map[string]bool {
	s := make(map[string]bool, len(ks))
	for _, k := range ks {
		s[k] = true
	}
	return s
}
