package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/examples/webapp/app"
	"github.com/aside-go/aside/internal/redistest"
)

// serve runs an instance of the service on the SQLite catalogue in dir
// (aside on when redis is not nil) behind an httptest server.
func serve(t *testing.T, dir string, redis *redistest.Server) (*app.App, string) {
	t.Helper()
	db, err := app.OpenSQLite(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var client *cache.Client
	if redis != nil {
		client, err = cache.Connect(redis.ClientOption())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(client.Close)
	}
	a, err := app.New(app.Config{DB: db, Client: client, NoCache: redis == nil})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return a, srv.URL
}

// tiny is a run bounded by its request count: the duration bound is far.
func tiny(targets ...string) Config {
	return Config{Targets: targets, Duration: time.Hour, Requests: 400, Concurrency: 4,
		ReadFraction: 0.8, ZipfS: 1.1, IDs: app.SeedProducts, Seed: 7}
}

// checkCounts asserts what every run must satisfy: the request bound met
// exactly, no errors, the parts adding up to the whole.
func checkCounts(t *testing.T, cfg Config, res Result) {
	t.Helper()
	var perTarget, sources int64
	for _, n := range res.PerTarget {
		perTarget += n
		if n == 0 {
			t.Errorf("a target got no requests: %v", res.PerTarget)
		}
	}
	for _, n := range res.Sources {
		sources += n
	}
	if res.Requests != cfg.Requests || res.Errors != 0 || res.Gets+res.Puts != res.Requests ||
		perTarget != res.Requests || sources != res.Gets || res.Gets == 0 || res.Puts == 0 {
		t.Fatalf("counts do not add up for %d requests: %+v", cfg.Requests, res)
	}
	if res.P50 <= 0 || res.P99 < res.P50 || res.RPS() <= 0 {
		t.Fatalf("latency p50 %v p99 %v, %.0f requests/s", res.P50, res.P99, res.RPS())
	}
}

// TestAsideOn: one instance with aside on: no stale response (read-your-
// writes in one process), answers from process memory, and no query but
// for misses and PUTs.
func TestAsideOn(t *testing.T) {
	redis := redistest.Start(t, redistest.Config{})
	a, url := serve(t, t.TempDir(), redis)
	cfg := tiny(url)
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkCounts(t, cfg, res)
	if res.Stale != 0 {
		t.Fatalf("%d stale responses from one instance with aside on", res.Stale)
	}
	// Every query is a PUT's two or a GET's load (X-Cache miss; concurrent
	// misses of one key may share a load), so the local hits saved theirs.
	if res.Queries != a.Queries() || res.Queries > res.Sources["miss"]+2*res.Puts || res.Sources["local"] == 0 {
		t.Fatalf("queries %d (the instance counted %d) for %d requests, X-Cache %v", res.Queries, a.Queries(), res.Requests, res.Sources)
	}
	t.Logf("%+v", res)
}

// TestAsideOff: two instances on the database alone: no stale response,
// X-Cache off on every GET, and exactly one query per GET and two per PUT
// (read then update), summed over both instances' /healthz.
func TestAsideOff(t *testing.T) {
	dir := t.TempDir()
	_, a := serve(t, dir, nil)
	_, b := serve(t, dir, nil)
	cfg := tiny(a, b)
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkCounts(t, cfg, res)
	if res.Stale != 0 || res.Sources["off"] != res.Gets || res.Queries != res.Gets+2*res.Puts {
		t.Fatalf("aside off: stale %d, X-Cache %v, %d queries for %d GET and %d PUT", res.Stale, res.Sources, res.Queries, res.Gets, res.Puts)
	}
}

// TestAsideOnTwoInstances: two instances with aside on; the counts add up.
// A stale response is possible here (another instance's copy goes when
// Redis's push arrives, a moment after the PUT returned), so it is logged,
// not asserted.
func TestAsideOnTwoInstances(t *testing.T) {
	redis := redistest.Start(t, redistest.Config{})
	dir := t.TempDir()
	_, a := serve(t, dir, redis)
	_, b := serve(t, dir, redis)
	cfg := tiny(a, b)
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkCounts(t, cfg, res)
	t.Logf("stale %d of %d GETs", res.Stale, res.Gets)
}

// fake is a catalogue that keeps versions in memory. A lying one answers
// every GET with version 1 whatever the PUTs did.
func fake(t *testing.T, lying bool) string {
	var mu sync.Mutex
	versions := map[int64]int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			json.NewEncoder(w).Encode(app.Health{Status: "ok"})
			return
		}
		id, _ := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, "/products/"), 10, 64)
		mu.Lock()
		if versions[id] == 0 {
			versions[id] = 1
		}
		if r.Method == "PUT" {
			versions[id]++
		}
		p := app.Product{ID: id, Version: versions[id]}
		mu.Unlock()
		if lying && r.Method == "GET" {
			p.Version = 1
		}
		json.NewEncoder(w).Encode(p)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestStaleDetected: the stale count is not always 0: against a lying
// catalogue, one request at a time and half of them PUTs, the GETs of a
// product already PUT are counted; against an honest one, none is.
func TestStaleDetected(t *testing.T) {
	for _, lying := range []bool{false, true} {
		cfg := tiny(fake(t, lying))
		cfg.Concurrency, cfg.ReadFraction = 1, 0.5
		res, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		checkCounts(t, cfg, res)
		if lying != (res.Stale > 0) {
			t.Fatalf("lying %v: %d stale responses", lying, res.Stale)
		}
	}
}

// TestDurationBound: a run bounded by a short duration stops before its
// request bound (the test would not end otherwise), with every request it
// issued accounted for.
func TestDurationBound(t *testing.T) {
	cfg := tiny(fake(t, false))
	cfg.Duration, cfg.Requests = 50*time.Millisecond, 1<<40
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests >= cfg.Requests || res.Errors != 0 || res.Gets+res.Puts != res.Requests {
		t.Fatalf("duration-bounded run: %+v", res)
	}
}

// TestBadConfig: a run without both bounds, or with a Zipf exponent of 1
// or less, is refused.
func TestBadConfig(t *testing.T) {
	for _, mod := range []func(*Config){
		func(c *Config) { c.Duration = 0 },
		func(c *Config) { c.Requests = 0 },
		func(c *Config) { c.ZipfS = 1 },
		func(c *Config) { c.Targets = nil },
		func(c *Config) { c.ReadFraction = 1.5 },
	} {
		cfg := tiny("http://127.0.0.1:1")
		mod(&cfg)
		if _, err := Run(context.Background(), cfg); err == nil {
			t.Fatalf("config %+v accepted", cfg)
		}
	}
}
