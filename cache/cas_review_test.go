package cache_test

// The compare-and-set writes (cas.go) against what would break them: found by review.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/asidetest"
	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/internal/keyname"
	"github.com/aside-go/aside/internal/redistest"
)

// casUser starts bin with a user "app" of the README's ACL line for ns
// (no DELIFEQ, no DELEX) and connects a client as that user.
func casUser(t *testing.T, bin, ns string) (*redistest.Server, *cache.Client) {
	t.Helper()
	srv := redistest.Start(t, redistest.Config{Binary: bin, Users: []redistest.User{{
		Name: "app", Password: "secret", Rules: redistest.CacheUserRules(ns),
	}}})
	opt := srv.ClientOption()
	opt.Username, opt.Password = "app", "secret"
	return srv, connectWith(t, opt)
}

// When the client may use SET IFEQ but not the deletion (Valkey 8.1, or a
// user whose ACL refused DELIFEQ/DELEX once), a release is a script inside
// casWrites' pipeline, and its reply is the release's: it runs once (it
// ran twice once, the second run finding the lease gone and reporting "not
// deleted").
func TestCASScriptInCASPipelineRunsOnce(t *testing.T) {
	t.Parallel()
	for name, bin := range casServers(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			ns := namespace(t)
			srv, client := casUser(t, bin, ns)
			boom := errors.New("boom")
			failing := versionCache(t, client, ns, newSource(), func(o *cache.Options[string, int64]) {
				o.Loader = func(context.Context, string) (int64, error) { return 0, boom }
			})
			// The first release meets NOPERM: releases are scripts from
			// now on, writes stay transactions.
			_, err := failing.Get(ctx, "f0")
			require.ErrorIs(t, err, boom)
			require.NoError(t, cache.AwaitWrites(ctx, failing, "f0"))
			setIfEq, delIfEq := cache.CompareAndSet(client)
			require.True(t, setIfEq)
			require.False(t, delIfEq)

			before := commandCalls(t, srv)
			_, err = failing.Get(ctx, "f1")
			require.ErrorIs(t, err, boom)
			require.NoError(t, cache.AwaitWrites(ctx, failing, "f1"))
			after := commandCalls(t, srv)
			n, err := srv.Do(ctx, "EXISTS", failing.Key("f1"))
			require.NoError(t, err)
			assert.Equal(t, "0", n, "the lease is gone")
			assert.Equal(t, 1, after["evalsha"]-before["evalsha"], "one release, one script run")
		})
	}
}

// serverCAS checks MULTI and EXEC against the ACL once, at Connect. A node
// whose ACL lacks them later (an ACL changed at run time, a node added with
// the README's older line, whose rules are per node):
//
//   - without +multi, MULTI is refused and PTTL, SET IFEQ, PTTL run one by
//     one (the SET writes): the write counts as written, but its key may not
//     be tracked for the next change, so no copy is kept;
//   - without +exec, EXEC answers EXECABORT (NOPERM): nothing ran, and the
//     write goes again as the script.
//
// Either way the client stops sending transactions.
func TestCASTransactionRefusedAfterConnect(t *testing.T) {
	t.Parallel()
	for name, bin := range casServers(t) {
		for _, rule := range []string{"-multi", "-exec"} {
			t.Run(name+rule, func(t *testing.T) {
				t.Parallel()
				ctx := testContext(t)
				ns := namespace(t)
				srv, client := casUser(t, bin, ns)
				setIfEq, _ := cache.CompareAndSet(client)
				require.True(t, setIfEq)
				_, err := srv.Do(ctx, "ACL", "SETUSER", "app", rule)
				require.NoError(t, err)

				src := newSource()
				src.set("k", 1)
				p := versionCache(t, client, ns, src)
				v, err := p.Get(ctx, "k")
				require.NoError(t, err)
				require.Equal(t, int64(1), v)
				require.NoError(t, cache.AwaitWrites(ctx, p, "k"))
				q := versionCache(t, connect(t, srv), ns, newSource())
				v, err = q.Get(ctx, "k")
				require.NoError(t, err)
				assert.Equal(t, int64(1), v, "the loaded value is in Redis")
				assert.Zero(t, q.Stats().Loads, "another process finds the value, not a lease")
				s := p.Stats()
				assert.Zero(t, s.WriteErrors, "the write did not fail")
				assert.Zero(t, s.DiscardedFills, "the write was not discarded")
				setIfEq, _ = cache.CompareAndSet(client)
				assert.False(t, setIfEq, "the client stopped sending transactions")
				if rule == "-multi" {
					_, err = p.Get(ctx, "k")
					require.NoError(t, err)
					assert.Equal(t, s.LocalHits, p.Stats().LocalHits, "no copy of a write whose key may be untracked")
				}
			})
		}
	}
}

