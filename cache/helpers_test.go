package cache_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aside-go/aside/asidetest"
	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/codec"
	"github.com/aside-go/aside/internal/redistest"
	"github.com/aside-go/aside/loader"
	"github.com/aside-go/aside/ttlpolicy"
	"github.com/redis/rueidis"
	"github.com/stretchr/testify/require"
)

// Helpers shared by the black-box tests of package cache.

// shared is the package's private redis-server, launched by TestMain.
// Tests that stop or reconfigure a server start their own. It is nil when no
// redis-server could start (sharedErr says why): the package-internal tests
// (*_internal_test.go) that need no Redis still run and pass, and every test
// that uses shared fails, through needShared, with sharedErr.
//
// (It stays a *redistest.Server rather than a lazily started value: helpers
// outside this file, such as parkedPlain, take a *redistest.Server.)
var (
	shared    *redistest.Server
	sharedErr error
)

// needShared returns shared, and fails tb when no redis-server could start.
func needShared(tb testing.TB) *redistest.Server {
	tb.Helper()
	if shared == nil {
		tb.Fatalf("cache tests need redis-server: %v", sharedErr)
	}
	return shared
}

// needServer fails tb when srv is a nil *redistest.Server: shared, when no
// redis-server could start.
func needServer(tb testing.TB, srv interface{ ClientOption() rueidis.ClientOption }) {
	tb.Helper()
	if s, ok := srv.(*redistest.Server); ok && s == nil {
		needShared(tb)
	}
}

// cluster is the package's private 3-primary Redis Cluster, started by the
// first test that needs it.
var (
	clusterOnce sync.Once
	cluster     *redistest.Cluster
	clusterErr  error
)

// topology is a deployment the tests of behaviour that must not depend on it
// run against.
type topology struct {
	name string
	opt  func(testing.TB) rueidis.ClientOption
}

func topologies() []topology {
	return []topology{
		{"standalone", func(tb testing.TB) rueidis.ClientOption { return needShared(tb).ClientOption() }},
		{"cluster", func(tb testing.TB) rueidis.ClientOption {
			clusterOnce.Do(func() {
				cluster, clusterErr = redistest.LaunchCluster(redistest.ClusterConfig{Primaries: 3})
			})
			if clusterErr != nil {
				tb.Fatalf("cluster: %v", clusterErr)
			}
			return cluster.ClientOption()
		}},
	}
}

// connect returns a client on srv closed at the end of the test.
func connect(tb testing.TB, srv interface{ ClientOption() rueidis.ClientOption }) *cache.Client {
	tb.Helper()
	needServer(tb, srv)
	return connectWith(tb, srv.ClientOption())
}

func connectWith(tb testing.TB, opt rueidis.ClientOption) *cache.Client {
	tb.Helper()
	c, err := cache.Connect(opt)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(c.Close)
	return c
}

// connectThrough connects a client on opt whose rueidis client is wrap's
// wrapper of the one rueidis builds (cache.WithClientBuilder), closed at the
// end of the test, and returns it with the wrapper.
func connectThrough[W rueidis.Client](tb testing.TB, opt rueidis.ClientOption, wrap func(rueidis.Client) W) (*cache.Client, W) {
	tb.Helper()
	var w W
	client, err := cache.Connect(opt, cache.WithClientBuilder(func(o rueidis.ClientOption) (rueidis.Client, error) {
		rc, err := rueidis.NewClient(o)
		if err != nil {
			return nil, err
		}
		w = wrap(rc)
		return w, nil
	}))
	require.NoError(tb, err)
	tb.Cleanup(client.Close)
	return client, w
}

var nsSeq atomic.Int64

// namespace returns a namespace no other test uses: the test's name, every
// character a namespace may not hold ("/", "#", ",", ":", "'", ...) made '-'.
func namespace(tb testing.TB) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.' {
			return r
		}
		return '-'
	}, tb.Name())
	return fmt.Sprintf("%s-%d", name, nsSeq.Add(1))
}

