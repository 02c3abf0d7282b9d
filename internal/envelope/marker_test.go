package envelope_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/internal/envelope"
	"github.com/aside-go/aside/internal/redistest"
)

// TestMarkerLuaAgreesWithIsMarker runs MarkerLua's is_marker in a real Redis
// on entries of every kind and on other bytes: it answers as IsMarker does.
func TestMarkerLuaAgreesWithIsMarker(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Config{})
	opt := srv.ClientOption()
	opt.DisableCache = true
	rc, err := rueidis.NewClient(opt)
	require.NoError(t, err)
	t.Cleanup(rc.Close)
	ctx := context.Background()
	script := rueidis.NewLuaScript(envelope.MarkerLua + `
if is_marker(redis.pcall('GET', KEYS[1])) then return 1 end
return 0`)
	soft := time.UnixMilli(1_800_000_000_123)
	for name, tc := range map[string]struct {
		data   []byte
		marker bool
	}{
		"a value":            {envelope.Encode(envelope.Value, false, soft, []byte("payload")), false},
		"a stale value":      {envelope.Encode(envelope.Value, true, soft, nil), false},
		"a not-found marker": {envelope.Encode(envelope.NotFound, false, time.Time{}, nil), true},
		"a lease":            {envelope.Encode(envelope.Lease, false, time.Time{}, []byte("0123456789abcdef")), true},
		"a short marker":     {envelope.Encode(envelope.NotFound, false, time.Time{}, nil)[:envelope.HeaderSize-1], false},
		"foreign text":       {[]byte("hello"), false},
		"an empty string":    {[]byte{}, false},
		"a stale lease flag": {envelope.SetStale(envelope.Encode(envelope.Lease, false, time.Time{}, nil)), true},
	} {
		assert.Equal(t, tc.marker, envelope.IsMarker(tc.data), "IsMarker of %s", name)
		key := "marker:" + name
		require.NoError(t, rc.Do(ctx, rc.B().Set().Key(key).Value(rueidis.BinaryString(tc.data)).Build()).Error())
		n, err := script.Exec(ctx, rc, []string{key}, nil).AsInt64()
		require.NoError(t, err, name)
		assert.Equal(t, tc.marker, n == 1, "is_marker of %s", name)
	}
	for name, setup := range map[string]rueidis.Completed{
		"a hash": rc.B().Hset().Key("marker:hash").FieldValue().FieldValue("f", "v").Build(),
	} {
		require.NoError(t, rc.Do(ctx, setup).Error())
		n, err := script.Exec(ctx, rc, []string{"marker:hash"}, nil).AsInt64()
		require.NoError(t, err, name)
		assert.Zero(t, n, "%s is not a marker", name)
	}
	n, err := script.Exec(ctx, rc, []string{"marker:missing"}, nil).AsInt64()
	require.NoError(t, err)
	assert.Zero(t, n, "a missing key is not a marker")
}

// TestClearedLuaAgreesWithIsCleared runs ClearedLua's is_cleared in a real
// Redis on entries of every version and generation, and on other bytes: it
// answers as IsCleared does.
func TestClearedLuaAgreesWithIsCleared(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Config{})
	opt := srv.ClientOption()
	opt.DisableCache = true
	rc, err := rueidis.NewClient(opt)
	require.NoError(t, err)
	t.Cleanup(rc.Close)
	ctx := context.Background()
	script := rueidis.NewLuaScript(envelope.ClearedLua + `
if is_cleared(redis.pcall('GET', KEYS[1]), tonumber(ARGV[1])) then return 1 end
return 0`)
	entries := map[string][]byte{
		"v1 value":            envelope.Encode(envelope.Value, false, time.Time{}, []byte("p")),
		"gen 1 value":         envelope.EncodeGen(envelope.Value, false, time.Time{}, 1, []byte("p")),
		"gen 300 value":       envelope.EncodeGen(envelope.Value, false, time.Time{}, 300, []byte("p")),
		"gen 2^40 value":      envelope.EncodeGen(envelope.Value, false, time.Time{}, 1<<40, nil),
		"gen 5 short":         envelope.EncodeGen(envelope.Value, false, time.Time{}, 5, nil)[:envelope.GenHeaderSize-1],
		"foreign text":        []byte("hello, a value of another program"),
		"an empty string":     {},
		"a not-found marker":  envelope.Encode(envelope.NotFound, false, time.Time{}, nil),
		"a newer version (3)": append([]byte{envelope.Encode(envelope.Value, false, time.Time{}, nil)[0], 3}, make([]byte, 30)...),
	}
	for name, data := range entries {
		key := "cleared:" + name
		require.NoError(t, rc.Do(ctx, rc.B().Set().Key(key).Value(rueidis.BinaryString(data)).Build()).Error())
		for _, gen := range []uint64{0, 1, 2, 300, 301, 1<<40 + 1} {
			n, err := script.Exec(ctx, rc, []string{key}, []string{strconv.FormatUint(gen, 10)}).AsInt64()
			require.NoError(t, err, name)
			assert.Equal(t, envelope.IsCleared(data, gen), n == 1, "is_cleared of %s at generation %d", name, gen)
		}
	}
	assert.True(t, envelope.IsCleared(entries["gen 300 value"], 301))
	assert.False(t, envelope.IsCleared(entries["gen 300 value"], 300))
	assert.True(t, envelope.IsCleared(entries["v1 value"], 1))
	assert.False(t, envelope.IsCleared(entries["foreign text"], 9))
}
