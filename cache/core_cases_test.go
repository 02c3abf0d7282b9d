package cache_test

// Tests of the core bugs found in the review of 8126c0e: each forces the
// interleaving that broke a guarantee (named in its comment) and fails on
// that code.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/codec"
	"github.com/aside-go/aside/internal/redistest"
)

// coreModes are the two ways a cache stores its values.
var coreModes = []struct {
	name  string
	plain bool
}{{"envelope", false}, {"plain", true}}

func corePlainIf(plain bool) func(*cache.Options[string, int64]) {
	return func(o *cache.Options[string, int64]) { o.Plain = plain }
}

// coreRawVersion returns the version a versionCache's key holds in Redis, read
// by another program (the envelope's 11-byte header skipped), and whether it
// holds one.
func coreRawVersion(t testing.TB, rc rueidis.Client, key string) (int64, bool) {
	t.Helper()
	raw, ok := rawGet(t, rc, key)
	if !ok {
		return 0, false
	}
	b := []byte(raw)
	if len(b) >= 11 && b[0] == 0xc1 {
		b = b[11:]
	}
	var v int64
	if err := codec.MsgPack[int64]().Unmarshal(b, &v); err != nil {
		return -1, true // a lease, or bytes of no version
	}
	return v, true
}

// coreAwaitState polls a state of Redis (not a time) until done holds, bounded
// by patience.
func coreAwaitState(t testing.TB, what string, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, patience)
		}
		waitABit()
	}
}

// coreProxy is a TCP proxy to a Redis server with faults the test turns
// on: down (every connection cut, new ones closed at once), a trigger (bytes
// whose sight in a client's stream take the proxy down before they are
// forwarded: the command is lost, the connection reset), and replies held
// back: what the server sends is queued, in order, until the test releases
// it (a reply, or a push, that arrives as late as the test says).
type coreProxy struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	down    bool
	mute    bool // forward nothing, close nothing: a silent partition
	trigger []byte
	// holding: the server's chunks numbered from released on wait for
	// releaseArrived or releaseAll; arrived numbers them. Guarded by mu,
	// and released waits on it.
	holding           bool
	arrived, released int
	freed             *sync.Cond
	conns             map[net.Conn]net.Conn // client side -> server side
	wg                sync.WaitGroup
}

func startCoreProxy(t testing.TB, target string) *coreProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &coreProxy{ln: ln, target: target, conns: map[net.Conn]net.Conn{}}
	p.freed = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() { _ = ln.Close(); p.setDown(true); p.wg.Wait() })
	return p
}

// option is opt with the proxy as its address.
func (p *coreProxy) option(opt rueidis.ClientOption) rueidis.ClientOption {
	opt.InitAddress = []string{p.ln.Addr().String()}
	return opt
}

func (p *coreProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	p.freed.Broadcast()
	if down {
		for cl, sv := range p.conns {
			_, _ = cl.Close(), sv.Close()
			delete(p.conns, cl)
		}
	}
}

func (p *coreProxy) setMute(mute bool) { p.mu.Lock(); p.mute = mute; p.mu.Unlock() }

func (p *coreProxy) downOn(s string) { p.mu.Lock(); p.trigger = []byte(s); p.mu.Unlock() }

// holdReplies holds back what the server sends from now on.
func (p *coreProxy) holdReplies() {
	p.mu.Lock()
	p.holding, p.released = true, p.arrived
	p.mu.Unlock()
}

// held reports how many chunks the server sent are held back.
func (p *coreProxy) held() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.holding {
		return 0
	}
	return p.arrived - p.released
}

// releaseArrived lets the chunks held so far go, in order; those that
// arrive later are held still.
func (p *coreProxy) releaseArrived() {
	p.mu.Lock()
	p.released = p.arrived
	p.freed.Broadcast()
	p.mu.Unlock()
}

// releaseAll lets everything go, and holds nothing any more.
func (p *coreProxy) releaseAll() {
	p.mu.Lock()
	p.holding = false
	p.freed.Broadcast()
	p.mu.Unlock()
}