// User is a value of about 150 bytes in MessagePack.
type User struct {
	ID        int64
	Name      string
	Email     string
	Roles     []string
	Active    bool
	Score     float64
	CreatedAt int64
	Bio       string
}

func sampleUser(id int64) User {
	return User{
		ID:        id,
		Name:      fmt.Sprintf("user %d", id),
		Email:     fmt.Sprintf("user%d@example.com", id),
		Roles:     []string{"reader", "writer"},
		Active:    true,
		Score:     98.5,
		CreatedAt: 1_700_000_000 + id,
		Bio:       "Writes about caches, Redis and Go, mostly in the evenings.",
	}
}

// waitABit yields the processor while a test waits for other goroutines to
// reach a state it observes; the wait is bounded by the test's timeout, and
// the state, not the time, ends it.
func waitABit() { runtime.Gosched() }

// userCache builds a cache of users on client whose loader counts its calls.
func userCache(t testing.TB, client *cache.Client, ns string, calls *atomic.Int64, opts ...func(*cache.Options[int64, User])) *cache.Cache[int64, User] {
	t.Helper()
	o := cache.Options[int64, User]{
		Namespace: ns,
		TTL:       ttlpolicy.Minutes(5),
		Loader: func(ctx context.Context, id int64) (User, error) {
			if calls != nil {
				calls.Add(1)
			}
			if id < 0 {
				return User{}, loader.ErrNotFound
			}
			return sampleUser(id), nil
		},
	}
	for _, f := range opts {
		f(&o)
	}
	c, err := cache.New(connectOnce(t, client), o)
	require.NoError(t, err)
	return c
}

func connectOnce(t testing.TB, c *cache.Client) *cache.Client {
	if c != nil {
		return c
	}
	return connect(t, shared)
}

// warm reads k until the cache holds a decoded copy of it. Right after the
// process wrote k (a load writes it back), reads go around the client-side
// cache until Redis' invalidation of that write arrives; the number of reads
// is bounded, not the time.
func warm[K comparable, V any](t testing.TB, c *cache.Cache[K, V], k K) {
	t.Helper()
	for range 10_000 {
		before := c.Stats().LocalHits
		_, err := c.Get(context.Background(), k)
		if err != nil && !errors.Is(err, cache.ErrNotFound) {
			t.Fatalf("warm: %v", err)
		}
		if c.Stats().LocalHits > before {
			// Settled: the load's write has ended too.
			if err := cache.AwaitWrites(context.Background(), c, k); err != nil {
				t.Fatalf("warm: %v", err)
			}
			return
		}
	}
	t.Fatalf("no decoded copy of %v after 10000 reads", k)
}

// source is a "database" of versioned rows that counts loads.
type source struct {
	mu    sync.Mutex
	rows  map[string]int64 // key -> version
	loads atomic.Int64
	// hook, when set, runs inside every load after it read the row: tests
	// park loads there to force interleavings.
	hook func(key string, version int64)
}

func newSource() *source { return &source{rows: map[string]int64{}} }

func (s *source) load(_ context.Context, key string) (int64, error) {
	s.loads.Add(1)
	s.mu.Lock()
	v, ok := s.rows[key]
	hook := s.hook
	s.mu.Unlock()
	if hook != nil {
		hook(key, v)
	}
	if !ok {
		return 0, loader.ErrNotFound
	}
	return v, nil
}

func (s *source) set(key string, v int64) {
	s.mu.Lock()
	s.rows[key] = v
	s.mu.Unlock()
}

func (s *source) get(key string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rows[key]
}

func versionCache(t testing.TB, client *cache.Client, ns string, src *source, opts ...func(*cache.Options[string, int64])) *cache.Cache[string, int64] {
	t.Helper()
	o := cache.Options[string, int64]{Namespace: ns, Loader: src.load, Codec: codec.MsgPack[int64]()}
	for _, f := range opts {
		f(&o)
	}
	c, err := cache.New(client, o)
	require.NoError(t, err)
	return c
}

