// Command webapp is an example product catalogue on SQLite or PostgreSQL
// with aside caching it on Redis. See README.md.
//
// It connects to REDIS_URL (default redis://localhost:6379); when nothing
// answers there and redis-server is on PATH, it starts a private one for the
// run. ADDR (default 127.0.0.1:8080) is where it listens. The database is
// PostgreSQL at DATABASE_URL when that is set, otherwise SQLite in DATA_DIR
// (default ./data). CACHE=off runs it on the database alone (no Redis), for
// comparison.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/redis/rueidis"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/examples/webapp/app"
	"github.com/aside-go/aside/internal/redistest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "webapp:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	db, where, err := openDB(ctx)
	if err != nil {
		return err
	}
	defer db.Close()

	noCache := false
	switch c := os.Getenv("CACHE"); c {
	case "", "on":
	case "off":
		noCache = true
	default:
		return fmt.Errorf("CACHE=%q: on or off", c)
	}
	var client *cache.Client
	if !noCache {
		opt, stopRedis, err := redisOption()
		if err != nil {
			return err
		}
		defer stopRedis()
		client, err = cache.Connect(opt, cache.WithLogger(log))
		if err != nil {
			return err
		}
		defer client.Close()
	}

	metrics, err := app.NewMetrics()
	if err != nil {
		return err
	}
	defer metrics.Close()

	svc, err := app.New(app.Config{DB: db, Client: client, NoCache: noCache,
		Recorder: metrics.Recorder, Metrics: metrics.Handler, Logger: log})
	if err != nil {
		return err
	}

	addr := getenv("ADDR", "127.0.0.1:8080")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	if noCache {
		fmt.Println("webapp: CACHE=off: every read goes to the database")
	}
	fmt.Printf("webapp: database %s, listening on http://%s/ (try /products/1, /categories/c01, /healthz, /metrics)\n", where, ln.Addr())
	if err := app.Serve(ctx, ln, svc, 10*time.Second); err != nil {
		return err
	}
	fmt.Println("webapp: shut down")
	return nil
}

// openDB opens PostgreSQL at DATABASE_URL when it is set, SQLite in DATA_DIR
// otherwise, and says which.
func openDB(ctx context.Context) (*app.DB, string, error) {
	if url := os.Getenv("DATABASE_URL"); url != "" {
		db, err := app.OpenPostgres(ctx, url)
		if err != nil {
			return nil, "", fmt.Errorf("PostgreSQL at DATABASE_URL: %w", err)
		}
		return db, "PostgreSQL (DATABASE_URL)", nil
	}
	dir := getenv("DATA_DIR", "data")
	db, err := app.OpenSQLite(ctx, dir)
	if err != nil {
		return nil, "", fmt.Errorf("SQLite database in %s: %w", dir, err)
	}
	return db, "SQLite in " + dir, nil
}

func getenv(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// redisOption is REDIS_URL's, or a private redis-server's when nothing
// answers there (as examples/quickstart does).
func redisOption() (rueidis.ClientOption, func(), error) {
	return redistest.ForURL(getenv("REDIS_URL", "redis://localhost:6379"), func(s string) { fmt.Println("webapp: " + s) })
}
