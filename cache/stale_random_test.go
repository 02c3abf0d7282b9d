package cache_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/codec"
	"github.com/aside-go/aside/internal/redistest"
	"github.com/aside-go/aside/invalidation"
	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The randomized stale-value tests over every way a process can invalidate
// a key: TestGNoStaleValueUnderRandomLoadWithFoldedKeys with all of them,
// in envelope and plain mode, on a standalone server and on a cluster, and
// once more while Redis refuses writes for a while (OOM).
//
// Besides the audits at the end (G1: Redis holds no value older than the
// source; every cache reads the source once a final Set reached every
// client), each process checks read-your-writes (G3) online: per key, the
// highest version that one of its writers bumped the source to and whose
// invalidation (or Set) returned successfully is a floor that every Get of
// that process begun afterwards, through any of its caches, must reach.

// staleOp is one way of invalidating keys.
type staleOp int

const (
	staleSet          staleOp = iota // Set with the key's tag
	staleInvalidate                  // Cache.Invalidate
	staleDelete                      // Cache.Delete
	stalePatternExact                // InvalidatePattern(Escape(the folded form))
	stalePatternGlob                 // InvalidatePattern of a glob over a few keys
	stalePrefix                      // InvalidatePrefix
	staleTag                         // InvalidateTag of the key's tag
	staleRelated                     // Client.Invalidate(Keys(c, k), Tags(c2, tag of j))
	staleClear                       // Clear of the whole cache
	staleOps
)

func (op staleOp) String() string {
	return [...]string{"Set", "Invalidate", "Delete", "InvalidatePattern(exact)", "InvalidatePattern(glob)",
		"InvalidatePrefix", "InvalidateTag", "Client.Invalidate(Keys, Tags)", "Clear"}[op]
}

// staleGlobs are the globs of stalePatternGlob, on the folded (lower-case)
// part of the keys after the namespace.
var staleGlobs = []string{"key?", "key1[0-3]", "key2?", "key1*", "key[12]3"}

// staleFloor is one process's floor of one key: the highest version a
// writer of the process made the source hold, whose call returned
// successfully, and the call.
type staleFloor struct {
	mu sync.Mutex
	v  int64
	op string
}

func (f *staleFloor) raise(v int64, op string) {
	f.mu.Lock()
	if v > f.v {
		f.v, f.op = v, op
	}
	f.mu.Unlock()
}

func (f *staleFloor) read() (int64, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.v, f.op
}

// staleProc is one process: a client and its caches of the namespace.
type staleProc struct {
	id     int
	client *cache.Client
	pushes *pushWatch
	caches []*cache.Cache[string, int64]
	floors []staleFloor // per key
}

type staleConfig struct {
	plain                         bool
	keys, procs, perProc, writers int
	rounds                        int // per writer
	minReads                      int // per reader, at least; readers go on while writers run
	readers                       int
	// One load in parkOneIn parks after it read the source (see
	// staleRun.load), at most maxParked at a time.
	parkOneIn, maxParked int
	// oomAllowed: writes (and invalidations) that fail because Redis
	// refuses them (OOM) are allowed; any other failure fails the test.
	oomAllowed bool
	// afterWrite, when set, is called by the writer that completed the
	// n-th operation of the run, outside the keys' locks.
	afterWrite func(n int64)
}

// staleRun is one randomized workload.
type staleRun struct {
	cfg   staleConfig
	ns    string
	src   *source
	names []string
	index map[string]int // of names
	procs []*staleProc
	// landed counts, per key, the writers' updates that returned.
	landed []atomic.Int64
	// readBacks counts, per key, the writers' reads that began right
	// after their update of it returned.
	readBacks []atomic.Int64
	// readingBack counts, per key, the writers' reads of it under way.
	readingBack []atomic.Int64
	parked      atomic.Int64 // loads parked now
	evMu        sync.Mutex
	ev          chan struct{} // closed and replaced when landed, readBacks or writing move
	locks       []sync.Mutex

	writes  atomic.Int64
	ops     [staleOps]atomic.Int64
	refused [staleOps]atomic.Int64 // failed with OOM (allowed when oomAllowed)
	// unavailable counts writes that found Redis unavailable (its answer
	// later than the budget), which the writer then retried.
	unavailable atomic.Int64
	reads       atomic.Int64
	writing     atomic.Bool // writers still running
	squeezed    atomic.Bool // Redis refuses writes now (set by the OOM test)
	// readsSqueezed counts reads that began and ended while squeezed.
	readsSqueezed atomic.Int64

	mu          sync.Mutex
	violations  int
	violLines   []string
	getErrors   int
	getErrLines []string
	writeErrors int
	writeLines  []string
}

