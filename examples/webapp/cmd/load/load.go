package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aside-go/aside/examples/webapp/app"
)

// Config is one load run.
type Config struct {
	// Targets are the base URLs of the instances (http://host:port); request
	// n goes to Targets[n % len(Targets)].
	Targets []string
	// Duration and Requests bound the run: it stops issuing requests when
	// either is reached, and waits for those in flight.
	Duration time.Duration
	Requests int64
	// Concurrency is the number of workers, each with one request in flight.
	Concurrency int
	// ReadFraction is the share of GET /products/{id}; the rest are PUTs.
	ReadFraction float64
	// ZipfS is the Zipf exponent (> 1) of the ids' popularity; id 1 is the
	// most popular.
	ZipfS float64
	// IDs is how many products the ids are drawn from (1 … IDs).
	IDs int
	// Seed makes the run's choice of ids and operations reproducible (up to
	// the order in which workers take their turns).
	Seed uint64
	// Client sends the requests; nil means one sized for Concurrency.
	Client *http.Client
}

// Result is what a run measured.
type Result struct {
	// Requests = Gets + Puts + Errors: every request issued and finished.
	Requests, Gets, Puts, Errors int64
	// Stale counts GETs that returned a version older than one whose PUT
	// had returned to the tool before the GET was sent.
	Stale int64
	// StaleAfter is, of the stale GETs, the longest time from the return of
	// the PUT that made the answer stale to the sending of the GET: how long
	// the old version was still served.
	StaleAfter time.Duration
	// Sources counts the GETs by their X-Cache header ("" when absent).
	Sources map[string]int64
	// PerTarget counts the requests sent to each target.
	PerTarget []int64
	// Elapsed is from the first request to the last response.
	Elapsed time.Duration
	// P50 and P99 are latency percentiles of the successful requests.
	P50, P99 time.Duration
	// Queries is the instances' database queries during the run (the
	// increase of /healthz's queries, summed over the targets).
	Queries int64
	// FirstError is an example of what went wrong, when Errors > 0.
	FirstError string
}

// RPS is the successful requests per second.
func (r Result) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Gets+r.Puts) / r.Elapsed.Seconds()
}

// QueriesPerRequest is the database queries per successful request.
func (r Result) QueriesPerRequest() float64 {
	if r.Gets+r.Puts == 0 {
		return 0
	}
	return float64(r.Queries) / float64(r.Gets+r.Puts)
}

func (c *Config) validate() error {
	switch {
	case len(c.Targets) == 0:
		return errors.New("no targets")
	case c.Duration <= 0 || c.Requests <= 0:
		return errors.New("both bounds are required: a duration > 0 and a request count > 0")
	case c.Concurrency < 1:
		return errors.New("concurrency: at least 1")
	case c.ReadFraction < 0 || c.ReadFraction > 1:
		return errors.New("read fraction: between 0 and 1")
	case c.ZipfS <= 1:
		return errors.New("zipf exponent: greater than 1")
	case c.IDs < 1:
		return errors.New("ids: at least 1")
	}
	for i, t := range c.Targets {
		c.Targets[i] = strings.TrimRight(t, "/")
	}
	return nil
}

// Run drives the mix against the targets and measures it.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.validate(); err != nil {
		return Result{}, err
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			MaxIdleConns: cfg.Concurrency * len(cfg.Targets), MaxIdleConnsPerHost: cfg.Concurrency,
		}}
	}
	before, err := queries(ctx, client, cfg.Targets)
	if err != nil {
		return Result{}, err
	}
	r := &run{cfg: cfg, client: client, acked: make([]ack, cfg.IDs+1),
		perTarget: make([]atomic.Int64, len(cfg.Targets))}
	start := time.Now()
	r.deadline = start.Add(cfg.Duration)
	workers := make([]*worker, cfg.Concurrency)
	var wg sync.WaitGroup
	for i := range workers {
		src := rand.New(rand.NewPCG(cfg.Seed, uint64(i)))
		w := &worker{run: r, rnd: src, zipf: rand.NewZipf(src, cfg.ZipfS, 1, uint64(cfg.IDs-1)),
			sources: map[string]int64{}}
		workers[i] = w
		wg.Go(func() { w.loop(ctx) })
	}
	wg.Wait()
	res := Result{Elapsed: time.Since(start), Sources: map[string]int64{}}
	var samples []time.Duration
	for _, w := range workers {
		res.Gets += w.gets
		res.Puts += w.puts
		res.Errors += w.errors
		res.Stale += w.stale
		res.StaleAfter = max(res.StaleAfter, w.staleAfter)
		for k, v := range w.sources {
			res.Sources[k] += v
		}
		samples = append(samples, w.samples...)
		if res.FirstError == "" {
			res.FirstError = w.firstError
		}
	}
	res.Requests = res.Gets + res.Puts + res.Errors
	for i := range r.perTarget {
		res.PerTarget = append(res.PerTarget, r.perTarget[i].Load())
	}
	slices.Sort(samples)
	res.P50, res.P99 = percentile(samples, 50), percentile(samples, 99)
	after, err := queries(ctx, client, cfg.Targets)
	if err != nil {
		return res, err
	}
	res.Queries = after - before
	return res, nil
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)*p/100, len(sorted)-1)]
}

