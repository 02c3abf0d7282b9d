// Package redistest starts real redis-server processes on free loopback ports for
// tests and runnable examples: standalone, TLS-only, with ACL users, or a local
// Redis Cluster with replicas.
//
// Every server is a private instance in its own temporary directory, so tests and
// packages run in parallel without sharing state. A server never outlives the
// process that started it: on Linux the child gets SIGKILL when its parent dies,
// and [Server.Close] waits for the process to exit before removing the directory.
//
// Tests use [Start] and [StartCluster], which fail the test with an install hint
// when redis-server is missing and stop the server in tb.Cleanup:
//
//	func TestSomething(t *testing.T) {
//		t.Parallel()
//		srv := redistest.Start(t, redistest.Config{})
//		client, err := rueidis.NewClient(srv.ClientOption())
//		require.NoError(t, err)
//		defer client.Close()
//		// ...
//	}
//
// Examples and other non-test code use [Launch] and [LaunchCluster] and must call
// Close themselves.
//
// The binary is, in order: [Config.Binary], the REDIS_SERVER environment variable,
// then redis-server found on PATH. When none exists the error wraps
// [ErrNotInstalled].
package redistest