// holdLease starts a Get of key in another client of namespace ns whose load
// parks holding the key's lease, and returns once it does. Closing release
// lets the load return v; done is closed when that Get returned.
func holdLease(t *testing.T, ns, key string, v int64) (release, done chan struct{}) {
	t.Helper()
	parked := make(chan struct{})
	release, done = make(chan struct{}), make(chan struct{})
	holder := versionCache(t, connect(t, shared), ns, newSource(), func(o *cache.Options[string, int64]) {
		o.Loader = func(context.Context, string) (int64, error) {
			close(parked)
			<-release
			return v, nil
		}
	})
	go func() {
		defer close(done)
		_, _ = holder.Get(context.Background(), key)
	}()
	<-parked
	return release, done
}

// commandStats returns the calls per command from INFO commandstats, without
// the commands of connection set-up and administration.
func commandStats(t testing.TB, srv *redistest.Server) map[string]int {
	t.Helper()
	needServer(t, srv)
	text, err := srv.Do(context.Background(), "INFO", "commandstats")
	require.NoError(t, err)
	out := map[string]int{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		name, rest, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		name = strings.TrimPrefix(name, "cmdstat_")
		switch {
		case name == "info", name == "hello", name == "ping", strings.HasPrefix(name, "client"), strings.HasPrefix(name, "script"):
			continue
		}
		for _, f := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				n, _ := strconv.Atoi(v)
				out[name] = n
			}
		}
	}
	return out
}

// commandsSince returns the commands sent since before, by name, and their
// total.
func commandsSince(t testing.TB, srv *redistest.Server, before map[string]int) (map[string]int, int) {
	t.Helper()
	delta := map[string]int{}
	total := 0
	for name, n := range commandStats(t, srv) {
		if d := n - before[name]; d > 0 {
			delta[name] = d
			total += d
		}
	}
	return delta, total
}

func stringCache(t testing.TB, topo topology, ns string) *cache.Cache[string, string] {
	t.Helper()
	c, err := cache.New(connectWith(t, topo.opt(t)), cache.Options[string, string]{Namespace: ns, Codec: codec.String()})
	require.NoError(t, err)
	return c
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// batchSource is a source of users with a batch loader that records its calls.
type batchSource struct {
	mu    sync.Mutex
	calls [][]int64
	fail  map[int64]error // keys whose load fails
}

func (s *batchSource) load(_ context.Context, ids []int64) (map[int64]User, error) {
	s.mu.Lock()
	s.calls = append(s.calls, append([]int64(nil), ids...))
	s.mu.Unlock()
	out := make(map[int64]User, len(ids))
	var errs []error
	for _, id := range ids {
		if err := s.fail[id]; err != nil {
			errs = append(errs, &loader.KeyError[int64]{Key: id, Err: err})
			continue
		}
		if id >= 0 {
			out[id] = sampleUser(id)
		}
	}
	return out, errors.Join(errs...)
}

func (s *batchSource) callCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

// Helpers of the guarantee tests.

// patience bounds every wait for an event (a push, a parked load, a call that
// should return): far above what the event takes on a loaded machine.
const patience = 10 * time.Second

// testContext is the context of a test's own calls: it ends with the test,
// and after a bound far above what any test needs, so that a call that would
// wait forever fails the test instead of hanging it.
func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// pushWatch records the invalidations one client received. cache.Connect
// calls the ClientOption's own OnInvalidations after its dispatch to the
// caches, so once the watch saw a key (or a nil "flush everything"), every
// cache of the client has processed it.
type pushWatch struct {
	mu      sync.Mutex
	keys    map[string]int // pushes per Redis key
	flushes int            // nil pushes: a flush, or a dropped connection
	changed chan struct{}  // closed and replaced at every push
}

// pushMark is what a pushWatch had seen of one key at some moment.
type pushMark struct {
	key           string
	keys, flushes int
}

// watchedClient connects a client on opt whose invalidations w records.
func watchedClient(t testing.TB, opt rueidis.ClientOption) (*cache.Client, *pushWatch) {
	t.Helper()
	w := &pushWatch{keys: map[string]int{}, changed: make(chan struct{})}
	opt.OnInvalidations = w.hook
	return connectWith(t, opt), w
}

// watchedPair returns two caches of namespace ns over versions of src, as
// two processes: P on a client of opt whose pushes w records, Q on a client
// of srv of its own.
func watchedPair(t testing.TB, srv *redistest.Server, opt rueidis.ClientOption, ns string, src *source) (p *cache.Cache[string, int64], w *pushWatch, q *cache.Cache[string, int64]) {
	t.Helper()
	needServer(t, srv)
	pc, w := watchedClient(t, opt)
	return versionCache(t, pc, ns, src), w, versionCache(t, connect(t, srv), ns, src)
}

func (w *pushWatch) hook(msgs []rueidis.RedisMessage) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if msgs == nil {
		w.flushes++
	}
	for _, m := range msgs {
		if k, err := m.ToString(); err == nil {
			w.keys[k]++
		}
	}
	close(w.changed)
	w.changed = make(chan struct{})
}

