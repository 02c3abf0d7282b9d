package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"time"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/examples/webapp/app"
	"github.com/aside-go/aside/internal/redistest"
)

// row is one line of the comparison.
type row struct {
	cacheOn   bool
	instances int
	res       Result
}

// runCompare runs the mix four times — aside on and off, one instance and
// two — each from a fresh start: a new SQLite catalogue (seeded), a new
// private redis-server (aside on), and a cold cache. The instances run in
// this process, each with its own database handle, aside client and HTTP
// server on a loopback port, as separate processes would (sharing this
// process's CPUs with the load generator).
func runCompare(ctx context.Context, cfg Config, out io.Writer) error {
	var rows []row
	for _, instances := range []int{1, 2} {
		for _, on := range []bool{true, false} {
			fmt.Fprintf(os.Stderr, "load: aside %s, %d instance(s) …\n", onOff(on), instances)
			res, err := compareRow(ctx, cfg, on, instances)
			if err != nil {
				return fmt.Errorf("aside %s, %d instances: %w", onOff(on), instances, err)
			}
			rows = append(rows, row{on, instances, res})
		}
	}
	writeTable(out, cfg, rows)
	return nil
}

func compareRow(ctx context.Context, cfg Config, cacheOn bool, instances int) (Result, error) {
	dir, err := os.MkdirTemp("", "webapp-load-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	var redis *redistest.Server
	if cacheOn {
		redis, err = redistest.Launch(redistest.Config{})
		if err != nil {
			return Result{}, err
		}
		defer redis.Close()
	}
	cfg.Targets = nil
	for range instances {
		url, stop, err := startInstance(ctx, dir, redis)
		if err != nil {
			return Result{}, err
		}
		defer stop()
		cfg.Targets = append(cfg.Targets, url)
	}
	res, err := Run(ctx, cfg)
	if err == nil && res.Errors > 0 {
		err = fmt.Errorf("%d requests failed, the first: %s", res.Errors, res.FirstError)
	}
	return res, err
}

// startInstance runs the service in this process on the SQLite catalogue in
// dir, cached on redis (nil: aside off), and returns its base URL.
func startInstance(ctx context.Context, dir string, redis *redistest.Server) (url string, stop func(), err error) {
	var closers []func()
	stop = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	db, err := app.OpenSQLite(ctx, dir)
	if err != nil {
		return "", nil, err
	}
	closers = append(closers, func() { db.Close() })
	var client *cache.Client
	if redis != nil {
		client, err = cache.Connect(redis.ClientOption())
		if err != nil {
			return "", nil, err
		}
		closers = append(closers, client.Close)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := app.New(app.Config{DB: db, Client: client, NoCache: redis == nil, Logger: log})
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: a, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "load: instance:", err)
		}
	}()
	closers = append(closers, func() { srv.Close(); <-done })
	return "http://" + ln.Addr().String(), stop, nil
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

func writeTable(w io.Writer, cfg Config, rows []row) {
	fmt.Fprintf(w, "Zipf s=%.2f over %d ids, %.0f%% GET / %.0f%% PUT, %d concurrent requests, each row bounded by %v or %d requests, seed %d; SQLite (WAL) seeded afresh and a cold cache for each row; %d CPUs (GOMAXPROCS), load generator and instances in one process.\n\n",
		cfg.ZipfS, cfg.IDs, 100*cfg.ReadFraction, 100*(1-cfg.ReadFraction), cfg.Concurrency, cfg.Duration, cfg.Requests, cfg.Seed, runtime.GOMAXPROCS(0))
	fmt.Fprintln(w, "| aside | instances | requests | requests/s | p50 | p99 | DB queries / request | stale responses |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %d | %d | %.0f | %v | %v | %.3f | %d |\n", onOff(r.cacheOn), r.instances, r.res.Requests,
			r.res.RPS(), r.res.P50.Round(time.Microsecond), r.res.P99.Round(time.Microsecond), r.res.QueriesPerRequest(), r.res.Stale)
	}
	fmt.Fprintln(w)
	for _, n := range []int{1, 2} {
		var on, off *Result
		for i := range rows {
			if rows[i].instances == n {
				if rows[i].cacheOn {
					on = &rows[i].res
				} else {
					off = &rows[i].res
				}
			}
		}
		if on != nil && off != nil && off.QueriesPerRequest() > 0 {
			fmt.Fprintf(w, "%d instance(s): aside saves %.1f%% of the database queries per request (%.3f against %.3f).\n", n,
				100*(1-on.QueriesPerRequest()/off.QueriesPerRequest()), on.QueriesPerRequest(), off.QueriesPerRequest())
		}
	}
}