func staleForms(name string) []string {
	return []string{name, strings.ToUpper(name), "K" + name[1:], "k" + strings.ToUpper(name[1:])}
}

func staleTagOf(name string) string { return "t:" + name }

func staleModeOpt(plain bool) func(*cache.Options[string, int64]) {
	return func(o *cache.Options[string, int64]) { o.Plain = plain }
}

func newStaleRun(t *testing.T, opt rueidis.ClientOption, cfg staleConfig) *staleRun {
	t.Helper()
	r := &staleRun{cfg: cfg, ns: namespace(t), src: newSource(), locks: make([]sync.Mutex, cfg.keys)}
	r.names = make([]string, cfg.keys)
	for i := range r.names {
		r.names[i] = fmt.Sprintf("key%d", i)
		r.src.set(r.names[i], 0)
	}
	r.index = make(map[string]int, cfg.keys)
	for i, name := range r.names {
		r.index[name] = i
	}
	r.landed = make([]atomic.Int64, cfg.keys)
	r.readBacks = make([]atomic.Int64, cfg.keys)
	r.readingBack = make([]atomic.Int64, cfg.keys)
	r.ev = make(chan struct{})
	for i := range cfg.procs {
		c, w := watchedClient(t, opt)
		p := &staleProc{id: i, client: c, pushes: w, floors: make([]staleFloor, cfg.keys)}
		for range cfg.perProc {
			p.caches = append(p.caches, versionCache(t, c, r.ns, r.src, folded(r.src), staleModeOpt(cfg.plain),
				func(o *cache.Options[string, int64]) { o.Loader = r.load }))
		}
		r.procs = append(r.procs, p)
	}
	return r
}

// staleNoPark marks the context of a read whose loads do not park: a
// writer's read-back (the writer holds the keys' locks), a GetMany.
type staleNoPark struct{}

// load is the loader of every cache: the source's row of the folded key.
// One load in parkOneIn, after it read the source, parks until a writer's
// update of its key returned and the writer's read of it right after
// began (or a second update returned, or the writers ended; never while a
// writer's read of it is under way, which may wait for it), then yields a
// little: so that the update lands while the load, which read the source
// before it, is under way, and the read that follows the update meets that
// load. The others yield now and then, as in
// TestGNoStaleValueUnderRandomLoadWithFoldedKeys.
func (r *staleRun) load(ctx context.Context, k string) (int64, error) {
	key := strings.ToLower(k)
	v, err := r.src.load(ctx, key)
	i, ok := r.index[key]
	if ok && ctx.Value(staleNoPark{}) == nil && rand.IntN(r.cfg.parkOneIn) == 0 {
		if r.parked.Add(1) <= int64(r.cfg.maxParked) {
			landed, readBacks := r.landed[i].Load(), r.readBacks[i].Load()
			for {
				ev := r.event()
				if !r.writing.Load() || r.readingBack[i].Load() > 0 || r.readBacks[i].Load() != readBacks || r.landed[i].Load() >= landed+2 {
					break
				}
				<-ev
			}
		}
		r.parked.Add(-1)
		for range 50 {
			runtime.Gosched()
		}
		return v, err
	}
	if rand.IntN(8) == 0 {
		for range 50 {
			runtime.Gosched()
		}
	}
	return v, err
}

// event returns the channel closed at the next move of landed, readBacks
// or writing.
func (r *staleRun) event() <-chan struct{} {
	r.evMu.Lock()
	defer r.evMu.Unlock()
	return r.ev
}

func (r *staleRun) notify() {
	r.evMu.Lock()
	close(r.ev)
	r.ev = make(chan struct{})
	r.evMu.Unlock()
}

func (r *staleRun) pick(s []string) string { return s[rand.IntN(len(s))] }

