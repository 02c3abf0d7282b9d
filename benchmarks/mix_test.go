package benchmarks

import (
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	// mixRecords is the number of records, read with Zipf-distributed ids.
	mixRecords = 100_000
	// mixZipfS is the Zipf exponent (math/rand needs it above 1): about a
	// third of the reads go to the hundred hottest records.
	mixZipfS = 1.1
	// mixUpdatePercent of the operations update a record and invalidate
	// it; the others read.
	mixUpdatePercent = 5
	// mixInstances is the number of client instances sharing the work, as
	// processes of one service would.
	mixInstances = 4
	// mixParallelism is the number of goroutines per GOMAXPROCS.
	mixParallelism = 16
	// mixWideParallelism is the number of goroutines per GOMAXPROCS of
	// the wide mixes (128 on 2 cores): the load of a busy service.
	mixWideParallelism = 64
	// mixLoad is how long the loader takes after reading the record: a
	// query. A load that read the record before an update may finish after
	// it, which is how a cache can be handed an old value to store.
	mixLoad = time.Millisecond
	// invalidationDelay is how long after an update completed a read may
	// still return the old value without counting as stale: the time Redis
	// takes to push the invalidation to every instance, which is well
	// under a millisecond on loopback, with room for a loaded machine.
	invalidationDelay = 10 * time.Millisecond
	// mixSeed seeds the random ids and operations of each goroutine (with
	// the goroutine's number), so that every contender gets the same ones.
	mixSeed = 0x5eed
	// warmGoroutines is how many goroutines per instance read the records
	// before the steady mix.
	warmGoroutines = 16
)

// mixContenders are the contenders of the mixes: those with an invalidation
// (rueidis by hand with Do keeps nothing to invalidate but Redis, as
// go-redis-cache does, which stands for it), and aside a second time with
// StaleWhileReloading (asideSWR), whose stale reads are by design: they are
// counted and reported as every contender's are, and aside's targets of 0
// stale reads (see ./chart) are those of its own row only.
var mixContenders = []contender{asideLocal, asideSWR, rueidisDoCache, rueidisAside, goRedisCache, goRedisCacheLFU, sturdy}

// BenchmarkMix is scenario 6: mixInstances instances read Zipf-distributed
// records (95%) and update them (5%: the source changes, then the contender
// invalidates the record as its documentation says), from mixParallelism ×
// GOMAXPROCS goroutines, starting cold. It reports the throughput (ops/s),
// the share of reads served without a loader call (hit-%), the stale reads
// (see Stale and invalidationDelay) and how old the oldest of them was
// (max-stale-ms). Run it with a fixed count (-benchtime=100000x) so that
// every contender does the same work from the same cold start.
func BenchmarkMix(b *testing.B) {
	run(b, mixContenders, func(b *testing.B, c contender) { benchMix(b, c, false, mixParallelism) })
}

// BenchmarkMixWide is scenario 6 from mixWideParallelism × GOMAXPROCS
// goroutines.
func BenchmarkMixWide(b *testing.B) {
	run(b, mixContenders, func(b *testing.B, c contender) { benchMix(b, c, false, mixWideParallelism) })
}

// BenchmarkMixSteady is scenario 7: the mix of BenchmarkMix at steady state.
// Before the timer starts, every instance has read every record (the first
// instance loads them all into Redis, then every instance reads them all, in
// batches; the loader does not take mixLoad then), so each holds them
// wherever it keeps copies. Besides the metrics of BenchmarkMix it reports
// the 50th, 99th and 99.9th percentiles of the latency of reads and of
// updates (an update's latency is the source's change and the
// invalidation), from every operation's duration:
// read-p50-µs, read-p99-µs, read-p99.9-µs, update-p50-µs, update-p99-µs,
// update-p99.9-µs.
func BenchmarkMixSteady(b *testing.B) {
	run(b, mixContenders, func(b *testing.B, c contender) { benchMix(b, c, true, mixParallelism) })
}

// BenchmarkMixSteadyWide is scenario 7 from mixWideParallelism ×
// GOMAXPROCS goroutines.
func BenchmarkMixSteadyWide(b *testing.B) {
	run(b, mixContenders, func(b *testing.B, c contender) { benchMix(b, c, true, mixWideParallelism) })
}

