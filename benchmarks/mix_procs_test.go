//go:build linux

package benchmarks

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// mixProcs are the numbers of processes of BenchmarkMixProcs.
var mixProcs = []int{1, 4}

// workerEnv names the environment variable that makes the benchmark binary
// a worker process of BenchmarkMixProcs; its value is a workerSpec in JSON.
const workerEnv = "ASIDE_BENCH_MIX_WORKER"

// workerSpec is the share of the mix one worker process runs.
type workerSpec struct {
	Addr   string // the parent's redis-server
	Lib    string // the contender's name
	NS     string // the namespace shared by every worker of the run
	Source string // the file of the shared Source
	Ops    int64  // operations of this worker
	// Goroutines of this worker, numbered from FirstGoroutine: together
	// the workers run the goroutines, and so the operations, of one
	// process running them all.
	Goroutines     int
	FirstGoroutine uint64
}

// workerResult is what a worker measured: its reads, loader calls, stale
// reads and the oldest of them, and what it allocated while it ran.
type workerResult struct {
	Reads, Loads, Stale int64
	MaxAge              time.Duration
	Allocs, Bytes       uint64
}

// workerAddrFromEnv reports whether this process is a worker, and the
// address of its parent's redis-server.
func workerAddrFromEnv() (string, bool) {
	v, ok := os.LookupEnv(workerEnv)
	if !ok {
		return "", false
	}
	var s workerSpec
	_ = json.Unmarshal([]byte(v), &s) // TestMixWorker reports the error
	return s.Addr, true
}

// BenchmarkMixProcs is scenario 8: the mix of BenchmarkMix (cold start, the
// same goroutines, ids, operations and loader) run by N separate processes
// sharing the redis-server, each holding one instance of the contender, as N
// processes of one service would. The benchmark binary runs itself N times
// as TestMixWorker; the records, their versions and the completed updates are
// in a file every process maps (see CreateSharedSource), so that every read is
// judged against the one source of truth. It reports the throughput of all
// processes together (ops/s), hit-%, stale-reads and max-stale-ms as
// BenchmarkMix does, the loader calls of all processes (loads), and the
// workers' allocations as B/op and allocs/op.
func BenchmarkMixProcs(b *testing.B) {
	for _, n := range mixProcs {
		b.Run(fmt.Sprintf("procs=%d", n), func(b *testing.B) {
			run(b, mixContenders, func(b *testing.B, c contender) { benchMixProcs(b, c, n) })
		})
	}
}

