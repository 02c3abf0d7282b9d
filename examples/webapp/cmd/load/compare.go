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
	"github.com/aside-go/aside/examples/webapp/internal/pgtest"
	"github.com/aside-go/aside/internal/redistest"
)

// row is one line of the comparison.
type row struct {
	cacheOn   bool
	instances int
	res       Result
}

// runCompare runs the mix four times — aside on and off, one instance and
// two — each from a fresh start: a new catalogue (seeded), a new private
// redis-server (aside on), and a cold cache. The catalogue is a SQLite file
// in a temporary directory, or with database "postgres" a new database on a
// private PostgreSQL server (internal/pgtest) started for the comparison.
// The instances run in this process, each with its own database handle,
// aside client and HTTP server on a loopback port, as separate processes
// would (sharing this process's CPUs with the load generator).
func runCompare(ctx context.Context, cfg Config, database string, out io.Writer) error {
	var pg *pgtest.Server
	switch database {
	case "sqlite":
	case "postgres":
		var err error
		if pg, err = pgtest.Launch(); err != nil {
			return err
		}
		defer pg.Close()
	default:
		return fmt.Errorf("-db %q: sqlite or postgres", database)
	}
	var rows []row
	for _, instances := range []int{1, 2} {
		for _, on := range []bool{true, false} {
			fmt.Fprintf(os.Stderr, "load: %s, aside %s, %d instance(s) …\n", database, onOff(on), instances)
			open, done, err := newCatalogue(ctx, pg)
			if err != nil {
				return err
			}
			res, err := compareRow(ctx, cfg, open, on, instances)
			done()
			if err != nil {
				return fmt.Errorf("aside %s, %d instances: %w", onOff(on), instances, err)
			}
			rows = append(rows, row{on, instances, res})
		}
	}
	writeTable(out, cfg, database, rows)
	return nil
}

// opener opens an instance's handle on a row's catalogue.
type opener func(context.Context) (*app.DB, error)

// newCatalogue makes a new empty catalogue: a database on pg, or a SQLite
// directory when pg is nil. done removes what it made.
func newCatalogue(ctx context.Context, pg *pgtest.Server) (open opener, done func(), err error) {
	if pg != nil {
		url, err := pg.CreateDatabase(ctx)
		if err != nil {
			return nil, nil, err
		}
		return func(ctx context.Context) (*app.DB, error) { return app.OpenPostgres(ctx, url) }, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "webapp-load-")
	if err != nil {
		return nil, nil, err
	}
	return func(ctx context.Context) (*app.DB, error) { return app.OpenSQLite(ctx, dir) }, func() { os.RemoveAll(dir) }, nil
}

func compareRow(ctx context.Context, cfg Config, open opener, cacheOn bool, instances int) (Result, error) {
	var (
		redis *redistest.Server
		err   error
	)
	if cacheOn {
		redis, err = redistest.Launch(redistest.Config{})
		if err != nil {
			return Result{}, err
		}
		defer redis.Close()
	}
	cfg.Targets = nil
	for range instances {
		url, stop, err := startInstance(ctx, open, redis)
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

// startInstance runs the service in this process on the catalogue open
// opens, cached on redis (nil: aside off), and returns its base URL.
func startInstance(ctx context.Context, open opener, redis *redistest.Server) (url string, stop func(), err error) {
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
	db, err := open(ctx)
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

func writeTable(w io.Writer, cfg Config, database string, rows []row) {
	catalogue := "SQLite (WAL, a temporary file)"
	if database == "postgres" {
		catalogue = "PostgreSQL (a private server on loopback, fsync off)"
	}
	fmt.Fprintf(w, "Zipf s=%.2f over %d ids, %.0f%% GET / %.0f%% PUT, %d concurrent requests, each row bounded by %v or %d requests, seed %d; %s seeded afresh and a cold cache for each row; %d CPUs (GOMAXPROCS), load generator and instances in one process.\n\n",
		cfg.ZipfS, cfg.IDs, 100*cfg.ReadFraction, 100*(1-cfg.ReadFraction), cfg.Concurrency, cfg.Duration, cfg.Requests, cfg.Seed, catalogue, runtime.GOMAXPROCS(0))
	fmt.Fprintln(w, "| aside | instances | requests | requests/s | p50 | p99 | DB queries / request | stale responses (longest after the PUT) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		stale := fmt.Sprint(r.res.Stale)
		if r.res.Stale > 0 {
			stale += fmt.Sprintf(" (%v)", r.res.StaleAfter.Round(time.Microsecond))
		}
		fmt.Fprintf(w, "| %s | %d | %d | %.0f | %v | %v | %.3f | %s |\n", onOff(r.cacheOn), r.instances, r.res.Requests,
			r.res.RPS(), r.res.P50.Round(time.Microsecond), r.res.P99.Round(time.Microsecond), r.res.QueriesPerRequest(), stale)
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