func (w *pushWatch) mark(key string) pushMark {
	w.mu.Lock()
	defer w.mu.Unlock()
	return pushMark{key: key, keys: w.keys[key], flushes: w.flushes}
}

// awaitKey waits for an invalidation of m.key (or a flush) after m.
func (w *pushWatch) awaitKey(t testing.TB, m pushMark, what string) {
	t.Helper()
	w.await(t, what, func() bool { return w.keys[m.key] > m.keys || w.flushes > m.flushes })
}

// awaitPushOf waits for an invalidation push of m.key itself after m: unlike
// awaitKey, a flush does not count.
func (w *pushWatch) awaitPushOf(t testing.TB, m pushMark, what string) {
	t.Helper()
	w.await(t, what, func() bool { return w.keys[m.key] > m.keys })
}

// flushesSince returns how many nil pushes w received after m.
func (w *pushWatch) flushesSince(m pushMark) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flushes - m.flushes
}

// awaitFlush waits for a nil push after m.
func (w *pushWatch) awaitFlush(t testing.TB, m pushMark, what string) {
	t.Helper()
	w.await(t, what, func() bool { return w.flushes > m.flushes })
}

// await waits until seen, called under w.mu, holds.
func (w *pushWatch) await(t testing.TB, what string, seen func() bool) {
	t.Helper()
	timer := time.NewTimer(patience)
	defer timer.Stop()
	for {
		w.mu.Lock()
		ok, changed := seen(), w.changed
		w.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("%s: the client received no such invalidation push within %v", what, patience)
		}
	}
}

// gates parks loads of a source at will and counts its loads per key.
type gates struct {
	mu    sync.Mutex
	armed map[string]*gate
	loads map[string]int
}

// gate holds the first load of one key that reads a given version.
type gate struct {
	version int64
	parked  chan struct{} // closed when the load parked
	release chan struct{}
	once    sync.Once
}

// gatedSource returns a source whose loads the gates control.
func gatedSource() (*source, *gates) {
	g := &gates{armed: map[string]*gate{}, loads: map[string]int{}}
	src := newSource()
	src.hook = g.hook
	return src, g
}

func (g *gates) hook(key string, version int64) {
	g.mu.Lock()
	g.loads[key]++
	gt := g.armed[key]
	if gt != nil && gt.version == version {
		delete(g.armed, key)
	} else {
		gt = nil
	}
	g.mu.Unlock()
	if gt != nil {
		close(gt.parked)
		<-gt.release
	}
}