// lockAll locks the keys, in ascending order (the order every writer
// takes them in), and returns the unlock.
func (r *staleRun) lockAll(keys []int) func() {
	for _, i := range keys {
		r.locks[i].Lock()
	}
	return func() {
		for _, i := range keys {
			r.locks[i].Unlock()
		}
	}
}

// bump moves the source of key i to its next version, under i's lock.
func (r *staleRun) bump(i int) int64 {
	v := r.src.get(r.names[i]) + 1
	r.src.set(r.names[i], v)
	return v
}

// covered returns the keys whose folded name match reports true of.
func (r *staleRun) covered(match func(name string) bool) []int {
	var out []int
	for i, name := range r.names {
		if match(name) {
			out = append(out, i)
		}
	}
	return out
}

func (r *staleRun) writeErr(format string, args ...any) {
	r.mu.Lock()
	r.writeErrors++
	if len(r.writeLines) < 10 {
		r.writeLines = append(r.writeLines, fmt.Sprintf(format, args...))
	}
	r.mu.Unlock()
}

// failed handles an operation that returned err: it is counted, and is a
// failure of the test unless it is an allowed refusal.
func (r *staleRun) failed(p *staleProc, what string, op staleOp, err error) {
	if errors.Is(err, errStaleUntagged) {
		return // counted when the tagging Set failed
	}
	if r.cfg.oomAllowed && strings.Contains(err.Error(), "OOM") {
		r.refused[op].Add(1)
		return
	}
	if errors.Is(err, cache.ErrUnavailable) {
		// Redis did not answer within the time budget (a machine busy
		// with other work): the writer does what the package asks, and
		// the guarantees are checked all the same.
		r.unavailable.Add(1)
		return
	}
	r.writeErr("process %d: %s: %v", p.id, what, err)
}

// done finishes an operation of process p through c that bumped the keys
// to versions: when it succeeded, the floors of p rise to them; when it
// failed, the writer does what the package asks of a writer whose update
// did not reach Redis — Invalidate until it succeeds — and then the
// floors rise.
func (r *staleRun) done(ctx context.Context, p *staleProc, c *cache.Cache[string, int64], op staleOp, keys []int, versions []int64, err error) {
	what := op.String()
	if err != nil {
		r.failed(p, what, op, err)
		forms := make([]string, len(keys))
		for j, i := range keys {
			forms[j] = r.pick(staleForms(r.names[i]))
		}
		for attempt := 0; ; attempt++ {
			err = c.Invalidate(ctx, forms...)
			if err == nil {
				break
			}
			if attempt == 100 {
				r.writeErr("process %d: Invalidate after a failed %s: %d attempts failed, the last with %v", p.id, what, attempt+1, err)
				return
			}
		}
		what = "Invalidate after a failed " + what
	}
	for j, i := range keys {
		p.floors[i].raise(versions[j], what)
		r.landed[i].Add(1)
	}
	r.notify()
	// The writer reads one of the keys back, through any cache of its
	// process, at once: the version it made the source hold, or a later
	// one.
	j := rand.IntN(len(keys))
	r.readBack(ctx, p, keys[j], versions[j], what)
}

// readBack reads key i through a random cache of p right after p's update
// of it to version returned.
func (r *staleRun) readBack(ctx context.Context, p *staleProc, i int, version int64, what string) {
	form := r.pick(staleForms(r.names[i]))
	r.readBacks[i].Add(1)
	r.readingBack[i].Add(1)
	r.notify()
	v, err := p.caches[rand.IntN(len(p.caches))].Get(context.WithValue(ctx, staleNoPark{}, true), form)
	r.readingBack[i].Add(-1)
	r.reads.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.getErrors++
		if len(r.getErrLines) < 10 {
			r.getErrLines = append(r.getErrLines, fmt.Sprintf("process %d: Get(%q) right after its %s: %v", p.id, form, what, err))
		}
		return
	}
	if v < version {
		r.violations++
		if len(r.violLines) < 20 {
			r.violLines = append(r.violLines, fmt.Sprintf("process %d: Get(%q) of %s = %d right after this process's %s of version %d returned",
				p.id, form, r.names[i], v, what, version))
		}
	}
}

// errStaleUntagged stands for the failure of an operation by tag that was
// not attempted: the Set that tags the key failed.
var errStaleUntagged = errors.New("the tagging Set failed")

