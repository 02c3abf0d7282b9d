package cache_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/internal/keyname"
	"github.com/aside-go/aside/internal/redistest"
)

// TestReshardWorkload runs the topology workload on a 3-primary cluster
// while the slots of its keys move from primary to primary, each move
// paused (while the slot is half moved: IMPORTING on the target, MIGRATING
// on the source, some keys on each) until the workload made more
// operations, so that reads, loads, their writes, Sets and Invalidates meet
// ASK, TRYAGAIN and MOVED. It checks: errors only of the documented
// classes; once the moves ended and every node agrees on the slot map,
// Redis holds no stale value and every process reads every key at the
// source's version; a workload after that sees no stale read; the final
// audit; and no lease is left behind on any node once the loads' writes
// ended.
func TestReshardWorkload(t *testing.T) {
	t.Parallel()
	for _, m := range staleModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			cl := redistest.StartCluster(t, redistest.ClusterConfig{Primaries: 3})
			opt := cl.ClientOption()
			primaries := cl.Primaries()
			// Five keys in each of four slots, chosen by hash tag.
			var names []string
			for _, tag := range []string{"a", "b", "c", "d"} {
				for i := range 5 {
					names = append(names, fmt.Sprintf("{%s}%d", tag, i))
				}
			}
			r := newTopoRun(t, opt, names, 2, m.plain)
			var slots []int
			for _, name := range names {
				if s := int(keyname.Slot(r.procs[0].c.Key(name))); !slices.Contains(slots, s) {
					slots = append(slots, s)
				}
			}
			require.Len(t, slots, 4)

			const rounds = 3
			settled := make(chan struct{})
			var moveErr error
			moves := 0
			go func() {
				defer close(settled)
				if moveErr = r.awaitOps(ctx, 300); moveErr != nil {
					return
				}
				r.setPhase(topoDuring)
				between := func(ctx context.Context) error { return r.awaitOps(ctx, 30) }
				for range rounds {
					for _, s := range slots {
						from, err := cl.SlotOwner(ctx, primaries[0], s)
						if moveErr = err; err != nil {
							return
						}
						to := primaries[(slices.Index(primaries, from)+1)%len(primaries)]
						if moveErr = cl.MoveSlot(ctx, s, to, redistest.MoveOptions{Batch: 2, Between: between}); moveErr != nil {
							return
						}
						moves++
					}
				}
				moveErr = cl.Wait(ctx)
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
			require.NoError(t, moveErr, "resharding")
			t.Logf("%d slot moves of %d slots", moves, len(slots))
			r.settle(ctx, opt, false)

			r.setPhase(topoAfter)
			r.runWrites(ctx, 3, 4, 600)
			r.report()
			if t.Failed() {
				return
			}
			r.audit(ctx, opt)
			r.awaitWrites(ctx)
			left := r.leasesLeft(ctx, primaries)
			assert.Empty(t, left, "leases left behind once every load's write ended")
		})
	}
}

// A slot half moved answers TRYAGAIN to a command of several of its keys
// when only some of them are on the node, as a plain-mode Set (the value
// key, which exists, and its lease key, which does not) meets. Redis
// answered: the call fails with ErrUnavailable, to be retried, but the
// breaker, which is for a Redis that does not answer, stays closed, and the
// client's other keys are served.
func TestTryAgainDoesNotTripTheBreaker(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	cl := redistest.StartCluster(t, redistest.ClusterConfig{Primaries: 3})
	c := versionCache(t, connectWith(t, cl.ClientOption()), namespace(t), newSource(), func(o *cache.Options[string, int64]) {
		o.Plain = true
	})
	require.NoError(t, c.Set(ctx, "{m}k", 1))
	require.NoError(t, c.Set(ctx, "{o}k", 1))
	slot := int(keyname.Slot(c.Key("{m}k")))
	require.NotEqual(t, slot, int(keyname.Slot(c.Key("{o}k"))))
	primaries := cl.Primaries()
	from, err := cl.SlotOwner(ctx, primaries[0], slot)
	require.NoError(t, err)
	to := primaries[(slices.Index(primaries, from)+1)%len(primaries)]
	tries := 0
	err = cl.MoveSlot(ctx, slot, to, redistest.MoveOptions{Between: func(ctx context.Context) error {
		if tries > 0 {
			return nil // the key moved: the rest of the move
		}
		// The slot is MIGRATING, every key still on the source.
		for range 15 { // three times the default BreakerThreshold
			tries++
			err := c.Set(ctx, "{m}k", 2)
			require.ErrorIs(t, err, cache.ErrUnavailable)
			require.ErrorContains(t, err, "TRYAGAIN")
		}
		st := c.Stats()
		assert.False(t, st.BreakerOpen, "TRYAGAIN opened the breaker")
		assert.Zero(t, st.BreakerTrips)
		assert.NoError(t, c.Set(ctx, "{o}k", 2), "a key of another slot")
		return nil
	}})
	require.NoError(t, err)
	require.NoError(t, cl.Wait(ctx))
	require.NoError(t, c.Set(ctx, "{m}k", 3), "once the slot moved")
	v, err := c.Get(ctx, "{m}k", cache.SkipLocal())
	require.NoError(t, err)
	assert.Equal(t, int64(3), v)
}