// benchMix runs a mix from parallelism × GOMAXPROCS goroutines. Besides its
// metrics (see BenchmarkMix) it reports what an operation cost, from probes
// around the timed run: the CPU time of the benchmark process (app-µs/op:
// the contender's instances, and the mix's own work, alike for every
// contender), Redis' CPU time (redis-µs/op) and the commands Redis ran
// (redis-cmds/op).
func benchMix(b *testing.B, c contender, steady bool, parallelism int) {
	if fixedCountProbe(b) {
		return
	}
	src := NewSource(mixRecordCount(b))
	l := &mixLoader{src: src}
	cls := c.instances(b, l.env(namespace()), mixInstances)
	ctx := context.Background()
	if steady {
		l.warming.Store(true)
		if err := warmAll(ctx, cls, src.Len()); err != nil {
			b.Fatal(err)
		}
		l.warming.Store(false)
		l.loads.Store(0)
	}
	w := newMixWork(src, cls, int64(b.N), parallelism*runtime.GOMAXPROCS(0), mixSeed, steady)
	before := takeProbe(b)
	b.ResetTimer()
	err := w.run(ctx)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	before.report(b, takeProbe(b), b.N)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	b.ReportMetric(hitPercent(w.reads.Load(), l.loads.Load()), "hit-%")
	b.ReportMetric(float64(w.stale.Load()), "stale-reads")
	b.ReportMetric(float64(w.maxAge.Load())/float64(time.Millisecond), "max-stale-ms")
	if steady {
		reads, updates := w.latencies()
		for _, l := range []struct {
			op string
			ds []time.Duration
		}{{"read", reads}, {"update", updates}} {
			for _, p := range latencyPercentiles {
				if d, ok := percentile(l.ds, p); ok {
					b.ReportMetric(float64(d)/float64(time.Microsecond), l.op+"-p"+strconv.FormatFloat(p, 'f', -1, 64)+"-µs")
				}
			}
		}
	}
}

// mixRecordsEnv names the environment variable that changes the number of
// records of the mixes from mixRecords, for runs that only check that they
// work (make ci): the steady mix reads every record through every instance
// first.
const mixRecordsEnv = "MIX_RECORDS"

