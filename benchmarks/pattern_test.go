package benchmarks

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/internal/redistest"
	"github.com/aside-go/aside/invalidation"
)

// Pattern invalidation on a Redis Cluster (issue 12): removing every key of
// a prefix, 1M keys by default, with aside's InvalidatePrefix against the
// same SCAN + UNLINK written by hand on rueidis.
const (
	// patternKeysEnv overrides the number of keys (make ci uses a small one).
	patternKeysEnv = "PATTERN_KEYS"
	// patternKeysDefault is the number of keys of one op.
	patternKeysDefault = 1_000_000
	// patternPrefix is the part of every key after the cache's namespace
	// that the invalidation removes: the keys are "<ns>:item:<i>".
	patternPrefix = "item:"
	// patternScanCount is the SCAN COUNT hint of both ways: aside's default,
	// passed explicitly so that both walk the keyspace in the same steps.
	patternScanCount = 1000
	// populateChunk is how many SETs one pipeline (DoMulti) of the
	// population carries; populateWorkers pipelines are in flight at once.
	populateChunk   = 1000
	populateWorkers = 4
	// heapSampleEvery is the period of the goroutine that samples the heap
	// during the timed invalidation.
	heapSampleEvery = time.Millisecond
)

// BenchmarkInvalidatePattern1M removes every key of one prefix from a private
// 3-primary Redis Cluster (no replicas), started once for both ways and
// stopped at the end. One op writes the keys (PATTERN_KEYS, default 1M, with
// values of 16 to 64 bytes) with pipelined SETs, outside the timer, then
// times their removal:
//
//   - how=aside: a cache on the cluster (cache.Connect, cache.New) calls
//     InvalidatePrefix("item:") with WithProgress; the progress callback
//     must see its totals grow and end at the count InvalidatePrefix
//     returns, which must be the number of keys written.
//   - how=unlink-by-hand: a rueidis cluster client finds the primaries
//     (Nodes, ROLE) and runs, on each in turn, SCAN MATCH <ns>:item:* COUNT
//     1000 to the end, unlinking each batch the SCAN returns with one DoMulti
//     of single-key UNLINKs through the cluster client, as aside sends them
//     (package invalidation). A multi-key UNLINK must stay within one slot,
//     and grouping by slot would hardly shorten the pipeline: on Redis 7.0
//     the 1000 keys of one SCAN batch of a 1M-key cluster fall in about 910
//     slots.
//
// After each op every primary must report DBSIZE 0 (the cluster holds only
// the benchmark's keys). Metrics, besides ns/op and the allocations:
//
//   - keys/s: keys removed per second of the timed part;
//   - peak-heap-MB: the largest heap seen during the timed part, in 10^6
//     bytes: runtime/metrics /memory/classes/heap/objects:bytes (HeapAlloc:
//     live objects and those not swept yet) read by a goroutine every
//     millisecond and after every batch (in aside's progress callback, after
//     each DoMulti by hand), after a runtime.GC at the start of the op;
//   - base-heap-MB: the same heap right after that GC, before the timer
//     starts, so that peak minus base is what the removal itself holds;
//   - populate-s: the seconds the untimed population of one op took;
//   - progress/op (aside): the number of progress callbacks (one per batch).
//
// With -v the progress is logged about every tenth of the keys.
func BenchmarkInvalidatePattern1M(b *testing.B) {
	n := patternKeys(b)
	cl := redistest.StartCluster(b, redistest.ClusterConfig{Primaries: 3})
	// The client that writes the keys, and the by-hand way's client.
	rc, err := rueidis.NewClient(cl.ClientOption())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(rc.Close)
	p := &patternBench{n: n, cluster: cl, rc: rc}

	b.Run("how=aside", func(b *testing.B) {
		ns := namespace()
		conn, err := cache.Connect(cl.ClientOption(), cache.RequireRedis())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(conn.Close)
		c, err := cache.New(conn, cache.Options[string, User]{Namespace: ns})
		if err != nil {
			b.Fatal(err)
		}
		if got, want := c.Key(patternPrefix+"0"), patternKey(ns, 0); got != want {
			b.Fatalf("the cache's key is %q, the benchmark writes %q", got, want)
		}
		calls := 0
		p.run(b, ns, func(ctx context.Context, peak *heapPeak) (int64, error) {
			track := progressCheck{b: b, n: n}
			removed, err := c.InvalidatePrefix(ctx, patternPrefix, cache.WithScanCount(patternScanCount),
				cache.WithProgress(func(pr invalidation.Progress) {
					peak.sampleHere()
					track.observe(pr)
				}))
			if err == nil {
				track.done(removed, len(cl.Primaries()))
			}
			calls += track.calls
			return removed, err
		})
		b.ReportMetric(float64(calls)/float64(b.N), "progress/op")
	})

	b.Run("how=unlink-by-hand", func(b *testing.B) {
		ns := namespace()
		p.run(b, ns, func(ctx context.Context, peak *heapPeak) (int64, error) {
			return unlinkByHand(ctx, rc, patternKey(ns, -1)+"*", peak.sampleHere)
		})
	})
}