// tagging Sets key i, at its current version, with its tag through c, so
// that the tag reaches it; on failure it reports false and invalidates the
// key by its name instead (after bumping it): the tag might not reach it.
func (r *staleRun) tagging(ctx context.Context, p *staleProc, c *cache.Cache[string, int64], op staleOp, i int) bool {
	cur := r.src.get(r.names[i])
	if err := c.Set(ctx, r.pick(staleForms(r.names[i])), cur, cache.WithTags(staleTagOf(r.names[i]))); err != nil {
		r.failed(p, "Set (tagging, before "+op.String()+")", op, err)
		v := r.bump(i)
		r.done(ctx, p, c, op, []int{i}, []int64{v}, errStaleUntagged)
		return false
	}
	p.floors[i].raise(cur, "Set (tagging, before "+op.String()+")")
	return true
}

// write runs one random writer operation.
func (r *staleRun) write(ctx context.Context) {
	p := r.procs[rand.IntN(len(r.procs))]
	c := p.caches[rand.IntN(len(p.caches))]
	op := staleOp(rand.IntN(int(staleOps)))
	i := rand.IntN(len(r.names))
	name := r.names[i]
	form := r.pick(staleForms(name))
	r.ops[op].Add(1)
	var keys []int
	switch op {
	case stalePatternGlob:
		glob := staleGlobs[rand.IntN(len(staleGlobs))]
		keys = r.covered(func(n string) bool { return invalidation.Match(glob, n) })
		defer r.lockAll(keys)()
		versions := make([]int64, len(keys))
		for j, k := range keys {
			versions[j] = r.bump(k)
		}
		_, err := c.InvalidatePattern(ctx, glob)
		r.done(ctx, p, c, op, keys, versions, err)
		return
	case stalePrefix:
		// A prefix of the folded name: "key1" covers key1 and key10 to
		// key19, "key13" only key13.
		prefix := name[:4+rand.IntN(len(name)-3)]
		keys = r.covered(func(n string) bool { return strings.HasPrefix(n, prefix) })
		defer r.lockAll(keys)()
		versions := make([]int64, len(keys))
		for j, k := range keys {
			versions[j] = r.bump(k)
		}
		_, err := c.InvalidatePrefix(ctx, prefix)
		r.done(ctx, p, c, op, keys, versions, err)
		return
	case staleClear:
		keys = r.covered(func(string) bool { return true })
		defer r.lockAll(keys)()
		versions := make([]int64, len(keys))
		for j, k := range keys {
			versions[j] = r.bump(k)
		}
		_, err := c.Clear(ctx)
		r.done(ctx, p, c, op, keys, versions, err)
		return
	case staleRelated:
		j := rand.IntN(len(r.names) - 1)
		if j >= i {
			j++
		}
		keys = []int{min(i, j), max(i, j)}
		defer r.lockAll(keys)()
		c2 := p.caches[rand.IntN(len(p.caches))]
		if !r.tagging(ctx, p, c2, op, j) {
			vi := r.bump(i)
			r.done(ctx, p, c, op, []int{i}, []int64{vi}, errStaleUntagged)
			return
		}
		vi, vj := r.bump(i), r.bump(j)
		_, err := p.client.Invalidate(ctx, cache.Keys(c, form), cache.Tags(c2, staleTagOf(r.names[j])))
		r.done(ctx, p, c, op, []int{i, j}, []int64{vi, vj}, err)
		return
	}
	defer r.lockAll([]int{i})()
	var err error
	switch op {
	case staleSet:
		v := r.bump(i)
		err = c.Set(ctx, form, v, cache.WithTags(staleTagOf(name)))
		r.done(ctx, p, c, op, []int{i}, []int64{v}, err)
		return
	case staleTag:
		if !r.tagging(ctx, p, c, op, i) {
			return
		}
		v := r.bump(i)
		_, err = c.InvalidateTag(ctx, staleTagOf(name))
		r.done(ctx, p, c, op, []int{i}, []int64{v}, err)
		return
	}
	v := r.bump(i)
	switch op {
	case staleInvalidate:
		err = c.Invalidate(ctx, form)
	case staleDelete:
		_, err = c.Delete(ctx, form)
	case stalePatternExact:
		// The pattern is matched on the Redis key: the folded form.
		_, err = c.InvalidatePattern(ctx, invalidation.Escape(strings.ToLower(form)))
	}
	r.done(ctx, p, c, op, []int{i}, []int64{v}, err)
}

