package cache_test

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/rueidis"
	"go.uber.org/goleak"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/internal/redistest"
)

// shared is the package's private redis-server. Tests that stop or
// reconfigure a server start their own.
var shared *redistest.Server

// cluster is the package's private 3-primary Redis Cluster, started by the
// first test that needs it.
var (
	clusterOnce sync.Once
	cluster     *redistest.Cluster
	clusterErr  error
)

// topology is a deployment the tests of behaviour that must not depend on it
// run against.
type topology struct {
	name string
	opt  func(testing.TB) rueidis.ClientOption
}

func topologies() []topology {
	return []topology{
		{"standalone", func(testing.TB) rueidis.ClientOption { return shared.ClientOption() }},
		{"cluster", func(tb testing.TB) rueidis.ClientOption {
			clusterOnce.Do(func() {
				cluster, clusterErr = redistest.LaunchCluster(redistest.ClusterConfig{Primaries: 3})
			})
			if clusterErr != nil {
				tb.Fatalf("cluster: %v", clusterErr)
			}
			return cluster.ClientOption()
		}},
	}
}

func TestMain(m *testing.M) {
	// The shared server's process waiter runs from here on; snapshot after
	// it, before any test.
	srv, err := redistest.Launch(redistest.Config{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cache tests need redis-server:", err)
		os.Exit(1)
	}
	shared = srv
	before := goleak.IgnoreCurrent()
	code := m.Run()
	// Leaks are looked for while the shared servers still run: a client
	// left open would otherwise see its connections drop and end its
	// goroutines, hiding the leak.
	if code == 0 {
		if err := goleak.Find(before,
			// rueidis' cluster client sleeps up to 5s after Close before
			// it closes connections a topology refresh dropped.
			goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*clusterClient)._refresh.func2"),
			// The launcher reaps each redis-server it started (tests
			// that start their own servers close them, the cluster is
			// closed below).
			goleak.IgnoreAnyFunction("github.com/aside-go/aside/internal/redistest.(*Server).start.func1"),
		); err != nil {
			fmt.Fprintln(os.Stderr, "leaked goroutines:", err)
			code = 1
		}
	}
	if code != 0 {
		fmt.Fprintln(os.Stderr, "redis-server log:\n"+srv.Log())
	}
	_ = srv.Close()
	if cluster != nil {
		_ = cluster.Close()
	}
	os.Exit(code)
}

// connect returns a client on srv closed at the end of the test.
func connect(tb testing.TB, srv interface{ ClientOption() rueidis.ClientOption }) *cache.Client {
	tb.Helper()
	return connectWith(tb, srv.ClientOption())
}

func connectWith(tb testing.TB, opt rueidis.ClientOption) *cache.Client {
	tb.Helper()
	c, err := cache.Connect(opt)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(c.Close)
	return c
}

var nsSeq atomic.Int64

// namespace returns a namespace no other test uses.
func namespace(tb testing.TB) string {
	name := strings.NewReplacer("/", "-", " ", "-", "#", "-").Replace(tb.Name())
	return fmt.Sprintf("%s-%d", name, nsSeq.Add(1))
}

// User is a value of about 150 bytes in MessagePack.
type User struct {
	ID        int64
	Name      string
	Email     string
	Roles     []string
	Active    bool
	Score     float64
	CreatedAt int64
	Bio       string
}

func sampleUser(id int64) User {
	return User{
		ID:        id,
		Name:      fmt.Sprintf("user %d", id),
		Email:     fmt.Sprintf("user%d@example.com", id),
		Roles:     []string{"reader", "writer"},
		Active:    true,
		Score:     98.5,
		CreatedAt: 1_700_000_000 + id,
		Bio:       "Writes about caches, Redis and Go, mostly in the evenings.",
	}
}

// waitABit yields the processor while a test waits for other goroutines to
// reach a state it observes; the wait is bounded by the test's timeout, and
// the state, not the time, ends it.
func waitABit() { runtime.Gosched() }