// patternKeys reads PATTERN_KEYS.
func patternKeys(b *testing.B) int {
	s := os.Getenv(patternKeysEnv)
	if s == "" {
		return patternKeysDefault
	}
	n, err := strconv.Atoi(strings.ReplaceAll(s, "_", ""))
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive number of keys", patternKeysEnv, s)
	}
	return n
}

// patternKey is the Redis key of item i of namespace ns: what a
// cache.Cache[string, V] of that namespace names key "item:<i>". With i < 0
// it is the prefix alone.
func patternKey(ns string, i int) string {
	if i < 0 {
		return ns + ":" + patternPrefix
	}
	return ns + ":" + patternPrefix + strconv.Itoa(i)
}

// patternValues are the values written: 16 to 64 bytes.
var patternValues = func() []string {
	out := make([]string, 0, 49)
	for l := 16; l <= 64; l++ {
		out = append(out, strings.Repeat("v", l))
	}
	return out
}()

// patternBench is what both ways share: the cluster, the writing client and
// the number of keys.
type patternBench struct {
	n       int
	cluster *redistest.Cluster
	rc      rueidis.Client
}

// run is the op loop of one way: populate (untimed), then remove (timed)
// with invalidate, which returns how many keys it removed; then the checks.
func (p *patternBench) run(b *testing.B, ns string, invalidate func(context.Context, *heapPeak) (int64, error)) {
	ctx := context.Background()
	b.ReportAllocs()
	var populate time.Duration
	var peak, base uint64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		start := time.Now()
		p.populate(b, ctx, ns)
		populate += time.Since(start)
		if got := p.dbsize(b, ctx); got != int64(p.n) {
			b.Fatalf("the primaries hold %d keys after writing %d", got, p.n)
		}
		runtime.GC()
		hp := startHeapPeak()
		base = max(base, hp.base)
		b.StartTimer()
		removed, err := invalidate(ctx, hp)
		b.StopTimer()
		peak = max(peak, hp.stop())
		if err != nil {
			b.Fatal(err)
		}
		if removed != int64(p.n) {
			b.Fatalf("removed %d keys, want %d", removed, p.n)
		}
		if left := p.dbsize(b, ctx); left != 0 {
			b.Fatalf("%d keys left on the primaries after removing %d", left, removed)
		}
	}
	b.ReportMetric(float64(p.n)*float64(b.N)/b.Elapsed().Seconds(), "keys/s")
	b.ReportMetric(float64(peak)/1e6, "peak-heap-MB")
	b.ReportMetric(float64(base)/1e6, "base-heap-MB")
	b.ReportMetric(populate.Seconds()/float64(b.N), "populate-s")
}