// read runs one random read (a Get, or a GetMany of two keys) through a
// random cache of a random process, and checks G3 against that process's
// floors, read before the call began.
func (r *staleRun) read(ctx context.Context) {
	p := r.procs[rand.IntN(len(r.procs))]
	c := p.caches[rand.IntN(len(p.caches))]
	keys := []int{rand.IntN(len(r.names))}
	if rand.IntN(5) == 0 {
		j := rand.IntN(len(r.names) - 1)
		if j >= keys[0] {
			j++
		}
		keys = append(keys, j)
	}
	forms := make([]string, len(keys))
	floors := make([]int64, len(keys))
	floorOps := make([]string, len(keys))
	for j, i := range keys {
		forms[j] = r.pick(staleForms(r.names[i]))
		floors[j], floorOps[j] = p.floors[i].read()
	}
	squeezed := r.squeezed.Load()
	got := make([]int64, len(keys))
	var err error
	call := "Get"
	if len(keys) == 1 {
		got[0], err = c.Get(ctx, forms[0])
	} else {
		call = "GetMany"
		var m map[string]int64
		// Its loads do not park: a batch holds the leases of all its keys
		// until every load of it ended, and a writer reading one of them
		// back would wait for the load of another.
		m, err = c.GetMany(context.WithValue(ctx, staleNoPark{}, true), forms)
		if err == nil {
			for j, f := range forms {
				v, ok := m[f]
				if !ok {
					err = fmt.Errorf("GetMany(%q) returned no value for %q", forms, f)
					break
				}
				got[j] = v
			}
		}
	}
	r.reads.Add(1)
	if squeezed && r.squeezed.Load() {
		r.readsSqueezed.Add(1)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.getErrors++
		if len(r.getErrLines) < 10 {
			r.getErrLines = append(r.getErrLines, fmt.Sprintf("process %d: %s(%q) (Redis refusing writes: %v): %v", p.id, call, forms, squeezed, err))
		}
		return
	}
	for j, i := range keys {
		if got[j] < floors[j] {
			r.violations++
			if len(r.violLines) < 20 {
				r.violLines = append(r.violLines, fmt.Sprintf("process %d: %s(%q) of %s = %d, below the floor %d that this process's %s made before the read began",
					p.id, call, forms[j], r.names[i], got[j], floors[j], floorOps[j]))
			}
		}
	}
}

