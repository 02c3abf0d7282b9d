package benchmarks

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/aside-go/aside/internal/redistest"
)

// srv is the private redis-server every contender of every benchmark uses.
// It is nil in a worker process of BenchmarkMixProcs, which uses the server
// of the benchmark that started it (see redisAddr).
var srv *redistest.Server

// workerAddr is the address of the parent's redis-server in a worker process.
var workerAddr string

// redisAddr is the address of the redis-server of the benchmarks.
func redisAddr() string {
	if srv == nil {
		return workerAddr
	}
	return srv.Addr()
}

// redisOption is what a rueidis client needs to reach it.
func redisOption() rueidis.ClientOption {
	if srv == nil {
		return rueidis.ClientOption{InitAddress: []string{workerAddr}}
	}
	return srv.ClientOption()
}

func TestMain(m *testing.M) {
	// A worker of BenchmarkMixProcs talks to its parent's server.
	if addr, ok := workerAddrFromEnv(); ok {
		workerAddr = addr
		os.Exit(m.Run())
	}
	s, err := redistest.Launch(redistest.Config{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "the benchmarks need redis-server:", err)
		os.Exit(1)
	}
	srv = s
	printVersions()
	code := m.Run()
	if code != 0 {
		fmt.Fprintln(os.Stderr, "redis-server log:\n"+srv.Log())
	}
	_ = srv.Close()
	os.Exit(code)
}

// printVersions writes the versions of Go and Redis as configuration lines
// of the benchmark output ("key: value", see the Go benchmark data format),
// so that benchstat prints them above its table and the chart program copies
// them into the README. The Makefile adds the versions of the modules, which
// a test binary does not know.
func printVersions() {
	// Only when benchmarks run: `go test` alone prints nothing extra.
	if !benchmarking() {
		return
	}
	fmt.Printf("go: %s\n", runtime.Version())
	// Unit metadata: which way is better, and which counts are exact.
	fmt.Println("Unit ops/s better=higher")
	fmt.Println("Unit hit-% better=higher")
	fmt.Println("Unit keys/s better=higher")
	fmt.Println("Unit loads/op assume=exact")
	fmt.Println("Unit max-loads assume=exact")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Valkey reports the Redis version it is compatible with (7.2.4) as
	// redis_version, and its own as valkey_version.
	if info, err := srv.Do(ctx, "INFO", "server"); err == nil {
		for _, line := range strings.Split(info, "\n") {
			line = strings.TrimSpace(line)
			if v, ok := strings.CutPrefix(line, "redis_version:"); ok {
				fmt.Printf("redis: %s\n", v)
			}
			if v, ok := strings.CutPrefix(line, "valkey_version:"); ok {
				fmt.Printf("valkey: %s\n", v)
			}
		}
	}
}

// benchmarking reports whether -test.bench selects anything.
func benchmarking() bool {
	for _, a := range os.Args[1:] {
		if v, ok := strings.CutPrefix(a, "-test.bench="); ok && v != "" {
			return true
		}
	}
	return false
}

var nsSeq atomic.Int64

// namespace returns a namespace no other benchmark run uses (each call of a
// benchmark function gets a new one, so no run sees keys of another).
func namespace() string { return fmt.Sprintf("b%d", nsSeq.Add(1)) }

// flush empties Redis before a benchmark builds its clients, so that each
// starts from the same empty server whatever ran before.
func flush(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := srv.Do(ctx, "FLUSHALL"); err != nil {
		tb.Fatal(err)
	}
}
