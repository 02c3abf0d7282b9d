package faults_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/ttlpolicy"
)

const (
	// records is the number of records the workload reads and updates: few,
	// so that updates keep hitting keys held in memory.
	records = 48
	// barriers are records the workload never touches, read only to make
	// every connection of a client deliver what Redis pushed before (see
	// settle). Enough that some land on every primary of the cluster.
	barriers = 64
	// workers is the number of goroutines per client.
	workers = 8
	// padding is the size of each value, so that a reply spans several
	// segments and the bandwidth and reset faults cut into replies.
	padding = 1024
	// grace is how long after an update completed a read may return the
	// older value without counting as stale in the live phase after the
	// fault: the time the invalidation takes to reach the other client, as
	// in the benchmark mix (benchmarks/mix_test.go).
	grace = 10 * time.Millisecond
)

// soak reports whether the long forms run (make soak).
func soak() bool { return os.Getenv("ASIDE_SOAK") != "" }

// record is the cached value: a record of the source at some version.
type record struct {
	ID      int64  `msgpack:"id"`
	Version int64  `msgpack:"v"`
	Pad     []byte `msgpack:"p"`
}

// source is the source of truth. An update bumps the version, then writes or
// invalidates the cache; only when that returned is the version completed:
// a read that started after it must not return an older version.
type source struct {
	version     [records + barriers]atomic.Int64
	completed   [records + barriers]atomic.Int64
	completedAt [records + barriers]atomic.Int64 // unix ns
	// pending marks records whose last cache write failed: the cache may
	// hold an older version until the application retries, as it must.
	pending [records + barriers]atomic.Bool
	// updating holds one update of a record at a time, as a row lock would.
	updating [records + barriers]sync.Mutex
	loads    atomic.Int64
	pad      []byte
}

func newSource() *source {
	return &source{pad: bytes.Repeat([]byte{'x'}, padding)}
}

func (s *source) load(_ context.Context, id int64) (record, error) {
	s.loads.Add(1)
	return s.at(id, s.version[id].Load()), nil
}

func (s *source) at(id, v int64) record { return record{ID: id, Version: v, Pad: s.pad} }

func (s *source) complete(id, v int64) {
	s.completed[id].Store(v)
	s.completedAt[id].Store(time.Now().UnixNano())
	s.pending[id].Store(false)
}

// newCache builds the workload's cache on client with default options but
// the loader.
func newCache(t testing.TB, client *cache.Client, src *source) *cache.Cache[int64, record] {
	t.Helper()
	c, err := cache.New(client, cache.Options[int64, record]{
		Namespace: "faults",
		TTL:       ttlpolicy.Minutes(5),
		Loader:    src.load,
	})
	require.NoError(t, err)
	return c
}

// phase collects what one phase of the workload saw.
type phase struct {
	mu        sync.Mutex
	latencies [2][]time.Duration // Gets of each client
	readErrs  map[string]int
	writeErrs map[string]int
	other     []error // errors of no documented class, and wrong records
	reads     atomic.Int64
	stale     atomic.Int64 // reads older than the last completed update
	late      atomic.Int64 // of those, reads that started grace after it
	oldest    time.Duration
	loads     int64
}

func newPhase() *phase {
	return &phase{readErrs: map[string]int{}, writeErrs: map[string]int{}}
}

// class names the documented class of an error of a cache operation whose
// caller's context has no deadline; anything else is recorded as a failure.
func (p *phase) class(errs map[string]int, err error) {
	var c string
	switch {
	case errors.Is(err, cache.ErrUnavailable):
		c = "unavailable"
	default:
		p.mu.Lock()
		p.other = append(p.other, err)
		p.mu.Unlock()
		c = "other"
	}
	p.mu.Lock()
	errs[c]++
	p.mu.Unlock()
}

func (p *phase) fail(err error) {
	p.mu.Lock()
	p.other = append(p.other, err)
	p.mu.Unlock()
}

func classes(m map[string]int) string {
	if len(m) == 0 {
		return "–"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d %s", m[k], k)
	}
	return b.String()
}

func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// workload runs workers goroutines on each of two caches (two clients, as two
// processes would be): 88% Get, 4% GetMany of four records, 4% updates that
// Set the new version, 4% updates that Invalidate.
type workload struct {
	src    *source
	caches [2]*cache.Cache[int64, record]
}

// run runs the workload until stop is closed (or, when stop is nil, for d)
// and returns what it saw.
func (w *workload) run(d time.Duration, stop <-chan struct{}) *phase {
	p := newPhase()
	loads := w.src.loads.Load()
	if stop == nil {
		done := make(chan struct{})
		timer := time.AfterFunc(d, func() { close(done) })
		defer timer.Stop()
		stop = done
	}
	var wg sync.WaitGroup
	for ci, c := range w.caches {
		for g := range workers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(ci), uint64(g)))
				var lat []time.Duration
				defer func() {
					p.mu.Lock()
					p.latencies[ci] = append(p.latencies[ci], lat...)
					p.mu.Unlock()
				}()
				for {
					select {
					case <-stop:
						return
					default:
					}
					id := rng.Int64N(records)
					switch r := rng.IntN(100); {
					case r < 4:
						w.update(c, id, true, p)
					case r < 8:
						w.update(c, id, false, p)
					case r < 12:
						w.getMany(c, []int64{id, (id + 1) % records, (id + 7) % records, (id + 13) % records}, p)
					default:
						lat = append(lat, w.get(c, id, p))
					}
				}
			})
		}
	}
	wg.Wait()
	p.loads = w.src.loads.Load() - loads
	return p
}

