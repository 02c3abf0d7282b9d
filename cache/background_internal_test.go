package cache

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type ctxKey struct{}

// TestDetached: a detached context keeps the caller's values, outlives the
// caller's cancellation, and ends with the client's Close, at its deadline,
// or when cancelled; a context made from it hangs on its cancellation as on
// any cancelable parent, without a goroutine of its own.
func TestDetached(t *testing.T) {
	closing, closeClient := context.WithCancel(context.Background())
	b := &background{closing: closing}
	caller, cancelCaller := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "request-id"))

	dctx, cancel := b.detached(caller, 0)
	defer cancel()
	assert.Equal(t, "request-id", dctx.Value(ctxKey{}), "the caller's values")
	cancelCaller()
	require.NoError(t, dctx.Err(), "not ended by the caller")
	_, has := dctx.Deadline()
	assert.False(t, has)

	// A child made from it: no goroutine started to watch its parent (the
	// context package starts one for a parent it cannot hang a child on).
	before := watchers()
	child, cancelChild := context.WithTimeout(dctx, time.Hour)
	defer cancelChild()
	assert.Equal(t, before, watchers(), "the child hangs on the detached context's cancellation")
	assert.Equal(t, "request-id", child.Value(ctxKey{}))

	closeClient()
	<-dctx.Done()
	<-child.Done()
	assert.ErrorIs(t, dctx.Err(), context.Canceled, "ended by Close")
	assert.ErrorIs(t, child.Err(), context.Canceled)

	// With a deadline, and cancelled by its own cancel.
	b = &background{closing: context.Background()}
	timed, cancelTimed := b.detached(context.Background(), time.Millisecond)
	defer cancelTimed()
	<-timed.Done()
	assert.True(t, errors.Is(timed.Err(), context.DeadlineExceeded))
	own, cancelOwn := b.detached(context.Background(), time.Hour)
	cancelOwn()
	<-own.Done()
	assert.ErrorIs(t, own.Err(), context.Canceled)
}

// watchers counts the goroutines the context package runs to watch a parent
// it cannot hang a child on.
func watchers() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "context.(*cancelCtx).propagateCancel.func")
}
