package cache_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/internal/redistest"
)

// TestSentinelConnect builds aside through Sentinel and checks the basics
// between two processes: a load, a read from Redis, and a Set of one
// process pushed to the other.
func TestSentinelConnect(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	g := redistest.StartSentinel(t, redistest.SentinelConfig{})
	opt := g.ClientOption()
	src := newSource()
	src.set("k", 1)
	ns := namespace(t)
	pc, pushes := watchedClient(t, opt)
	p := versionCache(t, pc, ns, src)
	q := versionCache(t, connectWith(t, opt), ns, src)

	v, err := p.Get(ctx, "k")
	require.NoError(t, err)
	assert.EqualValues(t, 1, v)
	require.NoError(t, p.AwaitWrites(ctx, "k"))
	loads := src.loads.Load()
	v, err = q.Get(ctx, "k")
	require.NoError(t, err)
	assert.EqualValues(t, 1, v)
	assert.Equal(t, loads, src.loads.Load(), "the second process read the first one's value from Redis")
	master, err := g.Master(ctx)
	require.NoError(t, err)
	assert.Equal(t, g.Servers()[0], master)
	assert.Equal(t, []string{master.Addr()}, slices.Collect(maps.Keys(pc.Rueidis().Nodes())), "the client talks to the master")

	warmCopy(t, p, "k")
	m := pushes.mark(p.Key("k"))
	src.set("k", 2)
	require.NoError(t, q.Set(ctx, "k", 2))
	pushes.awaitKey(t, m, "the first process hears of the second one's Set")
	v, err = p.Get(ctx, "k")
	require.NoError(t, err)
	assert.EqualValues(t, 2, v, "the first process reads the second one's Set")
}

// TestSentinelFailoverWorkload runs the topology workload through Sentinel
// in two processes while the primary fails over — asked of a Sentinel
// (SENTINEL FAILOVER) or killed — and checks: errors during the failover
// only of the documented classes; once every Sentinel names the new
// primary and both clients talk to it, every process reads every key at
// the source's version (after repairing, by invalidating, any write the
// failover lost: replication is asynchronous, and the old primary takes
// writes until the clients hear of the switch), and a workload after that
// sees no stale read, then the final audit.
func TestSentinelFailoverWorkload(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"failover", "kill"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			g := redistest.StartSentinel(t, redistest.SentinelConfig{})
			opt := g.ClientOption()
			names := make([]string, 16)
			for i := range names {
				names[i] = fmt.Sprintf("key%d", i)
			}
			r := newTopoRun(t, opt, names, 2, false)

			settled := make(chan struct{})
			var (
				moveErr error
				took    time.Duration
				next    string
			)
			go func() {
				defer close(settled)
				if moveErr = r.awaitOps(ctx, 300); moveErr != nil {
					return
				}
				old, err := g.Master(ctx)
				if moveErr = err; err != nil {
					return
				}
				start := time.Now()
				r.setPhase(topoDuring)
				var m *redistest.Server
				if how == "kill" {
					if moveErr = old.Kill(); moveErr != nil {
						return
					}
					m, moveErr = g.WaitFailover(ctx, old)
				} else {
					m, moveErr = g.Failover(ctx)
				}
				if moveErr != nil {
					return
				}
				next = m.Addr()
				moveErr = r.awaitClientsOn(ctx, next)
				took = time.Since(start)
			}()
			r.run(ctx, 3, 4, func() bool {
				select {
				case <-settled:
					return true
				default:
					return false
				}
			})
			<-settled
			require.NoError(t, moveErr, "failover")
			t.Logf("%s: the new master %s settled, and both clients on it, after %v", how, next, took.Round(time.Millisecond))
			lost := r.settle(ctx, opt, true)
			t.Logf("%s: %d keys had lost their last write in the failover", how, lost)

			r.setPhase(topoAfter)
			r.runWrites(ctx, 3, 4, 600)
			r.report()
			if t.Failed() {
				return
			}
			r.audit(ctx, opt)
		})
	}
}

// awaitClientsOn waits until every process's client sends its commands to
// addr alone.
func (r *topoRun) awaitClientsOn(ctx context.Context, addr string) error {
	return pollFor(ctx, func() error {
		for _, p := range r.procs {
			if nodes := slices.Sorted(maps.Keys(p.client.Rueidis().Nodes())); !slices.Equal(nodes, []string{addr}) {
				return fmt.Errorf("process %d talks to %v, not %s", p.id, nodes, addr)
			}
		}
		return nil
	})
}

// pollFor checks cond every few milliseconds until it holds or ctx ends.
func pollFor(ctx context.Context, cond func() error) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ctx.Err(), err)
		case <-tick.C:
		}
	}
}
