package cache_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/codec"
	"github.com/aside-go/aside/internal/envelope"
	"github.com/aside-go/aside/internal/redistest"
)

// The workload of the topology tests (sentinel_test.go, reshard_test.go):
// two processes (two Clients, one cache each) read and update versioned
// keys while the topology under them changes — a Sentinel failover, slots
// moving between cluster primaries — and the test checks what a process
// may see then, and that nothing is stale once the change settled.
//
// A writer bumps a key's version in the source (under the key's lock),
// then writes it through a random process: a Set of the new version, or an
// Invalidate (the source of truth changed; the next read loads). A write
// that fails does what the package asks of a writer whose update may not
// have reached Redis: Invalidate until it succeeds. Once it returned, the
// version is the writing process's floor for the key (read-your-writes,
// G3): every read of that process begun afterwards must return it or a
// later one. Readers Get one key or GetMany three, and check each value
// against the process's floor read before the call. A read below its floor
// is stale.
//
// Every error is sorted into a class; Gets may fail only with
// cache.ErrUnavailable or a context error (FailOpen answers from the
// loader when Redis is down, so even those should be rare), writes only
// with cache.ErrUnavailable (then retried). Anything else fails the test.

// topoPhase is the part of a run an operation began in.
type topoPhase int32

const (
	topoBefore topoPhase = iota // before the topology changes
	topoDuring                  // from the change's start until it settled
	topoAfter                   // after it settled
	topoPhases
)

func (p topoPhase) String() string { return [...]string{"before", "during", "after"}[p] }

// topoStats counts what operations begun in one phase saw.
type topoStats struct {
	reads, writes                     atomic.Int64
	getUnavailable, getContext        atomic.Int64
	writeUnavailable, writeContext    atomic.Int64
	stale, otherErrors, retriedWrites atomic.Int64
}

type topoProc struct {
	id     int
	client *cache.Client
	pushes *pushWatch
	c      *cache.Cache[string, int64]
	floors []staleFloor
}

type topoRun struct {
	t     *testing.T
	ns    string
	plain bool
	src   *source
	names []string
	procs []*topoProc
	locks []sync.Mutex
	phase atomic.Int32
	stats [topoPhases]topoStats

	ops    atomic.Int64 // operations ended, all phases
	evMu   sync.Mutex
	ev     chan struct{} // closed and replaced when ops moves
	writ   chan struct{} // closed and replaced when a write ends
	writes atomic.Int64  // writes ended, all phases

	mu   sync.Mutex
	bad  []string             // what failed the test, the first few
	seen [topoPhases][]string // the first few allowed errors of each phase, for the log
}

// newTopoRun connects procs clients on opt, each with one cache of a new
// namespace over names (every name has version 1 in the source).
func newTopoRun(t *testing.T, opt rueidis.ClientOption, names []string, procs int, plain bool) *topoRun {
	t.Helper()
	r := &topoRun{t: t, ns: namespace(t), plain: plain, src: newSource(), names: names,
		locks: make([]sync.Mutex, len(names)), ev: make(chan struct{}), writ: make(chan struct{})}
	for _, n := range names {
		r.src.set(n, 1)
	}
	for i := range procs {
		client, w := watchedClient(t, opt)
		p := &topoProc{id: i, client: client, pushes: w, floors: make([]staleFloor, len(names)),
			c: versionCache(t, client, r.ns, r.src, staleModeOpt(plain))}
		r.procs = append(r.procs, p)
	}
	return r
}

func (r *topoRun) now() topoPhase { return topoPhase(r.phase.Load()) }

func (r *topoRun) setPhase(p topoPhase) { r.phase.Store(int32(p)) }

// done counts an ended operation and wakes awaitOps.
func (r *topoRun) done() {
	r.ops.Add(1)
	r.evMu.Lock()
	close(r.ev)
	r.ev = make(chan struct{})
	r.evMu.Unlock()
}

// wrote counts an ended write and wakes the readers that wait for one.
func (r *topoRun) wrote() {
	r.writes.Add(1)
	r.evMu.Lock()
	close(r.writ)
	r.writ = make(chan struct{})
	r.evMu.Unlock()
}

// readsPerWrite is how many reads a reader makes per write of the
// workload at most: readers that spun freely (FailOpen answers from the
// loader at once while the primary is dead) would starve the Sentinels of
// CPU on a busy machine, which then enter TILT mode and fail over late.
const readsPerWrite = 8

