package cache_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