// cutter cuts, once armed, the first connection of a proxy that sends a
// SET ... IFEQ transaction: before EXEC reaches Redis (afterExec false:
// Redis discards the transaction) or right after (afterExec true: Redis
// runs it, its replies and pushes are lost).
type cutter struct {
	afterExec bool
	armed     atomic.Bool
	cut       chan struct{}
}

// intercept is the cutter as a tcpProxy's intercept.
func (c *cutter) intercept(data []byte) (forward, held []byte, cut bool) {
	const exec = "*1\r\n$4\r\nEXEC\r\n"
	i := bytes.Index(data, []byte("$4\r\nIFEQ\r\n"))
	if !c.armed.Load() || i < 0 {
		return data, nil, false
	}
	j := bytes.Index(data[i:], []byte(exec))
	if j < 0 {
		return nil, data, false // the rest of the transaction is to come
	}
	if !c.armed.CompareAndSwap(true, false) {
		return data, nil, false
	}
	end := i + j
	if c.afterExec {
		end += len(exec)
	}
	close(c.cut)
	return data[:end], nil, true
}

// A connection that drops in the middle of the transaction (before EXEC:
// nothing ran; or after it: it ran and the reply was lost) leaves no copy
// that another process's change would not reach, and the value in Redis is
// the loaded one.
func TestCASConnectionDropsInsideTransaction(t *testing.T) {
	t.Parallel()
	for name, bin := range casServers(t) {
		for _, afterExec := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/afterExec=%v", name, afterExec), func(t *testing.T) {
				t.Parallel()
				ctx := testContext(t)
				ns := namespace(t)
				srv := redistest.Start(t, redistest.Config{Binary: bin})
				px := &cutter{afterExec: afterExec, cut: make(chan struct{})}
				opt := srv.ClientOption()
				opt.InitAddress = []string{startInterceptingProxy(t, srv.Addr(), px.intercept).addr()}
				pc, w := watchedClient(t, opt)
				setIfEq, _ := cache.CompareAndSet(pc)
				require.True(t, setIfEq)
				src := newSource()
				p := versionCache(t, pc, ns, src)
				q := versionCache(t, connect(t, srv), ns, src)

				src.set("k", 1)
				px.armed.Store(true)
				v, err := p.Get(ctx, "k")
				require.NoError(t, err)
				require.Equal(t, int64(1), v)
				select {
				case <-px.cut:
				case <-ctx.Done():
					t.Fatal("the transaction was not cut")
				}
				require.NoError(t, cache.AwaitWrites(ctx, p, "k"))
				raw, err := srv.Do(ctx, "EXISTS", p.Key("k"))
				require.NoError(t, err)
				require.Equal(t, "1", raw)
				v, err = q.Get(ctx, "k")
				require.NoError(t, err)
				assert.Equal(t, int64(1), v, "the loaded value is in Redis")
				assert.Zero(t, q.Stats().Loads)

				// p may hold a copy; another process's change reaches it.
				_, err = p.Get(ctx, "k")
				require.NoError(t, err)
				_, err = p.Get(ctx, "k", cache.SkipLocal())
				require.NoError(t, err)
				src.set("k", 2)
				mark := w.mark(p.Key("k"))
				require.NoError(t, q.Set(ctx, "k", 2))
				w.awaitPushOf(t, mark, "q's Set")
				v, err = p.Get(ctx, "k")
				require.NoError(t, err)
				assert.Equal(t, int64(2), v)
			})
		}
	}
}