func (w *workload) get(c *cache.Cache[int64, record], id int64, p *phase) time.Duration {
	before, at := w.src.completed[id].Load(), w.src.completedAt[id].Load()
	start := time.Now()
	u, err := c.Get(context.Background(), id)
	took := time.Since(start)
	if err != nil {
		p.class(p.readErrs, err)
		return took
	}
	w.check(id, u, before, at, start, p)
	return took
}

func (w *workload) getMany(c *cache.Cache[int64, record], ids []int64, p *phase) {
	var before, at [4]int64
	for i, id := range ids {
		before[i], at[i] = w.src.completed[id].Load(), w.src.completedAt[id].Load()
	}
	start := time.Now()
	m, err := c.GetMany(context.Background(), ids)
	if err != nil {
		p.class(p.readErrs, err)
	}
	for i, id := range ids {
		if u, ok := m[id]; ok {
			w.check(id, u, before[i], at[i], start, p)
		}
	}
}

func (w *workload) check(id int64, u record, before, at int64, start time.Time, p *phase) {
	p.reads.Add(1)
	if u.ID != id || len(u.Pad) != padding {
		p.fail(fmt.Errorf("read record %d, got record %d with %d bytes of padding", id, u.ID, len(u.Pad)))
		return
	}
	if u.Version < before {
		p.stale.Add(1)
		age := start.Sub(time.Unix(0, at))
		if age > grace {
			p.late.Add(1)
		}
		p.mu.Lock()
		p.oldest = max(p.oldest, age)
		p.mu.Unlock()
	}
}

// update changes record id in the source, then writes the new version to
// the cache (set) or invalidates it, as the application would. A failed
// cache write leaves the record pending until retried.
func (w *workload) update(c *cache.Cache[int64, record], id int64, set bool, p *phase) {
	if !w.src.updating[id].TryLock() {
		return
	}
	defer w.src.updating[id].Unlock()
	v := w.src.version[id].Add(1)
	var err error
	if set {
		err = c.Set(context.Background(), id, w.src.at(id, v))
	} else {
		err = c.Invalidate(context.Background(), id)
	}
	if err != nil {
		p.class(p.writeErrs, err)
		w.src.pending[id].Store(true)
		return
	}
	w.src.complete(id, v)
}

// retry runs op until it succeeds, every 20ms, for at most limit.
func retry(limit time.Duration, op func() error) error {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := op()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		<-tick.C
	}
}

// recover brings the cache back to the source once a fault ended, as an
// application retrying its failed writes would: every pending record is
// invalidated again.
func (w *workload) recover(t testing.TB) {
	t.Helper()
	for id := range int64(records) {
		if !w.src.pending[id].Load() {
			continue
		}
		v := w.src.version[id].Load()
		require.NoError(t, retry(30*time.Second, func() error {
			return w.caches[0].Invalidate(context.Background(), id)
		}), "invalidating record %d once the fault ended", id)
		w.src.complete(id, v)
	}
}

// settle returns once each client has received everything Redis pushed to
// it before settle began: a round trip on every connection (EXISTS of keys on
// every primary) is answered after the pushes Redis queued before it, and
// rueidis hands those to aside before the reply.
func (w *workload) settle(t testing.TB) {
	t.Helper()
	ids := make([]int64, barriers)
	for i := range ids {
		ids[i] = records + int64(i)
	}
	for _, c := range w.caches {
		require.NoError(t, retry(30*time.Second, func() error {
			_, err := c.Exists(context.Background(), ids...)
			return err
		}), "a round trip to every node once the fault ended")
	}
}

// verify reads every record through both caches once nothing changes any
// more and returns the reads that were not the last completed version.
func (w *workload) verify(t testing.TB) int {
	t.Helper()
	stale := 0
	for _, c := range w.caches {
		for id := range int64(records) {
			var u record
			require.NoError(t, retry(30*time.Second, func() error {
				var err error
				u, err = c.Get(context.Background(), id)
				return err
			}))
			if want := w.src.completed[id].Load(); u.Version != want {
				t.Errorf("record %d: read version %d after the fault, the last completed update wrote %d", id, u.Version, want)
				stale++
			}
		}
	}
	return stale
}

// proxy is an in-process toxiproxy between one client and Redis.
type proxy struct {
	p *toxiproxy.Proxy
}

func newProxy(t testing.TB, upstream string) *proxy {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, "redis", "127.0.0.1:0", upstream)
	require.NoError(t, p.Start())
	return &proxy{p: p}
}

func (p *proxy) addr() string { return p.p.Listen }

func (p *proxy) clientOption() rueidis.ClientOption {
	return rueidis.ClientOption{InitAddress: []string{p.addr()}}
}

// add adds a toxic on the stream ("upstream": to Redis, "downstream": from
// it) of every connection, present and future.
func (p *proxy) add(t testing.TB, name, typ, stream string, attrs map[string]any) {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"name": name, "type": typ, "stream": stream, "toxicity": 1.0, "attributes": attrs,
	})
	require.NoError(t, err)
	_, err = p.p.Toxics.AddToxicJson(bytes.NewReader(body))
	require.NoError(t, err)
}

func (p *proxy) remove(t testing.TB, name string) {
	t.Helper()
	quiet := zerolog.Nop().WithContext(context.Background())
	require.NoError(t, p.p.Toxics.RemoveToxic(quiet, name))
}

func (p *proxy) stop() { p.p.Stop() }