// mixRecordCount is the number of records of a mix.
func mixRecordCount(tb testing.TB) int {
	v := os.Getenv(mixRecordsEnv)
	if v == "" {
		return mixRecords
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 2 {
		tb.Fatalf("%s=%q: want a number of records above 1", mixRecordsEnv, v)
	}
	return n
}

// latencyPercentiles are the percentiles of the latencies the steady mix
// reports.
var latencyPercentiles = []float64{50, 99, 99.9}

// mixLoader is the loader of a mix: it reads the record from the source, then
// takes mixLoad unless the workload is warming up, and counts its calls.
type mixLoader struct {
	src     *Source
	loads   atomic.Int64
	warming atomic.Bool
}

func (l *mixLoader) query() {
	if !l.warming.Load() {
		time.Sleep(mixLoad)
	}
}

// env is the environment of the contenders of a mix in namespace ns.
func (l *mixLoader) env(ns string) env {
	return env{
		ns: ns,
		load: func(_ context.Context, id int64) (User, error) {
			l.loads.Add(1)
			u := l.src.Load(id)
			l.query()
			return u, nil
		},
		loadMany: func(_ context.Context, ids []int64) (map[int64]User, error) {
			l.loads.Add(int64(len(ids)))
			m := make(map[int64]User, len(ids))
			for _, id := range ids {
				m[id] = l.src.Load(id)
			}
			l.query()
			return m, nil
		},
	}
}

// hitPercent is the share of reads that did not call the loader.
func hitPercent(reads, loads int64) float64 {
	if reads == 0 {
		return 0
	}
	return 100 * (1 - float64(loads)/float64(reads))
}

// warmAll reads records 0..n-1 through the first instance, which loads them
// into Redis, then through every instance at once, so that each holds every
// record wherever it keeps copies (aside keeps the copy of a value it loaded
// itself only from its next read, once Redis tracks the key). Reads go in
// batches of batchSize (one GetMany: a batch read for the contenders that
// have one, a Get per key for the others), from warmGoroutines goroutines
// per instance.
func warmAll(ctx context.Context, cls []client, n int) error {
	if err := warm1(ctx, cls[0], n); err != nil {
		return err
	}
	errs := make(chan error, len(cls))
	for _, cl := range cls {
		go func() { errs <- warm1(ctx, cl, n) }()
	}
	var first error
	for range cls {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// warm1 reads records 0..n-1 through cl.
func warm1(ctx context.Context, cl client, n int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	for range warmGoroutines {
		wg.Go(func() {
			ids := make([]int64, 0, batchSize)
			for failed.Load() == nil {
				lo := (next.Add(1) - 1) * batchSize
				if lo >= int64(n) {
					return
				}
				ids = ids[:0]
				for id := lo; id < min(lo+batchSize, int64(n)); id++ {
					ids = append(ids, id)
				}
				got, err := cl.GetMany(ctx, ids)
				if err == nil && got != len(ids) {
					err = fmt.Errorf("warming: got %d records of %d", got, len(ids))
				}
				if err != nil {
					failed.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	wg.Wait()
	if p := failed.Load(); p != nil {
		return *p
	}
	return nil
}

// mixWork is ops operations of the mix, over the records of src, shared by
// goroutines goroutines numbered from first (1 unless set); goroutine g
// uses instance g % len(cls) and draws its ids and operations from a
// generator seeded with g and seed.
type mixWork struct {
	src        *Source
	cls        []client
	ops        int64
	goroutines int
	first      uint64 // the number of the first goroutine
	seed       uint64
	// next is the number of operations claimed, grain at a time.
	next  atomic.Int64
	grain int64
	// samples holds the duration of operation i, when recording.
	samples []sample

	reads, stale, maxAge atomic.Int64
	failed               atomic.Pointer[error]
}

// sample is the duration of one operation.
type sample struct {
	d      time.Duration
	update bool
}

// newMixWork prepares ops operations; with record, room for the duration of
// each, so that recording allocates nothing while they run.
func newMixWork(src *Source, cls []client, ops int64, goroutines int, seed uint64, record bool) *mixWork {
	w := &mixWork{
		src:        src,
		cls:        cls,
		ops:        ops,
		goroutines: goroutines,
		first:      1,
		seed:       seed,
		grain:      max(1, min(1000, ops/int64(100*goroutines))),
	}
	if record {
		w.samples = make([]sample, ops)
	}
	return w
}

// run runs the operations and returns the first error of any.
func (w *mixWork) run(ctx context.Context) error {
	var wg sync.WaitGroup
	for g := range w.goroutines {
		wg.Go(func() { w.goroutine(ctx, w.first+uint64(g)) })
	}
	wg.Wait()
	if p := w.failed.Load(); p != nil {
		return *p
	}
	return nil
}

func (w *mixWork) fail(err error) { w.failed.CompareAndSwap(nil, &err) }

func (w *mixWork) goroutine(ctx context.Context, g uint64) {
	cl := w.cls[g%uint64(len(w.cls))]
	rng := rand.New(rand.NewPCG(g, w.seed))
	zipf := rand.NewZipf(rng, mixZipfS, 1, uint64(w.src.Len()-1))
	var reads, stale, maxAge int64
	defer func() {
		w.reads.Add(reads)
		w.stale.Add(stale)
		for {
			m := w.maxAge.Load()
			if maxAge <= m || w.maxAge.CompareAndSwap(m, maxAge) {
				break
			}
		}
	}()
	for w.failed.Load() == nil {
		end := w.next.Add(w.grain)
		i := end - w.grain
		if i >= w.ops {
			return
		}
		for ; i < min(end, w.ops); i++ {
			id := int64(zipf.Uint64())
			if rng.IntN(100) < mixUpdatePercent {
				start := w.src.Now()
				v := w.src.Update(id)
				if err := cl.Invalidate(ctx, id); err != nil {
					w.fail(err)
					return
				}
				done := w.src.Now()
				w.src.Complete(id, v, done)
				if w.samples != nil {
					w.samples[i] = sample{done - start, true}
				}
				continue
			}
			before := w.src.Completed(id)
			start := w.src.Now()
			u, err := cl.Get(ctx, id)
			if w.samples != nil {
				w.samples[i] = sample{w.src.Now() - start, false}
			}
			if err == nil && u.ID != id {
				err = fmt.Errorf("read %d, got the value of %d", id, u.ID)
			}
			if err != nil {
				w.fail(err)
				return
			}
			reads++
			if age, ok := Stale(u, before, start, invalidationDelay); ok {
				stale++
				maxAge = max(maxAge, int64(age))
			}
		}
	}
}

// latencies returns the recorded durations of the reads and of the updates,
// each sorted.
func (w *mixWork) latencies() (reads, updates []time.Duration) {
	for _, s := range w.samples {
		if s.update {
			updates = append(updates, s.d)
		} else {
			reads = append(reads, s.d)
		}
	}
	slices.Sort(reads)
	slices.Sort(updates)
	return reads, updates
}

// percentile is the p-th percentile of sorted ds, by the nearest rank: the
// smallest duration at least p% of ds do not exceed.
func percentile(ds []time.Duration, p float64) (time.Duration, bool) {
	if len(ds) == 0 {
		return 0, false
	}
	rank := int(math.Ceil(float64(len(ds))*p/100)) - 1
	return ds[min(max(rank, 0), len(ds)-1)], true
}

// fixedCountProbe reports whether this call of a benchmark function is the
// single iteration the testing package runs first when -benchtime is a fixed
// count above 1, and whose result it drops for that of the count. The mixes,
// whose setup (clients, warming, processes) costs far more than one
// iteration, return at once from it.
func fixedCountProbe(b *testing.B) bool {
	if b.N != 1 {
		return false
	}
	f := flag.Lookup("test.benchtime")
	if f == nil {
		return false
	}
	n, ok := strings.CutSuffix(f.Value.String(), "x")
	if !ok {
		return false
	}
	count, err := strconv.Atoi(n)
	return err == nil && count > 1
}