// A load's write meets its slot half moved (ASK: the lease was migrated to
// the target) or moved (MOVED): the value must land under the lease, and the
// copy p keeps must be reached by q's later change. On a cluster the write
// is the script: as a transaction it failed on Valkey 9 with ASK (Valkey
// queues PTTL and SET of a key missing from a MIGRATING slot and answers
// EXEC itself with -ASK; rueidis then sends EXEC alone to the target, which
// answers "EXEC without MULTI"), leaving the lease until LeaseTTL.
func TestCASTransactionDuringReshard(t *testing.T) {
	t.Parallel()
	for name, bin := range casServers(t) {
		for _, ask := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/ask=%v", name, ask), func(t *testing.T) {
				t.Parallel()
				ctx := testContext(t)
				ns := namespace(t)
				cl := redistest.StartCluster(t, redistest.ClusterConfig{Primaries: 2, Server: redistest.Config{Binary: bin}})
				pc, w := watchedClient(t, cl.ClientOption())
				setIfEq, delIfEq := cache.CompareAndSet(pc)
				require.False(t, setIfEq || delIfEq, "a cluster client writes with the script")
				src, g := gatedSource()
				p := versionCache(t, pc, ns, src)
				q := versionCache(t, connect(t, cl), ns, src)

				slot := int(keyname.Slot(p.Key("k")))
				from, err := cl.SlotOwner(ctx, cl.Primaries()[0], slot)
				require.NoError(t, err)
				to := cl.Primaries()[0]
				if to == from {
					to = cl.Primaries()[1]
				}
				src.set("k", 1)
				gt := g.park(t, "k", 1)
				read := inBackground(func(ctx context.Context) (int64, error) { return p.Get(ctx, "k") })
				gt.awaitParked(t, "the load of k")
				before := commandCalls(t, to)
				write := func() {
					gt.free()
					v, err := await(t, read, "the parked load")
					require.NoError(t, err)
					require.Equal(t, int64(1), v)
					require.NoError(t, cache.AwaitWrites(ctx, p, "k"))
				}
				calls := 0
				require.NoError(t, cl.MoveSlot(ctx, slot, to, redistest.MoveOptions{Between: func(context.Context) error {
					if calls++; calls == 2 && ask {
						write() // the lease is on the target, the slot half moved
					}
					return nil
				}}))
				require.NoError(t, cl.Wait(ctx))
				if !ask {
					write()
				}
				after := commandCalls(t, to)
				assert.Greater(t, after["evalsha"], before["evalsha"], "the write was the script, on the target")
				v, err := q.Get(ctx, "k")
				require.NoError(t, err)
				assert.Equal(t, int64(1), v)
				assert.Zero(t, q.Stats().Loads, "the value was written, not left as a lease")

				_, err = p.Get(ctx, "k", cache.SkipLocal())
				require.NoError(t, err)
				src.set("k", 2)
				mark := w.mark(p.Key("k"))
				require.NoError(t, q.Set(ctx, "k", 2))
				w.awaitPushOf(t, mark, "q's Set")
				v, err = p.Get(ctx, "k")
				require.NoError(t, err)
				assert.Equal(t, int64(2), v)
			})
		}
	}
}

