package flight_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/internal/flight"
)

func TestClaimLeadsOnceAndJoinersWait(t *testing.T) {
	t.Parallel()
	var g flight.Group[string]
	lead, ok := g.Claim("k")
	require.True(t, ok)

	second, ok := g.Claim("k")
	require.False(t, ok, "a flight is in progress")

	// Do joins the claimed flight instead of running its function.
	var wg sync.WaitGroup
	wg.Add(1)
	var doV string
	var doShared bool
	var doErr error
	go func() {
		defer wg.Done()
		doV, doShared, doErr = g.Do(context.Background(), "k", func(context.Context) (string, error) {
			return "from do", nil
		})
	}()
	for flight.Waiters(&g, "k") < 3 { // leader + second + the Do caller
		runtime.Gosched()
	}
	lead.Finish("v", nil)
	lead.Finish("ignored", errors.New("ignored"))
	v, err := second.Wait(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "v", v)
	wg.Wait()
	require.NoError(t, doErr)
	assert.Equal(t, "v", doV)
	assert.True(t, doShared)

	// Finished: the next Claim leads a new flight.
	again, ok := g.Claim("k")
	require.True(t, ok)
	again.Finish("", nil)
}

func TestClaimWaitLeavesOnContext(t *testing.T) {
	t.Parallel()
	var g flight.Group[int]
	lead, ok := g.Claim("k")
	require.True(t, ok)
	joiner, ok := g.Claim("k")
	require.False(t, ok)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := joiner.Wait(ctx)
	require.ErrorIs(t, err, context.Canceled)

	// The leader's result is still published to later joiners.
	late, ok := g.Claim("k")
	require.False(t, ok)
	lead.Finish(7, nil)
	v, err := late.Wait(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 7, v)
}

func TestClaimAfterForgetStartsANewFlight(t *testing.T) {
	t.Parallel()
	var g flight.Group[int]
	first, ok := g.Claim("k")
	require.True(t, ok)
	g.Forget("k")
	second, ok := g.Claim("k")
	require.True(t, ok, "Forget lets the next caller lead")
	second.Finish(2, nil)
	first.Finish(1, nil)
	third, ok := g.Claim("k")
	require.True(t, ok, "the old flight's Finish left the table alone")
	third.Finish(3, nil)
}

// ClaimAll is Claim of each key: it leads the keys not in flight, joins the
// one that is, and its flights are finished one by one.
func TestClaimAll(t *testing.T) {
	t.Parallel()
	var g flight.Group[string]
	busy, ok := g.Claim("b")
	require.True(t, ok)
	keys := []string{"a", "b", "c"}
	fls, leads := make([]*flight.Flight[string], 3), make([]bool, 3)
	g.ClaimAll(keys, fls, leads)
	assert.Equal(t, []bool{true, false, true}, leads)
	again, ok := g.Claim("a")
	require.False(t, ok, "a is in flight")
	fls[0].Finish("A", nil)
	v, err := again.Wait(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "A", v)
	busy.Finish("B", nil)
	v, err = fls[1].Wait(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "B", v, "the joined flight gets its leader's result")
	fls[2].Finish("", errors.New("c failed"))
	_, ok = g.Claim("c")
	assert.True(t, ok, "a finished flight leaves the table")
}