// park makes the next load of key that reads version park, after its read of
// the source, until the gate is freed. The test's cleanup frees it too, and
// runs before the cleanups of the clients made earlier (which wait for their
// background loads), so a failing test never leaves a load parked.
func (g *gates) park(t testing.TB, key string, version int64) *gate {
	gt := &gate{version: version, parked: make(chan struct{}), release: make(chan struct{})}
	g.mu.Lock()
	g.armed[key] = gt
	g.mu.Unlock()
	t.Cleanup(gt.free)
	return gt
}

func (g *gates) loadsOf(key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.loads[key]
}

func (gt *gate) free() { gt.once.Do(func() { close(gt.release) }) }

func (gt *gate) awaitParked(t testing.TB, what string) {
	t.Helper()
	timer := time.NewTimer(patience)
	defer timer.Stop()
	select {
	case <-gt.parked:
	case <-timer.C:
		t.Fatalf("%s: the load did not start within %v", what, patience)
	}
}

// outcome is what a call made on another goroutine returned.
type outcome[V any] struct {
	v   V
	err error
}

// inBackground runs f on a goroutine of its own. Its context ends after
// 3×patience, so that the goroutine ends even when the test gave up on it.
func inBackground[V any](f func(context.Context) (V, error)) <-chan outcome[V] {
	ch := make(chan outcome[V], 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*patience)
		defer cancel()
		v, err := f(ctx)
		ch <- outcome[V]{v, err}
	}()
	return ch
}

// await returns what the call behind ch returned, and fails the test when it
// has not returned within patience: it waits for something that does not
// come (such as a load that began before the event the test is about).
func await[V any](t testing.TB, ch <-chan outcome[V], what string) (V, error) {
	t.Helper()
	timer := time.NewTimer(patience)
	defer timer.Stop()
	select {
	case o := <-ch:
		return o.v, o.err
	case <-timer.C:
		t.Fatalf("%s: did not return within %v (is it waiting on a load that began before the invalidation?)", what, patience)
	}
	var zero V
	return zero, nil
}

// within is await(inBackground(f)).
func within[V any](t testing.TB, what string, f func(context.Context) (V, error)) (V, error) {
	t.Helper()
	return await(t, inBackground(f), what)
}

// warmCopy reads k through c until a read is served from process memory, and
// returns that value: c then holds a decoded copy of k. The state ends the
// loop; patience only bounds it.
func warmCopy[K comparable, V any](t testing.TB, c *cache.Cache[K, V], k K) V {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		before := c.Stats().LocalHits
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		v, err := c.Get(ctx, k)
		cancel()
		require.NoError(t, err, "warm %v", k)
		if c.Stats().LocalHits > before {
			require.NoError(t, cache.AwaitWrites(context.Background(), c, k))
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("warm %v: no read was served from process memory within %v", k, patience)
		}
	}
}

// hitsSince returns how many more local and Redis hits s counts than before.
func hitsSince(before, s cache.Stats) (local, redis uint64) {
	return s.LocalHits - before.LocalHits, s.RedisHits - before.RedisHits
}

// folded makes a cache's Key function (and its loader) case-insensitive: two
// typed keys that differ only in case are one Redis key, one source row.
func folded(src *source) func(*cache.Options[string, int64]) {
	return func(o *cache.Options[string, int64]) {
		o.Key = strings.ToLower
		o.Loader = func(ctx context.Context, k string) (int64, error) { return src.load(ctx, strings.ToLower(k)) }
	}
}

// monitor reads the MONITOR stream of a server: every command as the server
// runs it, those run by scripts marked as such.
type monitor struct {
	conn net.Conn
	r    *bufio.Reader
}

func startMonitor(t testing.TB, srv *redistest.Server) *monitor {
	t.Helper()
	needServer(t, srv)
	conn, err := net.DialTimeout("tcp", srv.Addr(), patience)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	m := &monitor{conn: conn, r: bufio.NewReader(conn)}
	_, err = conn.Write([]byte("*1\r\n$7\r\nMONITOR\r\n"))
	require.NoError(t, err)
	require.Equal(t, "+OK", m.line(t))
	return m
}