// The SET inside the transaction refused (OOM under maxmemory, queued
// before EXEC; WRONGTYPE, at EXEC): nothing written, no copy kept, and a
// release under OOM still deletes the lease (DELIFEQ/DELEX are not
// deny-oom).
func TestCASTransactionSetRefused(t *testing.T) {
	t.Parallel()
	for name, bin := range casServers(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			ns := namespace(t)
			srv := redistest.Start(t, redistest.Config{Binary: bin})
			client, w := watchedClient(t, srv.ClientOption())
			src, g := gatedSource()
			p := versionCache(t, client, ns, src)
			q := versionCache(t, connect(t, srv), ns, src)

			for _, how := range []string{"oom", "wrongtype"} {
				key := "k-" + how
				src.set(key, 1)
				gt := g.park(t, key, 1)
				read := inBackground(func(ctx context.Context) (int64, error) { return p.Get(ctx, key) })
				gt.awaitParked(t, "the load")
				if how == "oom" {
					_, err := srv.Do(ctx, "CONFIG", "SET", "maxmemory", "1")
					require.NoError(t, err)
				} else {
					_, err := srv.Do(ctx, "DEL", p.Key(key))
					require.NoError(t, err)
					_, err = srv.Do(ctx, "RPUSH", p.Key(key), "x")
					require.NoError(t, err)
				}
				gt.free()
				v, err := await(t, read, "the parked load")
				require.NoError(t, err)
				assert.Equal(t, int64(1), v)
				require.NoError(t, cache.AwaitWrites(ctx, p, key))
				typ, err := srv.Do(ctx, "TYPE", p.Key(key))
				require.NoError(t, err)
				if how == "oom" {
					assert.Equal(t, "string", typ, "the lease stays")
					assert.Equal(t, uint64(1), p.Stats().WriteErrors)
					// A release under OOM deletes its lease.
					failing := versionCache(t, client, ns, src, func(o *cache.Options[string, int64]) {
						o.Loader = func(context.Context, string) (int64, error) { return 0, errors.New("boom") }
					})
					_, err = failing.Get(ctx, "f")
					require.Error(t, err)
					require.NoError(t, cache.AwaitWrites(ctx, failing, "f"))
					n, err := srv.Do(ctx, "EXISTS", p.Key("f"))
					require.NoError(t, err)
					assert.Equal(t, "0", n, "the release deleted the lease under OOM")
					_, err = srv.Do(ctx, "CONFIG", "SET", "maxmemory", "0")
					require.NoError(t, err)
					_, err = srv.Do(ctx, "DEL", p.Key(key))
					require.NoError(t, err)
				} else {
					assert.Equal(t, "list", typ)
					_, err = srv.Do(ctx, "DEL", p.Key(key))
					require.NoError(t, err)
				}
				// No copy: the next read goes to Redis and loads 2.
				src.set(key, 2)
				v, err = p.Get(ctx, key)
				require.NoError(t, err)
				assert.Equal(t, int64(2), v, how)
				require.NoError(t, cache.AwaitWrites(ctx, p, key))
				_, err = p.Get(ctx, key, cache.SkipLocal())
				require.NoError(t, err)
				src.set(key, 3)
				mark := w.mark(p.Key(key))
				require.NoError(t, q.Set(ctx, key, 3))
				w.awaitPushOf(t, mark, "q's Set")
				v, err = p.Get(ctx, key)
				require.NoError(t, err)
				assert.Equal(t, int64(3), v)
			}
		})
	}
}

// Batches at rueidis' BlockingPipeline (2000 commands: 400 transactions of
// 5) and just under it, and in plain mode: every value is written, each
// write's echo is matched (the copies stay: a second GetMany is served from
// process memory), and plain mode sends no transaction.
func TestCASBatchWrites(t *testing.T) {
	t.Parallel()
	for name, bin := range casServers(t) {
		for _, tc := range []struct {
			n     int
			plain bool
		}{{399, false}, {400, false}, {50, true}} {
			t.Run(fmt.Sprintf("%s/n=%d/plain=%v", name, tc.n, tc.plain), func(t *testing.T) {
				t.Parallel()
				ctx := testContext(t)
				ns := namespace(t)
				srv := redistest.Start(t, redistest.Config{Binary: bin})
				src := newSource()
				p := versionCache(t, connect(t, srv), ns, src, func(o *cache.Options[string, int64]) { o.Plain = tc.plain })
				keys := make([]string, tc.n)
				for i := range keys {
					keys[i] = fmt.Sprintf("k%d", i)
					src.set(keys[i], int64(i))
				}
				before := commandCalls(t, srv)
				got, err := p.GetMany(ctx, keys)
				require.NoError(t, err)
				require.Len(t, got, tc.n)
				require.NoError(t, cache.AwaitWrites(ctx, p, keys...))
				after := commandCalls(t, srv)
				t.Logf("exec %d, evalsha %d", after["exec"]-before["exec"], after["evalsha"]-before["evalsha"])
				if tc.plain {
					assert.Equal(t, before["exec"], after["exec"], "plain mode writes with its script")
				}
				hits := p.Stats().LocalHits
				got, err = p.GetMany(ctx, keys)
				require.NoError(t, err)
				for i, k := range keys {
					require.Equal(t, int64(i), got[k])
				}
				assert.Equal(t, uint64(tc.n), p.Stats().LocalHits-hits, "every copy the loads wrote is kept")
			})
		}
	}
}