func benchMixProcs(b *testing.B, c contender, procs int) {
	if fixedCountProbe(b) {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "source")
	src, err := CreateSharedSource(path, mixRecordCount(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = src.Close() })

	ns := namespace()
	goroutines := mixParallelism * runtime.GOMAXPROCS(0)
	workers := make([]*worker, procs)
	var first uint64 = 1
	for i := range workers {
		spec := workerSpec{
			Addr:           redisAddr(),
			Lib:            c.name,
			NS:             ns,
			Source:         path,
			Ops:            share(int64(b.N), procs, i),
			Goroutines:     int(share(int64(goroutines), procs, i)),
			FirstGoroutine: first,
		}
		first += uint64(spec.Goroutines)
		w, err := startWorker(exe, i, spec)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(w.stop)
		workers[i] = w
	}
	for _, w := range workers {
		if err := w.ready(); err != nil {
			b.Fatal(w.failure(err))
		}
	}

	b.ResetTimer()
	for _, w := range workers {
		if err := w.start(); err != nil {
			b.Fatal(w.failure(err))
		}
	}
	var total workerResult
	for _, w := range workers {
		r, err := w.result()
		if err != nil {
			b.Fatal(w.failure(err))
		}
		total.Reads += r.Reads
		total.Loads += r.Loads
		total.Stale += r.Stale
		total.MaxAge = max(total.MaxAge, r.MaxAge)
		total.Allocs += r.Allocs
		total.Bytes += r.Bytes
	}
	b.StopTimer()
	for _, w := range workers {
		if err := w.wait(); err != nil {
			b.Fatal(w.failure(err))
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	b.ReportMetric(hitPercent(total.Reads, total.Loads), "hit-%")
	b.ReportMetric(float64(total.Stale), "stale-reads")
	b.ReportMetric(float64(total.MaxAge)/float64(time.Millisecond), "max-stale-ms")
	b.ReportMetric(float64(total.Loads), "loads")
	// The allocations are the workers', not this process's.
	b.ReportMetric(float64(total.Allocs)/float64(b.N), "allocs/op")
	b.ReportMetric(float64(total.Bytes)/float64(b.N), "B/op")
}

// share is part i of n of total, the first parts one larger when n does not
// divide it.
func share(total int64, n, i int) int64 {
	s := total / int64(n)
	if int64(i) < total%int64(n) {
		s++
	}
	return s
}

// worker is one worker process. The parent writes "go" to its standard input
// once every worker is ready; the worker writes "ready", then its result, to
// the pipe it has as file descriptor 3; its standard output and error are
// kept for the error of a failed run.
type worker struct {
	n       int
	cmd     *exec.Cmd
	control *os.File      // the write end of the worker's standard input
	report  *bufio.Reader // the read end of its descriptor 3
	reportR *os.File
	out     bytes.Buffer
	done    bool
	err     error
}

func startWorker(exe string, n int, spec workerSpec) (*worker, error) {
	js, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	cr, cw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	rr, rw, err := os.Pipe()
	if err != nil {
		return nil, errors.Join(err, cr.Close(), cw.Close())
	}
	w := &worker{n: n, control: cw, report: bufio.NewReader(rr), reportR: rr}
	w.cmd = exec.Command(exe, "-test.run=^TestMixWorker$", "-test.count=1")
	w.cmd.Env = append(os.Environ(), workerEnv+"="+string(js))
	w.cmd.Stdin = cr
	w.cmd.ExtraFiles = []*os.File{rw}
	w.cmd.Stdout = &w.out
	w.cmd.Stderr = &w.out
	// The kernel kills the worker if the benchmark process dies; the worker
	// also exits when its standard input closes (see TestMixWorker).
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = w.cmd.Start()
	// The worker holds its ends now (or never will).
	cr.Close()
	rw.Close()
	if err != nil {
		return nil, errors.Join(err, cw.Close(), rr.Close())
	}
	return w, nil
}

// line reads the worker's next line on its report pipe.
func (w *worker) line() (string, error) {
	s, err := w.report.ReadString('\n')
	if errors.Is(err, io.EOF) {
		return "", errors.New("the worker closed its report pipe")
	}
	return s, err
}

// ready waits until the worker has connected and built its instance.
func (w *worker) ready() error {
	s, err := w.line()
	if err == nil && s != "ready\n" {
		err = fmt.Errorf("the worker said %q instead of ready", s)
	}
	return err
}

// start lets the worker run its operations.
func (w *worker) start() error {
	_, err := io.WriteString(w.control, "go\n")
	return err
}

// result waits for the worker's result.
func (w *worker) result() (workerResult, error) {
	var r workerResult
	s, err := w.line()
	if err == nil {
		err = json.Unmarshal([]byte(s), &r)
	}
	return r, err
}

// wait waits for the worker to exit and releases the pipes; it returns the
// exit's error, the same on every call.
func (w *worker) wait() error {
	if !w.done {
		w.done = true
		w.err = w.cmd.Wait()
		w.control.Close()
		w.reportR.Close()
	}
	return w.err
}

// stop kills the worker if it is still running and waits for it.
func (w *worker) stop() {
	if !w.done {
		_ = w.cmd.Process.Kill()
		_ = w.wait()
	}
}

// failure is err with the worker's output, once it has exited.
func (w *worker) failure(err error) error {
	w.stop()
	return fmt.Errorf("mix worker %d: %w (exit: %v); its output:\n%s", w.n, err, w.err, w.out.String())
}

// TestMixWorker is a worker process of BenchmarkMixProcs, which starts the
// test binary with workerEnv set; otherwise it is skipped.
func TestMixWorker(t *testing.T) {
	v, ok := os.LookupEnv(workerEnv)
	if !ok {
		t.Skip("a worker process of BenchmarkMixProcs")
	}
	var spec workerSpec
	if err := json.Unmarshal([]byte(v), &spec); err != nil {
		t.Fatalf("%s: %v", workerEnv, err)
	}
	report := os.NewFile(3, "report")
	if report == nil {
		t.Fatal("no report pipe (file descriptor 3)")
	}
	// The parent says go on standard input, then keeps it open until this
	// process has exited: its end of file means that the parent is gone.
	start := make(chan struct{})
	go func() {
		in := bufio.NewReader(os.Stdin)
		if s, err := in.ReadString('\n'); err == nil && s == "go\n" {
			close(start)
			_, _ = io.Copy(io.Discard, in)
		}
		fmt.Fprintln(os.Stderr, "mix worker: the benchmark closed its control pipe; exiting")
		os.Exit(3)
	}()

	src, err := OpenSharedSource(spec.Source)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	var c contender
	for _, m := range mixContenders {
		if m.name == spec.Lib {
			c = m
		}
	}
	if c.open == nil {
		t.Fatalf("no contender %q", spec.Lib)
	}
	l := &mixLoader{src: src}
	cls := c.instances(t, l.env(spec.NS), 1)
	if _, err := io.WriteString(report, "ready\n"); err != nil {
		t.Fatal(err)
	}
	<-start
	w := newMixWork(src, cls, spec.Ops, spec.Goroutines, mixSeed, false)
	w.first = spec.FirstGoroutine
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err = w.run(context.Background())
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(workerResult{
		Reads:  w.reads.Load(),
		Loads:  l.loads.Load(),
		Stale:  w.stale.Load(),
		MaxAge: time.Duration(w.maxAge.Load()),
		Allocs: after.Mallocs - before.Mallocs,
		Bytes:  after.TotalAlloc - before.TotalAlloc,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := report.Write(append(js, '\n')); err != nil {
		t.Fatal(err)
	}
}