func (m *monitor) line(t testing.TB) string {
	t.Helper()
	require.NoError(t, m.conn.SetReadDeadline(time.Now().Add(patience)))
	s, err := m.r.ReadString('\n')
	require.NoError(t, err, "MONITOR stream")
	return strings.TrimRight(s, "\r\n")
}

// visits returns the commands clients sent since the monitor started, up to
// now, by name: a MULTI…EXEC block counts as one visit ("multi pttl get
// exec"); commands that scripts ran are left out (their script is the visit),
// and so are connection set-up and administration (INFO, CLIENT, HELLO, PING,
// SCRIPT). An ECHO of a marker tells where "now" is in the stream.
func (m *monitor) visits(t testing.TB, srv *redistest.Server) []string {
	t.Helper()
	needServer(t, srv)
	marker := fmt.Sprintf("guarantee-test-marker-%d", rand.Int64())
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	_, err := srv.Do(ctx, "ECHO", marker)
	require.NoError(t, err)
	var out []string
	inMulti := map[string]int{} // client address -> its open block in out
	// A read's visit is PTTL, SET or GET, PTTL from one client, after the
	// GET of the namespace's generation in envelope mode: one entry,
	// "visit". inVisit holds, per client, the entry of a visit begun and
	// how many of its commands were seen (0: the generation's GET alone).
	type partial struct{ at, seen int }
	inVisit := map[string]partial{}
	for {
		// +1700000000.123456 [0 127.0.0.1:5678] "SET" "key" ...
		line := m.line(t)
		open, end := strings.IndexByte(line, '['), strings.IndexByte(line, ']')
		if open < 0 || end < open {
			continue
		}
		_, from, _ := strings.Cut(line[open+1:end], " ")
		args := line[end+1:]
		name := ""
		if _, rest, ok := strings.Cut(args, `"`); ok {
			name, _, _ = strings.Cut(rest, `"`)
		}
		name = strings.ToLower(name)
		if name == "echo" && strings.Contains(args, marker) {
			return out
		}
		if from == "lua" {
			continue
		}
		if i, ok := inMulti[from]; ok {
			out[i] += " " + name
			if name == "exec" || name == "discard" {
				delete(inMulti, from)
			}
			continue
		}
		switch name {
		case "info", "client", "hello", "ping", "script":
			continue
		case "multi":
			inMulti[from] = len(out)
		}
		if v, ok := inVisit[from]; ok {
			delete(inVisit, from)
			switch {
			case v.seen == 0 && name == "pttl":
				out[v.at] += " " + name
				inVisit[from] = partial{v.at, 1}
				continue
			case v.seen == 1 && (name == "set" || name == "get"):
				out[v.at] += " " + name
				inVisit[from] = partial{v.at, 2}
				continue
			case v.seen == 2 && name == "pttl":
				out[v.at] = "visit"
				continue
			}
		}
		switch name {
		case "get":
			inVisit[from] = partial{len(out), 0}
		case "pttl":
			inVisit[from] = partial{len(out), 1}
		}
		out = append(out, name)
	}
}

// commandCalls returns the calls per command of INFO commandstats, commands
// run by scripts included (Redis counts them too).
func commandCalls(t testing.TB, srv *redistest.Server) map[string]int {
	t.Helper()
	needServer(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	text, err := srv.Do(ctx, "INFO", "commandstats")
	require.NoError(t, err)
	out := map[string]int{}
	for _, line := range strings.Split(text, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for _, f := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				out[strings.TrimPrefix(name, "cmdstat_")], _ = strconv.Atoi(v)
			}
		}
	}
	return out
}

