package cache_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/aside-go/aside/internal/redistest"
)

func TestMain(m *testing.M) {
	// The shared server's process waiter runs from here on; snapshot after
	// it, before any test. Without a redis-server the run goes on: the
	// package-internal tests need none, and every test that uses the shared
	// server fails (needShared) with the reason.
	shared, sharedErr = redistest.Launch(redistest.Config{})
	if sharedErr != nil {
		shared = nil
		fmt.Fprintln(os.Stderr, "cache tests need redis-server:", sharedErr,
			"(every test that uses it will fail; the package-internal tests need none)")
	}
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
			// ... and up to a second before a topology refresh a MOVED or a
			// dropped node scheduled (singleflight's DelayDo).
			goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*call).DelayDo.func1"),
			// ... and 5s before it closes the connection to a node that
			// answered MOVED to itself (a slot moving, reshard_test.go).
			goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*clusterClient).redirectOrNew.func1"),
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
		if shared != nil {
			fmt.Fprintln(os.Stderr, "redis-server log:\n"+shared.Log())
		} else {
			fmt.Fprintln(os.Stderr, "cache tests need redis-server:", sharedErr)
		}
	}
	if shared != nil {
		_ = shared.Close()
	}
	if cluster != nil {
		_ = cluster.Close()
	}
	os.Exit(code)
}
