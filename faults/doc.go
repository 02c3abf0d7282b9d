// Package faults is aside's fault suite: real redis-server processes, with an
// in-process TCP proxy (toxiproxy) between a client and Redis, broken in the
// ways production breaks them — added latency, a blackhole, connections reset
// in the middle of a reply, a bandwidth limit, CLIENT KILL storms, a restart
// that loses the data, a server stopped with SIGSTOP, and a CLUSTER FAILOVER
// under load — while two clients read, write and invalidate.
//
// It is a module of its own so that the proxy and its dependencies never enter
// the library's go.mod. It has no code outside its tests:
//
//	go test -race ./...                 # the short forms (CI)
//	ASIDE_SOAK=1 go test -race -v ./... # the long forms (make soak)
//
// FAULTS_REPORT=path writes the table of results (one row per fault) to path.
package faults
