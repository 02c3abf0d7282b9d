package asidetest_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/asidetest"
	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/codec"
	"github.com/aside-go/aside/ttlpolicy"
)

// TestKit uses the kit as a user's test would: a private Redis, a second
// client on it, AwaitWrites before reading what a load wrote, and a clock
// that brings a value's refresh due.
func TestKit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := asidetest.Redis(t)
	client := asidetest.Connect(t, url)
	clock := asidetest.NewClock(time.Now())
	var version atomic.Int64
	version.Store(1)
	opts := cache.Options[string, int64]{
		Namespace: "kit",
		Codec:     codec.MsgPack[int64](),
		TTL:       ttlpolicy.Fixed(10 * time.Minute).WithJitter(0).WithSoft(0.5),
		Loader:    func(context.Context, string) (int64, error) { return version.Load(), nil },
		Now:       clock.Now,
		Refresh:   cache.RefreshSync,
	}
	c, err := cache.New(client, opts)
	require.NoError(t, err)

	v, err := c.Get(ctx, "k")
	require.NoError(t, err)
	assert.EqualValues(t, 1, v)
	require.NoError(t, c.AwaitWrites(ctx, "k"))

	// Another process reads what the load wrote.
	other, err := cache.New(asidetest.Connect(t, url), cache.Options[string, int64]{Namespace: "kit", Codec: codec.MsgPack[int64]()})
	require.NoError(t, err)
	var src cache.Source
	v, err = other.Get(ctx, "k", cache.SourceOf(&src))
	require.NoError(t, err)
	assert.EqualValues(t, 1, v)
	assert.Equal(t, cache.SourceRedis, src)

	// Past the soft TTL, a Get refreshes (RefreshSync: before it returns).
	version.Store(2)
	clock.Add(6 * time.Minute)
	v, err = c.Get(ctx, "k")
	require.NoError(t, err)
	assert.EqualValues(t, 2, v, "the refresh loaded the new version")
	assert.EqualValues(t, 1, c.Stats().Refreshes)
}

func ExampleClock() {
	clock := asidetest.NewClock(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	clock.Add(90 * time.Second)
	fmt.Println(clock.Now().Format(time.TimeOnly))
	// Output: 12:01:30
}