// tally counts names, for messages.
func tally(names []string) string {
	n := map[string]int{}
	for _, name := range names {
		n[name]++
	}
	keys := make([]string, 0, len(n))
	for k := range n {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, n[k])
	}
	return strings.Join(parts, ", ")
}

// readVia returns a one-key read through Get, or through GetMany.
func readVia(c *cache.Cache[string, int64], many bool) func(context.Context, string) (int64, error) {
	if !many {
		return func(ctx context.Context, k string) (int64, error) { return c.Get(ctx, k) }
	}
	return func(ctx context.Context, k string) (int64, error) {
		m, err := c.GetMany(ctx, []string{k})
		if err != nil {
			return 0, err
		}
		v, ok := m[k]
		if !ok {
			return 0, fmt.Errorf("GetMany returned no value for %q", k)
		}
		return v, nil
	}
}

// releaseOrders are the two orders in which a load parked before an
// invalidation may finish: before the read that follows the invalidation, or
// after it.
var releaseOrders = []struct {
	name         string
	releaseFirst bool
}{
	{"old load finishes first", true},
	{"old load still parked", false},
}

// overtaken drives one round of the G2 race on key k: r's Get parks its load
// of version 1 holding the lease; invalidate (which moves the source to 2 and
// returns once the event and its push reached r) runs; then read, in r's
// process, must return 2 from a load of its own, whichever of the parked load
// and the read finishes first. The parked Get itself returns 1: it began
// before the event.
func overtaken(t *testing.T, round int, r *cache.Cache[string, int64], src *source, g *gates, k string,
	releaseFirst bool, invalidate func(), read func(context.Context, string) (int64, error)) {
	t.Helper()
	src.set(k, 1)
	gt := g.park(t, k, 1)
	old := inBackground(func(ctx context.Context) (int64, error) { return r.Get(ctx, k) })
	gt.awaitParked(t, fmt.Sprintf("round %d: Get(%s)", round, k))

	invalidate()

	finishOld := func() {
		gt.free()
		v, err := await(t, old, fmt.Sprintf("round %d: the Get whose load was parked", round))
		require.NoError(t, err, "round %d: the parked Get", round)
		require.EqualValues(t, 1, v, "round %d: the parked Get returns the row its load read", round)
	}
	if releaseFirst {
		finishOld()
	}
	v, err := within(t, fmt.Sprintf("round %d: the read after the invalidation", round), func(ctx context.Context) (int64, error) {
		return read(ctx, k)
	})
	require.NoError(t, err, "round %d: the read after the invalidation", round)
	require.EqualValues(t, 2, v, "round %d: a read that reaches Redis after the invalidation returned must not return the load that began before it", round)
	require.Equal(t, 2, g.loadsOf(k), "round %d: the read after the invalidation ran a load of its own", round)
	if !releaseFirst {
		finishOld()
	}
}

// Helpers of the adversarial tests.

// refreshOpts: values due for refresh after 5 minutes of clock, hard TTL 10
// minutes, refreshed synchronously.
func refreshOpts(clock *asidetest.Clock) func(*cache.Options[string, int64]) {
	return func(o *cache.Options[string, int64]) {
		o.TTL = ttlpolicy.Fixed(10 * time.Minute).WithSoft(0.5)
		o.Now = clock.Now
		o.Refresh = cache.RefreshSync
	}
}

// awaitGoroutines waits until n goroutines have a stack for which match
// holds: the way to know that calls are blocked where the test wants them
// (joined a flight, say) without sleeping.
func awaitGoroutines(t testing.TB, what string, n int, match func(stack string) bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	buf := make([]byte, 1<<20)
	for {
		m := runtime.Stack(buf, true)
		for m == len(buf) {
			buf = make([]byte, 2*len(buf))
			m = runtime.Stack(buf, true)
		}
		got := 0
		for _, g := range strings.Split(string(buf[:m]), "\n\n") {
			if match(g) {
				got++
			}
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d goroutines where %d were expected within %v", what, got, n, patience)
		}
		runtime.Gosched()
	}
}