// pace makes a reader that read readsPerWrite times since the write count
// it last saw wait for the next write (or stop, or ctx's end).
func (r *topoRun) pace(ctx context.Context, seen *int64, reads *int, stopped *atomic.Bool) {
	if *reads < readsPerWrite {
		return
	}
	for !stopped.Load() && ctx.Err() == nil {
		r.evMu.Lock()
		ch := r.writ
		r.evMu.Unlock()
		if n := r.writes.Load(); n != *seen {
			*seen, *reads = n, 0
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}
}

// awaitOps waits until n more operations of the workload ended.
func (r *topoRun) awaitOps(ctx context.Context, n int64) error {
	target := r.ops.Load() + n
	for {
		r.evMu.Lock()
		ev := r.ev
		r.evMu.Unlock()
		if r.ops.Load() >= target {
			return nil
		}
		select {
		case <-ev:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (r *topoRun) fail(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bad) < 20 {
		r.bad = append(r.bad, fmt.Sprintf(format, args...))
	}
}

func (r *topoRun) note(format string, args ...any) {
	ph := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.seen[ph]) < 6 {
		r.seen[ph] = append(r.seen[ph], fmt.Sprintf(format, args...))
	}
}

// getFailed sorts the error of a read, counted in the phase it ended in.
func (r *topoRun) getFailed(what string, err error) {
	ph := r.now()
	st := &r.stats[ph]
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		st.getContext.Add(1)
	case errors.Is(err, cache.ErrUnavailable):
		st.getUnavailable.Add(1)
	default:
		st.otherErrors.Add(1)
		r.fail("%s (%v): error outside the documented classes: %v", what, ph, err)
		return
	}
	r.note("%s (%v): %v", what, ph, err)
}

// writeFailed sorts the error of a write, counted in the phase it ended in.
func (r *topoRun) writeFailed(what string, err error) {
	ph := r.now()
	st := &r.stats[ph]
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		st.writeContext.Add(1)
	case errors.Is(err, cache.ErrUnavailable):
		st.writeUnavailable.Add(1)
	default:
		st.otherErrors.Add(1)
		r.fail("%s (%v): error outside the documented classes: %v", what, ph, err)
		return
	}
	r.note("%s (%v): %v", what, ph, err)
}

// write bumps a random key and writes it through a random process.
func (r *topoRun) write(ctx context.Context) {
	defer r.done()
	defer r.wrote()
	ph := r.now()
	r.stats[ph].writes.Add(1)
	p := r.procs[rand.IntN(len(r.procs))]
	i := rand.IntN(len(r.names))
	name := r.names[i]
	r.locks[i].Lock()
	defer r.locks[i].Unlock()
	v := r.src.get(name) + 1
	r.src.set(name, v)
	var err error
	what := "Set"
	if rand.IntN(2) == 0 {
		err = p.c.Set(ctx, name, v)
	} else {
		what = "Invalidate"
		err = p.c.Invalidate(ctx, name)
	}
	if err != nil {
		r.writeFailed(fmt.Sprintf("process %d: %s(%q)", p.id, what, name), err)
		r.stats[r.now()].retriedWrites.Add(1)
		if !r.invalidate(ctx, p, name) {
			return
		}
		what = "Invalidate after a failed " + what
	}
	p.floors[i].raise(v, what)
}

