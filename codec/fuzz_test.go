package codec_test

import (
	"bytes"
	"math"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/codec"
)

// The fuzz targets measure allocation like alloc_test.go; fuzzing runs one
// input at a time per process, and seed corpora run sequentially.

type fuzzInner struct {
	A int64
	B string
	C []byte
	D map[string]int
}

// fuzzDoc mixes every kind of target msgpack decodes differently.
type fuzzDoc struct {
	I   int64
	U   uint16
	F   float64
	S   string
	B   []byte
	L   []int64
	SS  []string
	M   map[string]string
	MI  map[int]fuzzInner
	N   []fuzzInner
	P   *fuzzInner
	Any any
	AM  map[string]any
	T   time.Time
	Arr [4]int8
}

// fuzzDocPerByte is the documented amplification bound of MsgPack for
// fuzzDoc: 4E + 128 bytes per payload byte, E = 64 (a map[int]fuzzInner
// entry; a fuzzInner is 56 bytes).
const fuzzDocPerByte = 4*64 + 128

func sampleFuzzDoc() fuzzDoc {
	return fuzzDoc{
		I: -1, U: 7, F: 2.5, S: "s", B: []byte{1}, L: []int64{1, -2}, SS: []string{"x", ""},
		M:  map[string]string{"k": "v"},
		MI: map[int]fuzzInner{3: {A: 1, B: "b", C: []byte{}, D: map[string]int{"d": 4}}},
		N:  []fuzzInner{{}, {A: 2}}, P: &fuzzInner{B: "p"},
		Any: []any{"a", int64(1), map[string]any{"z": nil}},
		AM:  map[string]any{"f": 1.5, "l": []any{true}},
		T:   time.Unix(1_700_000_000, 0x80<<22).UTC(),
		Arr: [4]int8{1, 2, 3, 4},
	}
}

func FuzzMsgPackUnmarshal(f *testing.F) {
	c := codec.MsgPack[fuzzDoc]()
	valid, err := c.Marshal(sampleFuzzDoc())
	require.NoError(f, err)
	f.Add(valid)
	f.Add(validDoc(f))
	for _, p := range hostilePayloads(f) {
		if len(p.data) < 4096 {
			f.Add(p.data)
		}
	}
	scan := codec.NewMsgPackScanner()
	f.Fuzz(func(t *testing.T, data []byte) {
		scanErr := scan(data)
		var v fuzzDoc
		var err error
		n := allocated(func() { err = c.Unmarshal(data, &v) })
		if scanErr != nil {
			// Malformed: rejected before decoding.
			require.ErrorIs(t, err, codec.ErrDecode)
			require.LessOrEqual(t, n, 2*uint64(len(data))+slack, "malformed payload of %d bytes", len(data))
			return
		}
		require.LessOrEqual(t, n, uint64(len(data))*fuzzDocPerByte+slack, "payload of %d bytes", len(data))
		if err != nil {
			require.ErrorIs(t, err, codec.ErrDecode)
			return
		}
		// Whatever decodes encodes again.
		_, err = c.Marshal(v)
		require.NoError(t, err)
	})
}