func (p *coreProxy) accept() {
	defer p.wg.Done()
	for {
		cl, err := p.ln.Accept()
		if err != nil {
			return
		}
		sv, err := net.Dial("tcp", p.target)
		p.mu.Lock()
		if err != nil || p.down {
			p.mu.Unlock()
			_ = cl.Close()
			if sv != nil {
				_ = sv.Close()
			}
			continue
		}
		p.conns[cl] = sv
		p.mu.Unlock()
		type chunk struct {
			n    int // its number among every connection's chunks
			data []byte
		}
		out := make(chan chunk, 4096)
		p.wg.Add(3)
		go func() { // client -> server
			defer p.wg.Done()
			defer sv.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := cl.Read(buf)
				p.mu.Lock()
				trip := n > 0 && p.trigger != nil && bytes.Contains(buf[:n], p.trigger)
				if trip {
					p.trigger = nil
				}
				mute := p.mute
				p.mu.Unlock()
				if trip {
					p.setDown(true)
					return
				}
				if n > 0 && !mute {
					if _, werr := sv.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
		go func() { // server -> queue
			defer p.wg.Done()
			defer close(out)
			buf := make([]byte, 64<<10)
			for {
				n, err := sv.Read(buf)
				p.mu.Lock()
				num, mute := p.arrived, p.mute
				if n > 0 && !mute {
					p.arrived++
				}
				p.mu.Unlock()
				if n > 0 && !mute {
					out <- chunk{num, bytes.Clone(buf[:n])}
				}
				if err != nil {
					return
				}
			}
		}()
		go func() { // queue -> client, each chunk once released
			defer p.wg.Done()
			defer cl.Close()
			for c := range out {
				p.mu.Lock()
				for p.holding && c.n >= p.released && !p.down {
					p.freed.Wait()
				}
				p.mu.Unlock()
				if _, err := cl.Write(c.data); err != nil {
					sv.Close()
				}
			}
		}()
	}
}

// TestCoreOwnPatternInvalidationEndsLoads — case 1 (G3 after
// InvalidatePattern / InvalidatePrefix). The process's Get of k parks its
// load after it read v1; the source moves to v2; the process's own
// InvalidatePattern("*") (or InvalidatePrefix("k")) returns; a Get after it
// must return v2 from a load of its own, whether the parked load finishes
// first or is still parked (then the Get must not wait for it). In plain
// mode k is absent while it loads (its lease is in the lease key), so a SCAN
// that misses it must still end its flight.
func TestCoreOwnPatternInvalidationEndsLoads(t *testing.T) {
	t.Parallel()
	for _, topo := range topologies() {
		for _, m := range coreModes {
			for _, how := range []string{"pattern", "prefix"} {
				for _, order := range releaseOrders {
					t.Run(fmt.Sprintf("%s/%s/%s/%s", topo.name, m.name, how, order.name), func(t *testing.T) {
						t.Parallel()
						src, g := gatedSource()
						p := versionCache(t, connectWith(t, topo.opt(t)), namespace(t), src, corePlainIf(m.plain))
						invalidate := func() {
							src.set("k", 2)
							var err error
							if how == "pattern" {
								_, err = p.InvalidatePattern(testContext(t), "*")
							} else {
								_, err = p.InvalidatePrefix(testContext(t), "k")
							}
							require.NoError(t, err)
						}
						overtaken(t, 0, p, src, g, "k", order.releaseFirst, invalidate, readVia(p, false))
					})
				}
			}
		}
	}
}

// TestCoreEchoIsNotAnotherChange — case 2 (G3; the echo mix-up), a bounded
// approximation: the interleaving (the pattern's UNLINK pushed before the
// load's write echo, and taken for it) is not forced. Each round parks a
// load of v1, moves the source to v2, then frees the load and runs the
// process's own InvalidatePrefix concurrently with the load's write; once
// InvalidatePrefix returned, a Get must not return v1 (from process memory
// or Redis).
func TestCoreEchoIsNotAnotherChange(t *testing.T) {
	t.Parallel()
	for _, topo := range topologies() {
		for _, m := range coreModes {
			t.Run(topo.name+"/"+m.name, func(t *testing.T) {
				t.Parallel()
				src, g := gatedSource()
				p := versionCache(t, connectWith(t, topo.opt(t)), namespace(t), src, corePlainIf(m.plain))
				for round := range 100 {
					k := fmt.Sprint("k", round)
					src.set(k, 1)
					gt := g.park(t, k, 1)
					old := inBackground(func(ctx context.Context) (int64, error) { return p.Get(ctx, k) })
					gt.awaitParked(t, fmt.Sprintf("round %d: the load", round))
					src.set(k, 2)
					gt.free()
					_, err := p.InvalidatePrefix(testContext(t), k)
					require.NoError(t, err, "round %d", round)
					for i := range 3 {
						v, err := within(t, "a Get after InvalidatePrefix", func(ctx context.Context) (int64, error) { return p.Get(ctx, k) })
						require.NoError(t, err)
						require.EqualValues(t, 2, v, "round %d, read %d: a Get after the process's own InvalidatePrefix returned the version from before it", round, i)
					}
					_, err = await(t, old, "the parked Get")
					require.NoError(t, err)
				}
			})
		}
	}
}

// TestCoreAnotherProcessInvalidatesAPlainLoad — case 3 (G2 across processes,
// plain mode). P's Get of k parks its load after it read v1 (k absent, its
// lease in the lease key); the source moves to v2; Q's Invalidate(k)
// returns, and its push reaches P. A Get through P after that must not join
// P's old load: it returns v2 from a load of its own, whether the old load
// finishes first or is still parked. (Deleting the absent k pushes nothing;
// before the fix P did not track its lease key either, and heard nothing.)
func TestCoreAnotherProcessInvalidatesAPlainLoad(t *testing.T) {
	t.Parallel()
	for _, topo := range topologies() {
		for _, order := range releaseOrders {
			t.Run(topo.name+"/"+order.name, func(t *testing.T) {
				t.Parallel()
				src, g := gatedSource()
				ns := namespace(t)
				pc, pw := watchedClient(t, topo.opt(t))
				p := versionCache(t, pc, ns, src, corePlainIf(true))
				q := versionCache(t, connectWith(t, topo.opt(t)), ns, src, corePlainIf(true))
				invalidate := func() {
					src.set("k", 2)
					m := pw.mark(cache.LeaseKey(ns, p.Key("k")))
					require.NoError(t, q.Invalidate(testContext(t), "k"))
					// G2 across processes holds from the push on: a read
					// of P that joins P's load does not reach Redis.
					pw.awaitPushOf(t, m, "P hears of Q's deletion of the lease key")
				}
				overtaken(t, 0, p, src, g, "k", order.releaseFirst, invalidate, readVia(p, false))
			})
		}
	}
}

// TestCoreFallbackLoadIsNotJoinedAfterAnInvalidation — case 3, fallback
// variant (envelope mode, standalone). Redis is silent for P (its proxy
// forwards nothing and closes nothing, so no dropped connection forgets
// P's flights; the breaker opens at the first timeout), so P's Get loads
// directly (FailOpen) and parks after it read v1; the source moves to v2
// and a healthy Q's Invalidate(k) returns. P can hear nothing of it. A Get
// through P that starts after it must not get P's older direct load: it
// returns v2, whether that load finishes first or is still parked (then
// the new read waits for it to end — the loads of a key that no push can
// reach run one after the other — and loads again).
func TestCoreFallbackLoadIsNotJoinedAfterAnInvalidation(t *testing.T) {
	t.Parallel()
	for _, order := range releaseOrders {
		t.Run(order.name, func(t *testing.T) {
			t.Parallel()
			src, g := gatedSource()
			ns := namespace(t)
			px := startCoreProxy(t, shared.Addr())
			p := versionCache(t, connectWith(t, px.option(shared.ClientOption())), ns, src, func(o *cache.Options[string, int64]) {
				o.BreakerThreshold, o.BreakerCooldown = 1, time.Hour
			})
			q := versionCache(t, connect(t, shared), ns, src)
			src.set("w", 0)
			warmCopy(t, p, "w")
			px.setMute(true)
			invalidate := func() {
				src.set("k", 2)
				require.NoError(t, q.Invalidate(testContext(t), "k"))
			}
			src.set("k", 1)
			gt := g.park(t, "k", 1)
			old := inBackground(func(ctx context.Context) (int64, error) { return p.Get(ctx, "k") })
			gt.awaitParked(t, "P's direct load")
			invalidate()
			var next <-chan outcome[int64]
			if !order.releaseFirst {
				next = inBackground(func(ctx context.Context) (int64, error) { return p.Get(ctx, "k") })
			}
			gt.free()
			v, err := await(t, old, "the Get whose load was parked")
			require.NoError(t, err)
			assert.EqualValues(t, 1, v, "the parked Get returns the row its load read")
			if next == nil {
				next = inBackground(func(ctx context.Context) (int64, error) { return p.Get(ctx, "k") })
			}
			v, err = await(t, next, "the read after the invalidation")
			require.NoError(t, err)
			assert.EqualValues(t, 2, v, "a read that began after Q's Invalidate returned got the load that began before it")
			assert.Equal(t, 2, g.loadsOf("k"), "the read after the invalidation ran a load of its own")
			assert.Positive(t, p.Stats().Fallbacks, "P's reads went to the loader directly")
		})
	}
}

// TestCorePlainSetEndsTheLease — case 4 (G1, plain mode). P's Get of k parks
// its load after it read v1, holding k's lease key; the source moves to v2
// and Q's Set(k, 2) with a 30ms TTL returns; once Redis no longer holds k
// (the Set's value expired), P's load is freed and its write ends: Redis
// must not hold v1 (the Set ended the lease), and a third process must not
// read v1.
func TestCorePlainSetEndsTheLease(t *testing.T) {
	t.Parallel()
	for _, topo := range topologies() {
		for _, m := range coreModes {
			t.Run(topo.name+"/"+m.name, func(t *testing.T) {
				t.Parallel()
				ctx := testContext(t)
				opt := topo.opt(t)
				src, g := gatedSource()
				src.set("k", 1)
				ns := namespace(t)
				p := versionCache(t, connectWith(t, opt), ns, src, corePlainIf(m.plain))
				q := versionCache(t, connectWith(t, opt), ns, src, corePlainIf(m.plain))
				rc := other(t, opt)

				gt := g.park(t, "k", 1)
				old := inBackground(func(ctx context.Context) (int64, error) { return p.Get(ctx, "k") })
				gt.awaitParked(t, "P's load")
				src.set("k", 2)
				require.NoError(t, q.Set(ctx, "k", 2, cache.WithTTL(30*time.Millisecond)))
				coreAwaitState(t, "the Set's value expires", func() bool { _, ok := rawGet(t, rc, p.Key("k")); return !ok })

				gt.free()
				_, err := await(t, old, "P's Get")
				require.NoError(t, err)
				require.NoError(t, cache.AwaitWrites(ctx, p, "k"))
				v, ok := coreRawVersion(t, rc, p.Key("k"))
				assert.False(t, ok && v == 1, "Redis holds v1, written by a load that read the source before Q's Set")
				third := versionCache(t, connectWith(t, opt), ns, src, corePlainIf(m.plain))
				got, err := third.Get(ctx, "k")
				require.NoError(t, err)
				assert.EqualValues(t, 2, got, "a third process reads what the stale load wrote")
			})
		}
	}
}

// TestCoreRedisRefusingWritesIsUnavailable — case 5 (G6). Redis over its
// maxmemory with noeviction refuses every write (OOM) and answers reads. A
// Get of a key Redis does not hold cannot take its lease: under FailOpen it
// returns the loader's value and writes nothing; under FailFast it fails
// with ErrUnavailable — never with Redis' raw OOM error.
func TestCoreRedisRefusingWritesIsUnavailable(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Config{Args: []string{"--maxmemory-policy", "noeviction"}})
	client := connect(t, srv)
	rc := other(t, srv.ClientOption())
	ctx := testContext(t)
	_, err := srv.Do(ctx, "CONFIG", "SET", "maxmemory", "1")
	require.NoError(t, err)
	err = rc.Do(ctx, rc.B().Set().Key("probe").Value("x").Build()).Error()
	require.ErrorContains(t, err, "OOM", "the server refuses writes")
	_, ok := rawGet(t, rc, "probe")
	require.False(t, ok, "and answers reads")

	for _, m := range coreModes {
		for _, policy := range []cache.RedisDownPolicy{cache.FailOpen, cache.FailFast} {
			name := map[cache.RedisDownPolicy]string{cache.FailOpen: "FailOpen", cache.FailFast: "FailFast"}[policy]
			t.Run(m.name+"/"+name, func(t *testing.T) {
				src := newSource()
				src.set("k", 7)
				c := versionCache(t, client, namespace(t), src, corePlainIf(m.plain), func(o *cache.Options[string, int64]) { o.OnRedisDown = policy })
				v, err := c.Get(ctx, "k")
				if policy == cache.FailFast {
					require.ErrorIs(t, err, cache.ErrUnavailable, "a refusal is Redis in trouble")
					return
				}
				require.NoError(t, err, "FailOpen answers from the loader")
				assert.EqualValues(t, 7, v)
				require.NoError(t, cache.AwaitWrites(ctx, c, "k"))
				_, ok := rawGet(t, rc, c.Key("k"))
				assert.False(t, ok, "nothing written")
			})
		}
	}
}

// TestCoreLostInvalidationIsHonoured — case 6 (G3 when Invalidate fails).
// k holds v1 in Redis and in the memory of two caches of P; the source moves
// to v2; P's Invalidate(k) (Cache.Invalidate, or Client.Invalidate) loses
// its DEL: the proxy resets the connection upon seeing it, and stays down.
// Invalidate returns an error and Redis still holds v1. Then no Get of k
// through either cache returns v1: while Redis is unreachable, and after
// it is reachable again; and Redis ends up without v1 (the invalidation is
// sent again).
func TestCoreLostInvalidationIsHonoured(t *testing.T) {
	t.Parallel()
	for _, m := range coreModes {
		for _, via := range []string{"cache", "client"} {
			t.Run(m.name+"/"+via, func(t *testing.T) {
				t.Parallel()
				ctx := testContext(t)
				src := newSource()
				src.set("k", 1)
				ns := namespace(t)
				px := startCoreProxy(t, shared.Addr())
				client := connectWith(t, px.option(shared.ClientOption()))
				p := versionCache(t, client, ns, src, corePlainIf(m.plain))
				p2 := versionCache(t, client, ns, src, corePlainIf(m.plain))
				rc := other(t, shared.ClientOption())
				require.EqualValues(t, 1, warmCopy(t, p, "k"))
				require.EqualValues(t, 1, warmCopy(t, p2, "k"))

				src.set("k", 2)
				px.downOn("\r\nDEL\r\n")
				var err error
				if via == "cache" {
					err = p.Invalidate(ctx, "k")
				} else {
					_, err = client.Invalidate(ctx, cache.Keys(p, "k"))
				}
				require.Error(t, err, "the DEL was lost")
				v, ok := coreRawVersion(t, rc, p.Key("k"))
				require.True(t, ok && v == 1, "Redis still holds v1")

				read := func(phase string) {
					for _, c := range []*cache.Cache[string, int64]{p, p2, p} {
						got, err := within(t, phase, func(ctx context.Context) (int64, error) { return c.Get(ctx, "k") })
						require.NoError(t, err, phase)
						require.EqualValues(t, 2, got, "%s: a Get after the process's own (failed) Invalidate returned the old version", phase)
					}
				}
				read("Redis unreachable")
				px.setDown(false)
				read("Redis reachable again")
				coreAwaitState(t, "the invalidation sent again", func() bool { v, ok := coreRawVersion(t, rc, p.Key("k")); return !ok || v != 1 })
				read("after the invalidation reached Redis")
			})
		}
	}
}

// TestCoreCopyDoesNotOutliveItsKey — case 7 (G4: a copy never outlives its
// key's expiry in Redis). k holds v1 with a 2s TTL; P's proxy holds back
// what the server sends, so P's visit reads v1 and its PTTL in Redis, and
// its reply waits at the proxy until the key has expired in Redis. Then the
// reply alone is let through (the push of the expiry, sent after it, is held
// still): once Redis no longer holds k, a Get through P must not be served
// v1 from process memory — an expiry counted from the reply's arrival
// outlives the key by the reply's delivery time.
func TestCoreCopyDoesNotOutliveItsKey(t *testing.T) {
	t.Parallel()
	for _, m := range coreModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			src := newSource()
			src.set("k", 1)
			ns := namespace(t)
			px := startCoreProxy(t, shared.Addr())
			slow := func(o *cache.Options[string, int64]) {
				o.Plain, o.RedisTimeout, o.MaxSilence = m.plain, patience, time.Minute
				// The hit path reads time.Now, not the 1ms coarse clock,
				// whose lag (longer on a busy machine) is not what this
				// case is about.
				o.Now = time.Now
			}
			p := versionCache(t, connectWith(t, px.option(shared.ClientOption())), ns, src, slow)
			q := versionCache(t, connect(t, shared), ns, src, corePlainIf(m.plain))
			rc := other(t, shared.ClientOption())
			src.set("w", 0)
			warmCopy(t, p, "w") // P's connections are up before the latency
			require.NoError(t, q.Set(ctx, "k", 1, cache.WithTTL(2*time.Second)))
			src.set("k", 2)

			px.holdReplies()
			first := inBackground(func(ctx context.Context) (int64, error) { return p.Get(ctx, "k") })
			coreAwaitState(t, "the visit's reply is held", func() bool { return px.held() > 0 })
			coreAwaitState(t, "k expires in Redis", func() bool { _, ok := rawGet(t, rc, p.Key("k")); return !ok })
			px.releaseArrived()
			v, err := await(t, first, "the Get whose reply was held")
			require.NoError(t, err)
			require.EqualValues(t, 1, v, "the visit read k before it expired")
			defer px.releaseAll()
			before := p.Stats()
			v, err = p.Get(ctx, "k")
			require.NoError(t, err)
			local, _ := hitsSince(before, p.Stats())
			assert.False(t, v == 1 && local > 0, "served v1 from process memory after its key expired in Redis")
			assert.EqualValues(t, 2, v)
		})
	}
}