// On a cluster, a batch of one slot (hash tags) writes transactions in one
// pipeline, one spanning slots writes scripts (rueidis would refuse a
// pipeline holding a transaction across slots): either way every value is
// written and every copy kept.
func TestCASClusterBatchWrites(t *testing.T) {
	t.Parallel()
	for name, bin := range casServers(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			ns := namespace(t)
			cl := redistest.StartCluster(t, redistest.ClusterConfig{Primaries: 2, Server: redistest.Config{Binary: bin}})
			src := newSource()
			p := versionCache(t, connect(t, cl), ns, src)
			for _, tagged := range []bool{true, false} {
				keys := make([]string, 30)
				for i := range keys {
					if tagged {
						keys[i] = fmt.Sprintf("{t}%d", i)
					} else {
						keys[i] = fmt.Sprintf("u%d", i)
					}
					src.set(keys[i], int64(i))
				}
				got, err := p.GetMany(ctx, keys)
				require.NoError(t, err)
				require.Len(t, got, len(keys))
				require.NoError(t, cache.AwaitWrites(ctx, p, keys...))
				hits := p.Stats().LocalHits
				got, err = p.GetMany(ctx, keys)
				require.NoError(t, err)
				for i, k := range keys {
					require.Equal(t, int64(i), got[k])
				}
				assert.Equal(t, uint64(len(keys)), p.Stats().LocalHits-hits, "tagged=%v: every copy kept", tagged)
			}
			assert.Zero(t, p.Stats().WriteErrors)
		})
	}
}

// A refresh writes in place of the entry it claimed, as a transaction: it
// writes when nothing changed, and not when another process's Set replaced
// the claimed entry while the refresh loaded.
func TestCASRefreshWriteInPlaceOfClaim(t *testing.T) {
	t.Parallel()
	for name, bin := range casServers(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			ns := namespace(t)
			srv := redistest.Start(t, redistest.Config{Binary: bin})
			clock := asidetest.NewClock(time.Now())
			src, g := gatedSource()
			p := versionCache(t, connect(t, srv), ns, src, refreshOpts(clock))
			q := versionCache(t, connect(t, srv), ns, src, refreshOpts(clock))

			for _, k := range []string{"a", "b"} {
				src.set(k, 1)
				_, err := p.Get(ctx, k)
				require.NoError(t, err)
				require.NoError(t, cache.AwaitWrites(ctx, p, k))
			}
			clock.Add(6 * time.Minute)

			// a: refreshed, written as a transaction.
			src.set("a", 2)
			before := commandCalls(t, srv)
			v, err := p.Get(ctx, "a")
			require.NoError(t, err)
			assert.Equal(t, int64(2), v)
			require.NoError(t, cache.AwaitWrites(ctx, p, "a"))
			after := commandCalls(t, srv)
			assert.Greater(t, after["exec"], before["exec"], "the refresh's write is a transaction")
			v, err = q.Get(ctx, "a", cache.SkipLocal())
			require.NoError(t, err)
			assert.Equal(t, int64(2), v)

			// b: overtaken by q's Set while it loads: not written.
			src.set("b", 2)
			gt := g.park(t, "b", 2)
			read := inBackground(func(ctx context.Context) (int64, error) { return p.Get(ctx, "b") })
			gt.awaitParked(t, "the refresh's load")
			src.set("b", 3)
			require.NoError(t, q.Set(ctx, "b", 3))
			gt.free()
			_, err = await(t, read, "the refreshing Get")
			require.NoError(t, err)
			require.NoError(t, cache.AwaitWrites(ctx, p, "b"))
			v, err = q.Get(ctx, "b", cache.SkipLocal())
			require.NoError(t, err)
			assert.Equal(t, int64(3), v, "the refresh did not overwrite q's Set")
			v, err = p.Get(ctx, "b")
			require.NoError(t, err)
			assert.Equal(t, int64(3), v)
		})
	}
}