func FuzzJSONUnmarshal(f *testing.F) {
	c := codec.JSON[fuzzDoc]()
	valid, err := c.Marshal(sampleFuzzDoc())
	require.NoError(f, err)
	f.Add(valid)
	f.Add([]byte(`{"N":[null,{},{"A":1e400}],"Any":[[[[{}]]]],"B":"!!"}`))
	f.Add([]byte(`{"MI":{"x":{}}}`))
	f.Add([]byte(`[` + string(bytes.Repeat([]byte("[1,"), 100)) + `]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var v fuzzDoc
		var err error
		n := allocated(func() { err = c.Unmarshal(data, &v) })
		require.LessOrEqual(t, n, uint64(len(data))*fuzzDocPerByte+slack, "payload of %d bytes", len(data))
		if err != nil {
			require.ErrorIs(t, err, codec.ErrDecode)
		}
	})
}

// compressFuzzMax is the MaxDecodedSize of the codecs FuzzCompressUnmarshal
// exercises.
const compressFuzzMax = 1 << 20

func FuzzCompressUnmarshal(f *testing.F) {
	raw := hostileCompressCodec(f)
	docs := mustCompress(f, codec.MsgPack[fuzzDoc](), codec.CompressOptions{MaxDecodedSize: compressFuzzMax})
	for _, opts := range []codec.CompressOptions{{Threshold: 1}, {Threshold: 1, Algorithm: codec.Zstd}} {
		b, err := mustCompress(f, codec.Bytes(), opts).Marshal(compressible(8 << 10))
		require.NoError(f, err)
		f.Add(b)
		b, err = mustCompress(f, codec.MsgPack[fuzzDoc](), opts).Marshal(sampleFuzzDoc())
		require.NoError(f, err)
		f.Add(b)
	}
	for _, p := range hostileCompressed(f) {
		f.Add(p.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var got []byte
		var err error
		n := allocated(func() { err = raw.Unmarshal(data, &got) })
		// Decompression allocates the declared size at most, which
		// is bounded by MaxDecodedSize and MaxRatio; zstd's decoders
		// may grow their internal buffers (up to a block, 128 KiB).
		limit := min(compressFuzzMax, codec.DefaultMaxRatio*uint64(len(data)))
		require.LessOrEqual(t, n, limit+2*uint64(len(data))+slack+256<<10, "payload of %d bytes", len(data))
		if err != nil {
			require.ErrorIs(t, err, codec.ErrDecode)
		} else if data[0] != 0 {
			require.LessOrEqual(t, uint64(len(got)), limit)
		}

		var doc fuzzDoc
		if err := docs.Unmarshal(data, &doc); err != nil {
			require.ErrorIs(t, err, codec.ErrDecode)
		}
	})
}

type roundTripDoc struct {
	I  int64
	U  uint64
	F  float64
	S  string
	B  []byte
	OK bool
	L  []int64
	SS []string
	M  map[string][]byte
	P  *string
	T  time.Time
	N  []roundTripDoc
}

// FuzzRoundTrip builds values from fuzz inputs and checks that they survive
// Marshal then Unmarshal through every codec that can represent them.
func FuzzRoundTrip(f *testing.F) {
	f.Add(int64(0), uint64(0), 0.0, "", []byte(nil), false)
	f.Add(int64(-1)<<63, uint64(math.MaxUint64), math.Inf(-1), "\xff", []byte{}, true)
	f.Add(int64(1)<<40, uint64(1)<<33, math.NaN(), "héllo 🚀", []byte("bytes"), true)
	type named struct {
		name  string
		codec codec.Codec[roundTripDoc]
		json  bool
	}
	s2 := codec.CompressOptions{Threshold: 1}
	zstd := codec.CompressOptions{Threshold: 1, Algorithm: codec.Zstd}
	codecs := []named{
		{"MsgPack", codec.MsgPack[roundTripDoc](), false},
		{"S2(MsgPack)", mustCompress(f, codec.MsgPack[roundTripDoc](), s2), false},
		{"Zstd(MsgPack)", mustCompress(f, codec.MsgPack[roundTripDoc](), zstd), false},
		{"JSON", codec.JSON[roundTripDoc](), true},
		{"S2(JSON)", mustCompress(f, codec.JSON[roundTripDoc](), s2), true},
	}
	f.Fuzz(func(t *testing.T, i int64, u uint64, fl float64, s string, b []byte, ok bool) {
		in := roundTripDoc{I: i, U: u, F: fl, S: s, B: b, OK: ok, T: time.Unix(0, i).UTC()}
		if ok {
			in.L = []int64{i, int64(u), -i}
			in.SS = []string{s, s + s, ""}
			in.M = map[string][]byte{s: b, "": nil}
			in.P = &s
			in.N = []roundTripDoc{{S: s, B: b}, {}}
		}
		// JSON replaces invalid UTF-8 and cannot write NaN or infinities.
		jsonOK := utf8.ValidString(s) && !math.IsNaN(fl) && !math.IsInf(fl, 0)
		for _, nc := range codecs {
			if nc.json && !jsonOK {
				continue
			}
			enc, err := nc.codec.Marshal(in)
			require.NoError(t, err, nc.name)
			var got roundTripDoc
			require.NoError(t, nc.codec.Unmarshal(enc, &got), nc.name)

			assert.True(t, in.T.Equal(got.T), "%s: time %v became %v", nc.name, in.T, got.T)
			assert.Equal(t, math.Float64bits(in.F), math.Float64bits(got.F), "%s: float", nc.name)
			want := in
			want.T, got.T = time.Time{}, time.Time{}
			want.F, got.F = 0, 0
			require.Equal(t, want, got, nc.name)
		}
	})
}