// queries sums the targets' /healthz query counters.
func queries(ctx context.Context, client *http.Client, targets []string) (int64, error) {
	var sum int64
	for _, t := range targets {
		req, err := http.NewRequestWithContext(ctx, "GET", t+"/healthz", nil)
		if err != nil {
			return 0, err
		}
		res, err := client.Do(req)
		if err != nil {
			return 0, fmt.Errorf("%s/healthz: %w", t, err)
		}
		var h app.Health
		err = json.NewDecoder(res.Body).Decode(&h)
		res.Body.Close()
		if err != nil {
			return 0, fmt.Errorf("%s/healthz: %w", t, err)
		}
		sum += h.Queries
	}
	return sum, nil
}

// run is the state the workers share.
type run struct {
	cfg      Config
	client   *http.Client
	deadline time.Time
	issued   atomic.Int64
	// acked[id] is the highest version of product id that a completed PUT
	// returned: a GET sent after that must not return an older one.
	acked     []ack
	perTarget []atomic.Int64
}

// ack is the highest version of a product a PUT returned, and when.
type ack struct {
	mu      sync.Mutex
	version int64
	at      time.Time
}

func (a *ack) load() (int64, time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.version, a.at
}

func (a *ack) raise(version int64, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if version > a.version {
		a.version, a.at = version, at
	}
}

// worker issues one request at a time and keeps its own counts, so that
// workers share nothing but the ticket counter and acked.
type worker struct {
	*run
	rnd  *rand.Rand
	zipf *rand.Zipf

	gets, puts, errors, stale int64
	staleAfter                time.Duration
	sources                   map[string]int64
	samples                   []time.Duration
	firstError                string
}

func (w *worker) loop(ctx context.Context) {
	for ctx.Err() == nil && time.Now().Before(w.deadline) {
		n := w.issued.Add(1)
		if n > w.cfg.Requests {
			return
		}
		ti := int(n % int64(len(w.cfg.Targets)))
		w.perTarget[ti].Add(1)
		target := w.cfg.Targets[ti]
		id := int64(w.zipf.Uint64()) + 1
		var err error
		t0 := time.Now()
		if w.rnd.Float64() < w.cfg.ReadFraction {
			err = w.get(ctx, target, id)
		} else {
			err = w.put(ctx, target, id)
		}
		if err != nil {
			w.errors++
			if w.firstError == "" {
				w.firstError = err.Error()
			}
			continue
		}
		w.samples = append(w.samples, time.Since(t0))
	}
}

func (w *worker) get(ctx context.Context, target string, id int64) error {
	floor, ackedAt := w.acked[id].load() // before the request is sent
	sent := time.Now()
	req, err := http.NewRequestWithContext(ctx, "GET", target+"/products/"+strconv.FormatInt(id, 10), nil)
	if err != nil {
		return err
	}
	p, header, err := w.do(req)
	if err != nil {
		return err
	}
	w.gets++
	w.sources[header.Get("X-Cache")]++
	if p.Version < floor {
		w.stale++
		w.staleAfter = max(w.staleAfter, sent.Sub(ackedAt))
	}
	return nil
}

func (w *worker) put(ctx context.Context, target string, id int64) error {
	body, _ := json.Marshal(app.ProductInput{
		Name:       fmt.Sprintf("Product %d (load %d)", id, w.rnd.IntN(1000)),
		Category:   app.CategoryName(int(id)),
		PriceCents: int64(100 + w.rnd.IntN(10000)),
	})
	req, err := http.NewRequestWithContext(ctx, "PUT", target+"/products/"+strconv.FormatInt(id, 10), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	p, _, err := w.do(req)
	if err != nil {
		return err
	}
	w.puts++
	// The PUT has returned: from now on no GET may return an older version.
	w.acked[id].raise(p.Version, time.Now())
	return nil
}

func (w *worker) do(req *http.Request) (app.Product, http.Header, error) {
	res, err := w.client.Do(req)
	if err != nil {
		return app.Product{}, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return app.Product{}, nil, err
	}
	if res.StatusCode != http.StatusOK {
		return app.Product{}, nil, fmt.Errorf("%s %s: status %d: %s", req.Method, req.URL.Path, res.StatusCode, bytes.TrimSpace(b))
	}
	var p app.Product
	if err := json.Unmarshal(b, &p); err != nil {
		return app.Product{}, nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	return p, res.Header, nil
}