// populate writes the n keys of ns with pipelined single-key SETs, from
// populateWorkers goroutines taking chunks of populateChunk keys in turn.
func (p *patternBench) populate(b *testing.B, ctx context.Context, ns string) {
	var next atomic.Int64
	errs := make([]error, populateWorkers)
	var wg sync.WaitGroup
	for w := range populateWorkers {
		wg.Go(func() {
			cmds := make(rueidis.Commands, 0, populateChunk)
			for {
				lo := int(next.Add(populateChunk)) - populateChunk
				if lo >= p.n {
					return
				}
				cmds = cmds[:0]
				for i := lo; i < min(lo+populateChunk, p.n); i++ {
					cmds = append(cmds, p.rc.B().Set().Key(patternKey(ns, i)).Value(patternValues[i%len(patternValues)]).Build())
				}
				for _, res := range p.rc.DoMulti(ctx, cmds...) {
					if err := res.Error(); err != nil {
						errs[w] = err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatalf("populate: %v", err)
		}
	}
}

// dbsize is the sum of DBSIZE over the primaries the launcher created, asked
// directly (not through the code under test).
func (p *patternBench) dbsize(b *testing.B, ctx context.Context) int64 {
	var sum int64
	for _, s := range p.cluster.Primaries() {
		v, err := s.Do(ctx, "DBSIZE")
		if err != nil {
			b.Fatalf("DBSIZE on %s: %v", s.Addr(), err)
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			b.Fatalf("DBSIZE on %s: %q", s.Addr(), v)
		}
		sum += n
	}
	return sum
}

// unlinkByHand is pattern invalidation as one would write it on rueidis: on
// each primary in turn, SCAN MATCH pattern COUNT 1000 to the end; each batch
// is unlinked with one pipeline (DoMulti) of single-key UNLINKs through the
// cluster client, which routes each to its slot's primary. afterBatch is
// called after each pipeline.
func unlinkByHand(ctx context.Context, rc rueidis.Client, pattern string, afterBatch func()) (int64, error) {
	var removed int64
	var cmds rueidis.Commands
	for addr, node := range rc.Nodes() {
		role, err := node.Do(ctx, node.B().Role().Build()).ToArray()
		if err != nil {
			return removed, fmt.Errorf("role of %s: %w", addr, err)
		}
		if len(role) == 0 {
			return removed, fmt.Errorf("role of %s: empty reply", addr)
		}
		if r, _ := role[0].ToString(); r != "master" {
			continue
		}
		var cursor uint64
		for {
			e, err := node.Do(ctx, node.B().Scan().Cursor(cursor).Match(pattern).Count(patternScanCount).Build()).AsScanEntry()
			if err != nil {
				return removed, fmt.Errorf("scan %s: %w", addr, err)
			}
			if len(e.Elements) > 0 {
				cmds = cmds[:0]
				for _, k := range e.Elements {
					cmds = append(cmds, rc.B().Unlink().Key(k).Build())
				}
				for _, res := range rc.DoMulti(ctx, cmds...) {
					n, err := res.AsInt64()
					if err != nil {
						return removed, fmt.Errorf("unlink: %w", err)
					}
					removed += n
				}
				afterBatch()
			}
			if cursor = e.Cursor; cursor == 0 {
				break
			}
		}
	}
	return removed, nil
}

// progressCheck follows the progress callbacks of one InvalidatePrefix: the
// totals must never go down, and must end at the count it returns.
type progressCheck struct {
	b      *testing.B
	n      int
	calls  int
	last   invalidation.Progress
	nodes  map[string]bool
	logged int64 // Removed at the last log line
	failed string
}

func (t *progressCheck) observe(pr invalidation.Progress) {
	t.calls++
	if t.nodes == nil {
		t.nodes = make(map[string]bool)
	}
	t.nodes[pr.Node] = true
	// Recorded, not failed at once: the callback runs inside aside's loop.
	if t.failed == "" && (pr.Scanned < t.last.Scanned || pr.Removed < t.last.Removed || pr.Removed > pr.Scanned) {
		t.failed = fmt.Sprintf("progress %d went from %+v to %+v", t.calls, t.last, pr)
	}
	t.last = pr
	if testing.Verbose() && (pr.Removed-t.logged >= int64(t.n/10) || pr.Removed == int64(t.n)) && pr.Removed > t.logged {
		t.logged = pr.Removed
		t.b.Logf("progress %d: node %s, scanned %d, removed %d of %d", t.calls, pr.Node, pr.Scanned, pr.Removed, t.n)
	}
}

// done checks the end of the progress against what InvalidatePrefix returned.
func (t *progressCheck) done(removed int64, primaries int) {
	t.b.Helper()
	switch {
	case t.failed != "":
		t.b.Fatal(t.failed)
	case t.calls == 0:
		t.b.Fatal("no progress reported")
	case t.last.Removed != removed:
		t.b.Fatalf("the last progress reports %d removed, InvalidatePrefix returned %d", t.last.Removed, removed)
	case t.n >= 10*patternScanCount && t.calls < 2:
		t.b.Fatalf("one progress callback for %d keys: the totals were not seen growing", t.n)
	case t.n >= 10*patternScanCount && len(t.nodes) != primaries:
		t.b.Fatalf("progress came from %d nodes, the cluster has %d primaries", len(t.nodes), primaries)
	}
}

// heapPeak is the largest heap (HeapAlloc) seen between startHeapPeak and
// stop: sampled every heapSampleEvery by a goroutine, and wherever
// sampleHere is called (one caller at a time).
type heapPeak struct {
	base   uint64
	peak   atomic.Uint64
	here   []metrics.Sample
	cancel chan struct{}
	done   chan struct{}
}

const heapMetric = "/memory/classes/heap/objects:bytes"

func startHeapPeak() *heapPeak {
	h := &heapPeak{
		here:   []metrics.Sample{{Name: heapMetric}},
		cancel: make(chan struct{}),
		done:   make(chan struct{}),
	}
	h.base = h.read(h.here)
	h.peak.Store(h.base)
	go func() {
		defer close(h.done)
		s := []metrics.Sample{{Name: heapMetric}}
		t := time.NewTicker(heapSampleEvery)
		defer t.Stop()
		for {
			select {
			case <-h.cancel:
				return
			case <-t.C:
				h.record(h.read(s))
			}
		}
	}()
	return h
}

func (h *heapPeak) read(s []metrics.Sample) uint64 {
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func (h *heapPeak) record(v uint64) {
	for {
		old := h.peak.Load()
		if v <= old || h.peak.CompareAndSwap(old, v) {
			return
		}
	}
}

// sampleHere samples the heap in the calling goroutine.
func (h *heapPeak) sampleHere() { h.record(h.read(h.here)) }

// stop ends the sampling, takes a last sample and returns the peak.
func (h *heapPeak) stop() uint64 {
	close(h.cancel)
	<-h.done
	h.sampleHere()
	return h.peak.Load()
}
