package envelope_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/internal/envelope"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	soft := time.UnixMilli(1_800_000_000_123)
	cases := []struct {
		name       string
		kind       envelope.Kind
		compressed bool
		soft       time.Time
		payload    []byte
	}{
		{"empty value", envelope.Value, false, time.Time{}, nil},
		{"zero byte value", envelope.Value, false, time.Time{}, []byte{0}},
		{"star is a value", envelope.Value, false, time.Time{}, []byte("*")},
		{"value with soft expiry", envelope.Value, false, soft, []byte("hello")},
		{"compressed", envelope.Value, true, soft, []byte{1, 2, 3}},
		{"not found", envelope.NotFound, false, time.Time{}, nil},
		{"lease", envelope.Lease, false, time.Time{}, []byte("token-1-16-bytes")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := envelope.Encode(tc.kind, tc.compressed, tc.soft, tc.payload)
			e, err := envelope.Decode(data)
			require.NoError(t, err)
			assert.Equal(t, tc.kind, e.Kind)
			assert.Equal(t, tc.compressed, e.Compressed)
			assert.True(t, tc.soft.Equal(e.SoftExpiry), "soft expiry %v != %v", e.SoftExpiry, tc.soft)
			assert.Equal(t, len(tc.payload), len(e.Payload))
			assert.True(t, bytes.Equal(tc.payload, e.Payload))
			assert.Equal(t, tc.kind == envelope.Lease, envelope.IsLease(data))
		})
	}
}

func TestStaleFlag(t *testing.T) {
	t.Parallel()
	data := envelope.SetStale(envelope.Encode(envelope.Value, false, time.UnixMilli(5), []byte("v")))
	e, err := envelope.Decode(data)
	require.NoError(t, err)
	assert.True(t, e.Stale)
	assert.Equal(t, envelope.Value, e.Kind)
	e, err = envelope.Decode(envelope.Encode(envelope.Value, false, time.UnixMilli(5), []byte("v")))
	require.NoError(t, err)
	assert.False(t, e.Stale)
}

func TestNotFoundNeverCollidesWithValue(t *testing.T) {
	t.Parallel()
	for _, payload := range [][]byte{nil, {}, []byte("*"), []byte("\x00")} {
		v, err := envelope.Decode(envelope.Encode(envelope.Value, false, time.Time{}, payload))
		require.NoError(t, err)
		assert.Equal(t, envelope.Value, v.Kind)
	}
	nf, err := envelope.Decode(envelope.Encode(envelope.NotFound, false, time.Time{}, nil))
	require.NoError(t, err)
	assert.Equal(t, envelope.NotFound, nf.Kind)
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	good := envelope.Encode(envelope.Value, false, time.Time{}, []byte("x"))
	newer := bytes.Clone(good)
	newer[1] = envelope.MaxVersion + 1
	unknownKind := bytes.Clone(good)
	unknownKind[2] = 0x07
	unknownFlag := bytes.Clone(good)
	unknownFlag[2] |= 0x80
	zeroKind := bytes.Clone(good)
	zeroKind[2] = 0
	hugeSoft := bytes.Clone(good)
	copy(hugeSoft[3:11], []byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF})

	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"nil", nil, envelope.ErrCorrupt},
		{"star", []byte("*"), envelope.ErrCorrupt},
		{"plain json", []byte(`{"id":1}`), envelope.ErrCorrupt},
		{"magic only", good[:1], envelope.ErrCorrupt},
		{"truncated header", good[:envelope.HeaderSize-1], envelope.ErrCorrupt},
		{"newer version", newer, envelope.ErrVersion},
		{"newer version truncated", newer[:2], envelope.ErrVersion},
		{"version zero", append([]byte{good[0], 0}, good[2:]...), envelope.ErrCorrupt},
		{"unknown kind", unknownKind, envelope.ErrCorrupt},
		{"zero kind", zeroKind, envelope.ErrCorrupt},
		{"unknown flag", unknownFlag, envelope.ErrCorrupt},
		{"soft expiry out of range", hugeSoft, envelope.ErrCorrupt},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := envelope.Decode(tc.data)
			require.Error(t, err)
			assert.True(t, errors.Is(err, tc.want), "got %v, want %v", err, tc.want)
		})
	}
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	data := envelope.Encode(envelope.Value, true, time.UnixMilli(1_700_000_000_000), bytes.Repeat([]byte("a"), 150))
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := envelope.Decode(data); err != nil {
			panic(err)
		}
	})
	assert.Zero(t, allocs)
}