// run runs the writers and readers and reports what they saw; it fails
// the test on any violation of G3, Get error or disallowed write error.
func (r *staleRun) run(t *testing.T, ctx context.Context) {
	t.Helper()
	r.writing.Store(true)
	var writers, readers sync.WaitGroup
	for range r.cfg.writers {
		writers.Go(func() {
			for range r.cfg.rounds {
				r.write(ctx)
				n := r.writes.Add(1)
				if r.cfg.afterWrite != nil {
					r.cfg.afterWrite(n)
				}
			}
		})
	}
	for range r.cfg.readers {
		readers.Go(func() {
			for n := 0; n < r.cfg.minReads || r.writing.Load(); n++ {
				r.read(ctx)
			}
		})
	}
	writers.Wait()
	r.writing.Store(false)
	r.notify()
	readers.Wait()

	var ops, refused []string
	for op := range staleOps {
		ops = append(ops, fmt.Sprintf("%v×%d", op, r.ops[op].Load()))
		if n := r.refused[op].Load(); n > 0 {
			refused = append(refused, fmt.Sprintf("%v×%d", op, n))
		}
	}
	t.Logf("%d writes (%s), %d reads", r.writes.Load(), strings.Join(ops, ", "), r.reads.Load())
	if len(refused) > 0 {
		t.Logf("refused by Redis (OOM): %s", strings.Join(refused, ", "))
	}
	if n := r.unavailable.Load(); n > 0 {
		t.Logf("%d writes found Redis unavailable and were retried", n)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.violLines {
		t.Log(l)
	}
	for _, l := range r.getErrLines {
		t.Log(l)
	}
	for _, l := range r.writeLines {
		t.Log(l)
	}
	assert.Zero(t, r.violations, "reads below their process's own writes (G3)")
	assert.Zero(t, r.getErrors, "Gets that failed")
	assert.Zero(t, r.writeErrors, "writes and invalidations that failed (other than refusals allowed)")
}

// audit checks, once the workload ended, that Redis holds no value older
// than the source (G1), then that every cache of every process reads the
// source under every form once a final Set of each key reached every
// client.
func (r *staleRun) audit(t *testing.T, ctx context.Context, opt rueidis.ClientOption) {
	t.Helper()
	// The loads' write-backs run on goroutines of their own: let them end.
	for _, p := range r.procs {
		for _, c := range p.caches {
			require.NoError(t, cache.AwaitWrites(ctx, c, r.names...))
		}
	}
	auditor, err := cache.New(connectWith(t, opt), cache.Options[string, int64]{Namespace: r.ns, Codec: codec.MsgPack[int64](), Plain: r.cfg.plain})
	require.NoError(t, err)
	staleInRedis := 0
	for _, name := range r.names {
		v, err := auditor.Get(ctx, name)
		if errors.Is(err, cache.ErrNotFound) {
			continue
		}
		require.NoError(t, err, "audit of %s", name)
		if want := r.src.get(name); v != want {
			staleInRedis++
			t.Logf("Redis holds %d for %s, the source %d", v, name, want)
		}
	}
	assert.Zero(t, staleInRedis, "keys whose value in Redis is older than the source (G1)")

	stale := 0
	all := r.procs[0].caches
	for _, p := range r.procs[1:] {
		all = append(all, p.caches...)
	}
	for _, name := range r.names {
		key := all[0].Key(name)
		marks := make([]pushMark, len(r.procs))
		for i, p := range r.procs {
			// Redis tracks the key for this client now (OPTOUT mode),
			// so the final Set pushes to it; the GET's reply comes after
			// any push sent before.
			rr := p.client.Rueidis()
			if err := rr.Do(ctx, rr.B().Get().Key(key).Build()).Error(); !rueidis.IsRedisNil(err) {
				require.NoError(t, err)
			}
			marks[i] = p.pushes.mark(key)
		}
		want := r.src.get(name)
		require.NoError(t, all[rand.IntN(len(all))].Set(ctx, r.pick(staleForms(name)), want))
		for i, p := range r.procs {
			p.pushes.awaitKey(t, marks[i], fmt.Sprintf("process %d hears of the final Set of %s", i, key))
		}
		for _, p := range r.procs {
			for ci, c := range p.caches {
				for _, form := range staleForms(name) {
					v, err := c.Get(ctx, form)
					require.NoError(t, err)
					if v != want {
						stale++
						if stale <= 10 {
							t.Logf("process %d cache %d Get(%q) = %d after the final Set, source %d", p.id, ci, form, v, want)
						}
					}
				}
			}
		}
	}
	assert.Zero(t, stale, "stale reads after the final Set of every key reached every client")
}

var staleModes = []struct {
	name  string
	plain bool
}{{"envelope", false}, {"plain", true}}

// TestGNoStaleValueUnderRandomLoadEveryInvalidation: two processes of two
// caches each over folded keys; writers bump a key's source (or the
// sources of every key a glob or prefix covers), then invalidate through a
// random cache in one of every way the package has (Set, Invalidate,
// Delete, InvalidatePattern of one key and of a glob, InvalidatePrefix,
// InvalidateTag, Client.Invalidate of keys and tags) and read one of the
// keys back at once, while readers check read-your-writes (G3) online;
// some loads park until an update of their key returned and the writer's
// read began (staleRun.load), so that these reads meet loads that read the
// source before the update; then G1 and the final-Set audit.
func TestGNoStaleValueUnderRandomLoadEveryInvalidation(t *testing.T) {
	t.Parallel()
	for _, m := range staleModes {
		for _, topo := range topologies() {
			t.Run(m.name+"/"+topo.name, func(t *testing.T) {
				t.Parallel()
				ctx := testContext(t)
				opt := topo.opt(t)
				r := newStaleRun(t, opt, staleConfig{
					plain: m.plain, keys: 24, procs: 2, perProc: 2,
					writers: 3, rounds: 200, readers: 6, minReads: 200, parkOneIn: 4, maxParked: 3,
				})
				r.run(t, ctx)
				if t.Failed() {
					return
				}
				r.audit(t, ctx, opt)
			})
		}
	}
}

// TestGNoStaleValueWhileRedisRefusesWrites runs the workload of
// TestGNoStaleValueUnderRandomLoadEveryInvalidation on a private server
// with maxmemory-policy noeviction, whose maxmemory drops below its used
// memory for the middle third of the writes: leases, write-backs and Sets
// are refused (OOM) while deletions go through. Gets (FailOpen) must not
// fail, read-your-writes must hold for every write that returned
// successfully (a refused Set is followed by an Invalidate, as the package
// asks of writers), and the audits must pass once Redis accepts writes
// again.
func TestGNoStaleValueWhileRedisRefusesWrites(t *testing.T) {
	t.Parallel()
	for _, m := range staleModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			srv := redistest.Start(t, redistest.Config{Args: []string{"--maxmemory-policy", "noeviction"}})
			t.Cleanup(func() { _, _ = srv.Do(context.Background(), "CONFIG", "SET", "maxmemory", "0") })
			const writers, rounds = 3, 120
			squeezeAt, restoreAt := int64(writers*rounds/3), int64(2*writers*rounds/3)
			var r *staleRun
			var squeezeErr error
			var squeezeMu sync.Mutex
			cfg := staleConfig{
				plain: m.plain, keys: 24, procs: 2, perProc: 2,
				writers: writers, rounds: rounds, readers: 6, minReads: 200, parkOneIn: 4, maxParked: 3,
				oomAllowed: true,
				afterWrite: func(n int64) {
					switch n {
					case squeezeAt:
						limit, err := staleSqueeze(ctx, srv)
						squeezeMu.Lock()
						squeezeErr = errors.Join(squeezeErr, err)
						squeezeMu.Unlock()
						if err == nil {
							r.squeezed.Store(true)
							t.Logf("maxmemory %d: Redis refuses writes", limit)
						}
					case restoreAt:
						// Readers read while Redis refuses writes before
						// it accepts them again: the state ends the wait,
						// patience only bounds it.
						deadline := time.Now().Add(patience)
						for r.squeezed.Load() && r.readsSqueezed.Load() < 100 && time.Now().Before(deadline) {
							runtime.Gosched()
						}
						r.squeezed.Store(false)
						_, err := srv.Do(ctx, "CONFIG", "SET", "maxmemory", "0")
						squeezeMu.Lock()
						squeezeErr = errors.Join(squeezeErr, err)
						squeezeMu.Unlock()
					}
				},
			}
			r = newStaleRun(t, srv.ClientOption(), cfg)
			r.run(t, ctx)
			squeezeMu.Lock()
			require.NoError(t, squeezeErr, "squeezing Redis")
			squeezeMu.Unlock()
			t.Logf("%d reads while Redis refused writes", r.readsSqueezed.Load())
			assert.GreaterOrEqual(t, r.readsSqueezed.Load(), int64(100), "reads while Redis refused writes")
			if t.Failed() {
				return
			}
			r.audit(t, ctx, srv.ClientOption())
		})
	}
}

// staleSqueeze sets srv's maxmemory just below its used memory, lower
// until a write is refused, and returns the limit.
func staleSqueeze(ctx context.Context, srv *redistest.Server) (int64, error) {
	info, err := srv.Do(ctx, "INFO", "memory")
	if err != nil {
		return 0, err
	}
	var used int64
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			used, err = strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("INFO memory: %q: %w", line, err)
			}
		}
	}
	if used == 0 {
		return 0, fmt.Errorf("INFO memory without used_memory: %q", info)
	}
	for margin := int64(16 << 10); ; margin *= 2 {
		limit := max(used-margin, 1)
		if _, err := srv.Do(ctx, "CONFIG", "SET", "maxmemory", strconv.FormatInt(limit, 10)); err != nil {
			return 0, err
		}
		_, err := srv.Do(ctx, "SET", "stale-squeeze-probe", "x")
		if err != nil && strings.Contains(err.Error(), "OOM") {
			return limit, nil
		}
		if err != nil {
			return 0, err
		}
		if limit == 1 {
			return 0, errors.New("Redis accepts writes with maxmemory 1")
		}
	}
}