// awaitClientGone waits until the server no longer lists a client at addr.
func awaitClientGone(t testing.TB, srv *redistest.Server, addr string) {
	t.Helper()
	needServer(t, srv)
	deadline := time.Now().Add(patience)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		list, err := srv.Do(ctx, "CLIENT", "LIST")
		cancel()
		require.NoError(t, err)
		if !strings.Contains(list, "addr="+addr+" ") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server still lists client %s", addr)
		}
		runtime.Gosched()
	}
}

// clientFields parses one line of CLIENT LIST.
func clientFields(line string) map[string]string {
	f := map[string]string{}
	for _, kv := range strings.Fields(line) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			f[k] = v
		}
	}
	return f
}

// tcpProxy forwards connections to a Redis server. sever cuts one of them
// half-open, as a middlebox that loses a flow does: the server side is closed
// (Redis frees the client, and with it the keys it tracked for it), the
// client side stays open and silent (the client notices nothing until its
// keep-alive gives up).
type tcpProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []*proxiedConn
	wg     sync.WaitGroup
	// intercept, when set, sees what a client sends before it is
	// forwarded: it returns the bytes to forward, those to hold back
	// until the client sends more, and whether to cut the connection
	// after forwarding: the client side closes first (no reply reaches
	// it), then the server side.
	intercept func(data []byte) (forward, held []byte, cut bool)
}

// proxiedConn is one connection through a tcpProxy.
type proxiedConn struct {
	client, server net.Conn
	mu             sync.Mutex
	sent           []byte // everything the client sent
	severed        bool
}

// startProxy starts a proxy to target, closed at the end of the test.
func startProxy(t testing.TB, target string) *tcpProxy {
	t.Helper()
	return startInterceptingProxy(t, target, nil)
}

// startInterceptingProxy is startProxy with tcpProxy.intercept set.
func startInterceptingProxy(t testing.TB, target string, intercept func(data []byte) (forward, held []byte, cut bool)) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &tcpProxy{ln: ln, target: target, intercept: intercept}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) accept() {
	defer p.wg.Done()
	for {
		cl, err := p.ln.Accept()
		if err != nil {
			return
		}
		sv, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = cl.Close()
			continue
		}
		c := &proxiedConn{client: cl, server: sv}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { // client -> server
			defer p.wg.Done()
			buf := make([]byte, 64<<10)
			var held []byte
			for {
				n, err := cl.Read(buf)
				if n > 0 {
					data := buf[:n]
					if p.intercept != nil {
						var cut bool
						data, held, cut = p.intercept(append(held, data...))
						if cut {
							_ = cl.Close()
							_, _ = sv.Write(data)
							_ = sv.Close()
							return
						}
					}
					c.mu.Lock()
					c.sent = append(c.sent, data...)
					severed := c.severed
					c.mu.Unlock()
					if !severed {
						_, _ = sv.Write(data)
					}
				}
				if err != nil {
					_ = sv.Close()
					return
				}
			}
		}()
		go func() { // server -> client
			defer p.wg.Done()
			_, _ = io.Copy(cl, sv)
			c.mu.Lock()
			severed := c.severed
			c.mu.Unlock()
			if !severed {
				_ = cl.Close()
			}
		}()
	}
}

// carrying returns the connections whose client sent bytes containing s.
func (p *tcpProxy) carrying(s string) []*proxiedConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*proxiedConn
	for _, c := range p.conns {
		c.mu.Lock()
		if bytes.Contains(c.sent, []byte(s)) {
			out = append(out, c)
		}
		c.mu.Unlock()
	}
	return out
}

// sever cuts c half-open: the server side closes, the client side hangs.
func (c *proxiedConn) sever() {
	c.mu.Lock()
	c.severed = true
	c.mu.Unlock()
	_ = c.server.Close()
}

func (p *tcpProxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.client.Close()
		_ = c.server.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