func FuzzDecode(f *testing.F) {
	f.Add(envelope.Encode(envelope.Value, false, time.Time{}, []byte("v")))
	f.Add(envelope.Encode(envelope.NotFound, false, time.UnixMilli(1), nil))
	f.Add(envelope.Encode(envelope.Lease, true, time.Time{}, []byte("tok")))
	f.Add([]byte("*"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := envelope.Decode(data)
		if err != nil {
			if !errors.Is(err, envelope.ErrCorrupt) && !errors.Is(err, envelope.ErrVersion) {
				t.Fatalf("undocumented error %v", err)
			}
			return
		}
		// A decoded entry re-encodes to the same bytes.
		again := envelope.Encode(e.Kind, e.Compressed, e.SoftExpiry, e.Payload)
		if e.Stale {
			again = envelope.SetStale(again)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("re-encoding %x gave %x", data, again)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	data := envelope.Encode(envelope.Value, false, time.UnixMilli(1_700_000_000_000), bytes.Repeat([]byte("a"), 150))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := envelope.Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

// An entry with a generation is version 2, its payload after the
// generation; generation 0 writes version 1, which older builds read.
func TestGeneration(t *testing.T) {
	t.Parallel()
	soft := time.UnixMilli(1_800_000_000_123)
	v2 := envelope.EncodeGen(envelope.Value, false, soft, 7, []byte("hello"))
	require.Len(t, v2, envelope.GenHeaderSize+5)
	assert.Equal(t, byte(envelope.GenVersion), v2[1])
	e, err := envelope.Decode(v2)
	require.NoError(t, err)
	assert.Equal(t, uint64(7), e.Gen)
	assert.Equal(t, "hello", string(e.Payload))
	assert.True(t, soft.Equal(e.SoftExpiry))

	v1 := envelope.EncodeGen(envelope.NotFound, false, time.Time{}, 0, nil)
	assert.Equal(t, envelope.Encode(envelope.NotFound, false, time.Time{}, nil), v1, "generation 0 is version 1")
	marker := envelope.EncodeGen(envelope.NotFound, false, time.Time{}, 3, nil)
	assert.True(t, envelope.IsMarker(marker))
	e, err = envelope.Decode(marker)
	require.NoError(t, err)
	assert.Equal(t, envelope.NotFound, e.Kind)

	for name, bad := range map[string][]byte{
		"version 2 cut short":     v2[:envelope.GenHeaderSize-1],
		"version 2, generation 0": append(append([]byte{envelope.Magic, envelope.GenVersion, byte(envelope.Value)}, make([]byte, 16)...), 'x'),
		"a lease of version 2":    envelope.EncodeGen(envelope.Lease, false, time.Time{}, 1, []byte("token-1-16-bytes")),
	} {
		_, err := envelope.Decode(bad)
		assert.ErrorIs(t, err, envelope.ErrCorrupt, name)
	}
}

// PutHeader writes in place the header AppendGen writes before a payload.
func TestPutHeader(t *testing.T) {
	soft := time.UnixMilli(1_700_000_000_123)
	payload := []byte("payload")
	for _, gen := range []uint64{0, 7} {
		for _, compressed := range []bool{false, true} {
			want := envelope.AppendGen(nil, envelope.Value, compressed, soft, gen, payload)
			got := make([]byte, envelope.HeaderLen(gen)+len(payload))
			copy(got[envelope.HeaderLen(gen):], payload)
			envelope.PutHeader(got, envelope.Value, compressed, soft, gen)
			if !bytes.Equal(got, want) {
				t.Fatalf("gen %d, compressed %v: PutHeader gave %x, AppendGen %x", gen, compressed, got, want)
			}
			e, err := envelope.Decode(got)
			if err != nil || e.Gen != gen || !bytes.Equal(e.Payload, payload) {
				t.Fatalf("gen %d: decoded %+v, %v", gen, e, err)
			}
		}
	}
}