// invalidate invalidates names through p until it succeeds or ctx ends.
// Between attempts it backs off a little: Redis is unreachable then (a
// dead primary before the failover), and an Invalidate fails at once.
func (r *topoRun) invalidate(ctx context.Context, p *topoProc, names ...string) bool {
	for attempt := 0; ; attempt++ {
		err := p.c.Invalidate(ctx, names...)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			r.fail("process %d: Invalidate(%q) never succeeded: %v", p.id, names, err)
			return false
		}
		r.writeFailed(fmt.Sprintf("process %d: Invalidate(%q), attempt %d", p.id, names, attempt+1), err)
		t := time.NewTimer(time.Duration(min(attempt+1, 20)) * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

// set Sets name to v through p until it succeeds, Redis unavailable
// (ErrUnavailable: the breaker may still be open after the change) or ctx
// ends, backing off like invalidate.
func (r *topoRun) set(ctx context.Context, p *topoProc, name string, v int64) error {
	for attempt := 0; ; attempt++ {
		err := p.c.Set(ctx, name, v)
		if err == nil || !errors.Is(err, cache.ErrUnavailable) || ctx.Err() != nil {
			return err
		}
		r.writeFailed(fmt.Sprintf("process %d: Set(%q) of the audit, attempt %d", p.id, name, attempt+1), err)
		t := time.NewTimer(time.Duration(min(attempt+1, 20)) * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

// read Gets one key or GetMany three through a random process and checks
// them against the process's floors.
func (r *topoRun) read(ctx context.Context) {
	defer r.done()
	ph := r.now()
	st := &r.stats[ph]
	st.reads.Add(1)
	p := r.procs[rand.IntN(len(r.procs))]
	n := 1
	if rand.IntN(4) == 0 {
		n = 3
	}
	idx := rand.Perm(len(r.names))[:n]
	names := make([]string, n)
	floors := make([]int64, n)
	ops := make([]string, n)
	for j, i := range idx {
		names[j] = r.names[i]
		floors[j], ops[j] = p.floors[i].read()
	}
	got := make([]int64, n)
	call := "Get"
	if n == 1 {
		v, err := p.c.Get(ctx, names[0])
		if err != nil {
			r.getFailed(fmt.Sprintf("process %d: Get(%q)", p.id, names[0]), err)
			return
		}
		got[0] = v
	} else {
		call = "GetMany"
		m, err := p.c.GetMany(ctx, names)
		if err != nil {
			r.getFailed(fmt.Sprintf("process %d: GetMany(%q)", p.id, names), err)
			return
		}
		for j, name := range names {
			v, ok := m[name]
			if !ok {
				r.fail("process %d: GetMany(%q) (%v) returned no value for %q and no error", p.id, names, ph, name)
				return
			}
			got[j] = v
		}
	}
	for j := range names {
		if got[j] < floors[j] {
			st.stale.Add(1)
			line := fmt.Sprintf("process %d: %s of %s (%v) = %d, below the floor %d of its own %s", p.id, call, names[j], ph, got[j], floors[j], ops[j])
			if ph == topoAfter {
				r.fail("%s", line)
			} else {
				r.note("%s", line)
			}
		}
	}
}

// run runs writers and readers until stop reports true (asked after every
// operation of each writer).
func (r *topoRun) run(ctx context.Context, writers, readers int, stop func() bool) {
	var wg sync.WaitGroup
	var stopped atomic.Bool
	for range writers {
		wg.Go(func() {
			for !stopped.Load() && ctx.Err() == nil {
				r.write(ctx)
				if stop() {
					stopped.Store(true)
				}
			}
		})
	}
	for range readers {
		wg.Go(func() {
			seen, reads := r.writes.Load(), 0
			for !stopped.Load() && ctx.Err() == nil {
				r.read(ctx)
				reads++
				if stop() {
					stopped.Store(true)
				}
				r.pace(ctx, &seen, &reads, &stopped)
			}
		})
	}
	wg.Wait()
}

// runWrites runs the workload until its writers made n writes.
func (r *topoRun) runWrites(ctx context.Context, writers, readers int, n int64) {
	ph := &r.stats[r.now()]
	start := ph.writes.Load()
	r.run(ctx, writers, readers, func() bool { return ph.writes.Load()-start >= n })
}

// auditor is a cache of the run's namespace on a client of its own, with
// no loader: it reads what Redis holds.
func (r *topoRun) auditor(opt rueidis.ClientOption) *cache.Cache[string, int64] {
	a, err := cache.New(connectWith(r.t, opt), cache.Options[string, int64]{Namespace: r.ns, Codec: codec.MsgPack[int64](), Plain: r.plain})
	require.NoError(r.t, err)
	return a
}

// awaitWrites waits for the loads' writes of every process to end.
func (r *topoRun) awaitWrites(ctx context.Context) {
	for _, p := range r.procs {
		require.NoError(r.t, p.c.AwaitWrites(ctx, r.names...))
	}
}

// settle runs once the workload stopped and the topology settled. It
// counts the keys whose value in Redis is not the source's (lostOK: writes
// the change lost, which Redis may do — a failover's asynchronous
// replication — and the test then repairs as an application would, every
// process invalidating them; otherwise a failure), then checks that every
// process reads every key at its source version. It returns how many keys
// Redis held stale.
func (r *topoRun) settle(ctx context.Context, opt rueidis.ClientOption, lostOK bool) int {
	t := r.t
	r.awaitWrites(ctx)
	a := r.auditor(opt)
	var lost []string
	for _, name := range r.names {
		v, err := a.Get(ctx, name)
		if errors.Is(err, cache.ErrNotFound) {
			continue
		}
		require.NoError(t, err, "audit of %s", name)
		if want := r.src.get(name); v != want {
			lost = append(lost, name)
			t.Logf("after the change settled, Redis holds %d for %s, the source %d", v, name, want)
		}
	}
	if len(lost) > 0 {
		if !lostOK {
			t.Errorf("%d keys hold a stale value in Redis after the change settled (G1)", len(lost))
		}
		for _, p := range r.procs {
			require.True(t, r.invalidate(ctx, p, lost...))
		}
	}
	stale := 0
	for _, p := range r.procs {
		for _, name := range r.names {
			v, err := p.c.Get(ctx, name)
			require.NoError(t, err, "process %d: Get(%q) once settled", p.id, name)
			if want := r.src.get(name); v != want {
				stale++
				t.Logf("process %d: Get(%q) = %d once settled, the source %d", p.id, name, v, want)
			}
		}
	}
	assert.Zero(t, stale, "reads once the change settled, with no write since, that do not return the source's version")
	return len(lost)
}

// audit runs once the workload ended for good: Redis holds nothing older
// than the source (G1), and a final Set of each key, heard by every
// process, is what every process reads.
func (r *topoRun) audit(ctx context.Context, opt rueidis.ClientOption) {
	t := r.t
	r.awaitWrites(ctx)
	a := r.auditor(opt)
	staleInRedis := 0
	for _, name := range r.names {
		v, err := a.Get(ctx, name)
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
	for _, name := range r.names {
		key := r.procs[0].c.Key(name)
		marks := make([]pushMark, len(r.procs))
		for i, p := range r.procs {
			// Track the key for this client now (OPTOUT), so that the
			// final Set pushes to it.
			rr := p.client.Rueidis()
			if err := rr.Do(ctx, rr.B().Get().Key(key).Build()).Error(); !rueidis.IsRedisNil(err) {
				require.NoError(t, err)
			}
			marks[i] = p.pushes.mark(key)
		}
		want := r.src.get(name) + 1
		r.src.set(name, want)
		require.NoError(t, r.set(ctx, r.procs[rand.IntN(len(r.procs))], name, want))
		for i, p := range r.procs {
			p.pushes.awaitKey(t, marks[i], fmt.Sprintf("process %d hears of the final Set of %s", i, key))
		}
		for _, p := range r.procs {
			v, err := p.c.Get(ctx, name)
			require.NoError(t, err)
			if v != want {
				stale++
				t.Logf("process %d: Get(%q) = %d after the final Set of %d", p.id, name, v, want)
			}
		}
	}
	assert.Zero(t, stale, "stale reads after the final Set of every key reached every process")
}

// report logs the statistics of every phase and the first errors seen, and
// fails the test on anything in r.bad.
func (r *topoRun) report() {
	t := r.t
	t.Log("reads and writes by the phase they began in (stale reads too), errors by the phase they happened in:")
	for ph := range topoPhases {
		st := &r.stats[ph]
		t.Logf("%-6v %5d reads (%d stale; errors: %d ErrUnavailable, %d context), %5d writes (%d failed and retried; errors: %d ErrUnavailable, %d context), %d errors of other classes",
			ph, st.reads.Load(), st.stale.Load(), st.getUnavailable.Load(), st.getContext.Load(),
			st.writes.Load(), st.retriedWrites.Load(), st.writeUnavailable.Load(), st.writeContext.Load(), st.otherErrors.Load())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for ph, lines := range r.seen {
		for _, l := range lines {
			t.Logf("seen (%v): %s", topoPhase(ph), l)
		}
	}
	for _, l := range r.bad {
		t.Error(l)
	}
	assert.Zero(t, r.stats[topoAfter].stale.Load(), "stale reads after the change settled")
}

// leasesLeft scans every given server for keys of the run's namespace that
// hold a lease: in envelope mode a value key holding a lease entry, in
// plain mode a "<ns>#lease{...}" key.
func (r *topoRun) leasesLeft(ctx context.Context, servers []*redistest.Server) []string {
	t := r.t
	var left []string
	for _, s := range servers {
		cursor := "0"
		for {
			out, err := s.Do(ctx, "SCAN", cursor, "MATCH", r.ns+"*", "COUNT", "1000")
			require.NoError(t, err)
			lines := strings.Split(out, "\n")
			cursor = lines[0]
			for _, key := range lines[1:] {
				if key == "" {
					continue
				}
				if strings.HasPrefix(key, r.ns+"#lease{") {
					left = append(left, s.Addr()+" "+key)
					continue
				}
				raw, err := s.Do(ctx, "GET", key)
				if err != nil {
					continue // another type, or moved meanwhile
				}
				if envelope.IsLease([]byte(raw)) {
					left = append(left, s.Addr()+" "+key+" (a lease in the key)")
				}
			}
			if cursor == "0" {
				break
			}
		}
	}
	slices.Sort(left)
	return left
}
