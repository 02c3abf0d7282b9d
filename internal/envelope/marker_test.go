package envelope_test

import (
	"context"
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
