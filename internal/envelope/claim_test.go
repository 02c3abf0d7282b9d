package envelope_test

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/internal/envelope"
	"github.com/aside-go/aside/internal/redistest"
)

func be64(ms int64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(ms))
	return string(b[:])
}

// TestClaimScriptFollowsTheLayout runs ClaimScript in a real Redis on entries
// made by Encode: it claims a value whose soft expiry it is told, and nothing
// else, and what it writes decodes as the same value, stale, with the new
// soft expiry and the old TTL.
func TestClaimScriptFollowsTheLayout(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Config{})
	opt := srv.ClientOption()
	opt.DisableCache = true
	rc, err := rueidis.NewClient(opt)
	require.NoError(t, err)
	t.Cleanup(rc.Close)
	ctx := context.Background()
	script := rueidis.NewLuaScript(envelope.ClaimScript)
	soft := time.UnixMilli(1_800_000_000_123)
	next := time.UnixMilli(1_800_000_005_000)

	set := func(key string, data []byte) {
		require.NoError(t, rc.Do(ctx, rc.B().Set().Key(key).Value(rueidis.BinaryString(data)).PxMilliseconds(60_000).Build()).Error())
	}
	claim := func(key string, seen time.Time) ([]byte, error) {
		return script.Exec(ctx, rc, []string{key}, []string{be64(seen.UnixMilli()), be64(next.UnixMilli())}).AsBytes()
	}

	set("v", envelope.Encode(envelope.Value, true, soft, []byte("payload")))
	claimed, err := claim("v", soft)
	require.NoError(t, err)
	e, err := envelope.Decode(claimed)
	require.NoError(t, err)
	assert.Equal(t, envelope.Value, e.Kind)
	assert.True(t, e.Stale)
	assert.True(t, e.Compressed, "other flags are kept")
	assert.True(t, e.SoftExpiry.Equal(next))
	assert.Equal(t, "payload", string(e.Payload))
	set("g", envelope.EncodeGen(envelope.Value, false, soft, 5, []byte("payload")))
	claimedGen, err := claim("g", soft)
	require.NoError(t, err, "a value with a generation is claimed")
	eg, err := envelope.Decode(claimedGen)
	require.NoError(t, err)
	assert.Equal(t, uint64(5), eg.Gen, "the claim keeps the generation")
	assert.True(t, eg.Stale)
	assert.Equal(t, "payload", string(eg.Payload))

	stored, err := rc.Do(ctx, rc.B().Get().Key("v").Build()).AsBytes()
	require.NoError(t, err)
	assert.Equal(t, claimed, stored)
	pttl, err := rc.Do(ctx, rc.B().Pttl().Key("v").Build()).AsInt64()
	require.NoError(t, err)
	assert.Positive(t, pttl, "the TTL is kept")

	for name, data := range map[string][]byte{
		"another soft expiry": envelope.Encode(envelope.Value, false, soft.Add(time.Millisecond), nil),
		"a not-found marker":  envelope.Encode(envelope.NotFound, false, soft, nil),
		"a lease":             envelope.Encode(envelope.Lease, false, soft, []byte("token")),
		"foreign bytes":       []byte("hello, world"),
		"a short entry":       envelope.Encode(envelope.Value, false, soft, nil)[:envelope.HeaderSize-1],
	} {
		set(name, data)
		_, err := claim(name, soft)
		assert.True(t, rueidis.IsRedisNil(err), "%s is not claimed: %v", name, err)
		stored, err := rc.Do(ctx, rc.B().Get().Key(name).Build()).AsBytes()
		require.NoError(t, err)
		assert.Equal(t, data, stored, "%s is left alone", name)
	}
	_, err = claim("missing", soft)
	assert.True(t, rueidis.IsRedisNil(err))
}
