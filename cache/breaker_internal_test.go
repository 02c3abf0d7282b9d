package cache

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestBreakerStates(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_000, 0)
	b := &breaker{threshold: 3, cooldown: time.Second, now: func() time.Time { return now }}
	down := errors.Join(ErrUnavailable, errors.New("connection refused"))

	for range 2 {
		assert.True(t, b.allow())
		b.record(down)
	}
	b.record(nil) // a success resets the count
	for range 2 {
		b.record(down)
	}
	assert.True(t, b.allow(), "two consecutive failures: still closed")
	b.record(context.DeadlineExceeded) // a deadline is a failure too
	assert.False(t, b.allow(), "open after three")
	assert.EqualValues(t, 1, b.trips.Load())

	b.record(context.Canceled) // says nothing about Redis
	now = now.Add(time.Second)
	assert.True(t, b.allow(), "one probe after the cooldown")
	assert.False(t, b.allow(), "and only one")
	b.record(down)
	assert.False(t, b.allow(), "a failed probe opens it again")
	assert.EqualValues(t, 1, b.trips.Load(), "still the same trip")

	now = now.Add(time.Second)
	assert.True(t, b.allow())
	b.record(context.Canceled)
	assert.True(t, b.allow(), "a probe whose caller gave up leaves room for the next")
	b.record(errors.New("WRONGTYPE")) // Redis answered: it is up
	assert.True(t, b.allow())
	assert.False(t, b.open.Load())

	off := &breaker{threshold: 0}
	for range 10 {
		off.record(down)
	}
	assert.True(t, off.allow(), "threshold 0 is off")
}
