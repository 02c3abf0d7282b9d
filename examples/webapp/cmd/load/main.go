// Command load drives a Zipf read/update mix against one or more running
// instances of the webapp, and prints requests/s, p50/p99 latency, database
// queries per request (from the instances' /healthz) and stale responses.
//
//	go run ./cmd/load -targets http://127.0.0.1:8080,http://127.0.0.1:8081 -d 10s -n 100000
//
// With -compare it starts everything itself — a private redis-server, a
// fresh catalogue per row (SQLite, or with -db postgres a database on a
// private PostgreSQL server), and one or two instances of the service in
// this process — and prints one markdown table: aside on and off (CACHE=off,
// the database alone), with one instance and with two.
//
//	go run ./cmd/load -compare              # or: make webapp-load
//	go run ./cmd/load -compare -db postgres
//
// A stale response is a GET that returned a product version older than one
// whose PUT had already returned to this tool before the GET was sent.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"
)

func main() {
	var (
		cfg     Config
		targets string
		compare bool
		db      string
	)
	flag.StringVar(&targets, "targets", "http://127.0.0.1:8080", "comma-separated base URLs of the instances; requests are spread over them in turn")
	flag.DurationVar(&cfg.Duration, "d", 10*time.Second, "bound on the run's duration")
	flag.Int64Var(&cfg.Requests, "n", 200000, "bound on the run's requests")
	flag.IntVar(&cfg.Concurrency, "c", 16, "concurrent requests")
	flag.Float64Var(&cfg.ReadFraction, "read", 0.95, "share of GET /products/{id}; the rest are PUT /products/{id}")
	flag.Float64Var(&cfg.ZipfS, "zipf", 1.1, "Zipf exponent (> 1) of the ids' popularity")
	flag.IntVar(&cfg.IDs, "ids", 10000, "ids are drawn from 1 … ids")
	flag.Uint64Var(&cfg.Seed, "seed", 1, "seed of the ids and operations drawn")
	flag.BoolVar(&compare, "compare", false, "start a private Redis and the service in process, and compare aside on/off × 1/2 instances in one table")
	flag.StringVar(&db, "db", "sqlite", "with -compare: the catalogue, sqlite (a temporary file) or postgres (a private server, as the tests start)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	if compare {
		err = runCompare(ctx, cfg, db, os.Stdout)
	} else {
		cfg.Targets = strings.Split(targets, ",")
		var res Result
		res, err = Run(ctx, cfg)
		if err == nil {
			printResult(res)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

func printResult(r Result) {
	fmt.Printf("requests     %d (%d GET, %d PUT, %d errors) in %v\n", r.Requests, r.Gets, r.Puts, r.Errors, r.Elapsed.Round(time.Millisecond))
	fmt.Printf("requests/s   %.0f\n", r.RPS())
	fmt.Printf("latency      p50 %v, p99 %v\n", r.P50, r.P99)
	fmt.Printf("DB queries   %d, %.3f per request\n", r.Queries, r.QueriesPerRequest())
	fmt.Printf("stale        %d (the longest %v after the PUT returned)\n", r.Stale, r.StaleAfter)
	fmt.Printf("X-Cache      %v\n", r.Sources)
	fmt.Printf("per target   %v\n", r.PerTarget)
	if r.FirstError != "" {
		fmt.Printf("first error  %s\n", r.FirstError)
	}
}
