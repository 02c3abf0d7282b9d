package codec_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/codec"
)

// target decodes a payload into a fresh value of some type.
type target struct {
	name   string
	decode func(data []byte) error
}

func targetOf[V any](name string) target {
	c := codec.MsgPack[V]()
	return target{name, func(data []byte) error {
		var v V
		return c.Unmarshal(data, &v)
	}}
}

// hostileTargets covers the decoding paths of msgpack that size an
// allocation from a declared length: typed slices (and the []string fast
// path), byte slices, strings, typed maps (and the map[string]string and
// map[string]any fast paths), struct fields, pointers, and interface{}.
func hostileTargets() []target {
	return []target{
		targetOf[[]int64]("[]int64"),
		targetOf[[]string]("[]string"),
		targetOf[[][]int64]("[][]int64"),
		targetOf[[]Inner]("[]Inner"),
		targetOf[[]byte]("[]byte"),
		targetOf[string]("string"),
		targetOf[map[string]int]("map[string]int"),
		targetOf[map[string]string]("map[string]string"),
		targetOf[map[string][]byte]("map[string][]byte"),
		targetOf[map[int]Inner]("map[int]Inner"),
		targetOf[map[string]any]("map[string]any"),
		targetOf[Doc]("Doc"),
		targetOf[*Doc]("*Doc"),
		targetOf[[]Doc]("[]Doc"),
		targetOf[any]("any"),
		targetOf[[]any]("[]any"),
		targetOf[time.Time]("time.Time"),
	}
}

func be16(code byte, n uint16) []byte { return binary.BigEndian.AppendUint16([]byte{code}, n) }
func be32(code byte, n uint32) []byte { return binary.BigEndian.AppendUint32([]byte{code}, n) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func fixstr(s string) []byte { return append([]byte{0xa0 | byte(len(s))}, s...) }

// nest wraps inner in depth one-element arrays.
func nest(depth int, inner []byte) []byte {
	return append(bytes.Repeat([]byte{0x91}, depth), inner...)
}

type payload struct {
	name string
	data []byte
}

// hostilePayloads are structurally malformed: each declares more than it
// holds, nests too deeply, is truncated, or has trailing bytes.
func hostilePayloads(t testing.TB) []payload {
	full := validDoc(t)
	ps := []payload{
		{"fixarray 15 empty", []byte{0x9f}},
		{"array16 65535", be16(0xdc, 0xffff)},
		{"array32 2^27", be32(0xdd, 1<<27)}, // 2 GiB as []int64 before hardening
		{"array32 max", be32(0xdd, 0xffffffff)},
		{"array32 1M with 1000 elements", cat(be32(0xdd, 1<<20), bytes.Repeat([]byte{0x01}, 1000))},
		{"fixmap 15 empty", []byte{0x8f}},
		{"map16 65535", be16(0xde, 0xffff)},
		{"map32 max", be32(0xdf, 0xffffffff)},
		{"map32 with half the bytes", cat(be32(0xdf, 1000), bytes.Repeat([]byte{0x01}, 1000))},
		{"fixstr 31 empty", []byte{0xbf}},
		{"str8 255", []byte{0xd9, 0xff}},
		{"str16 65535", be16(0xda, 0xffff)},
		{"str32 max", be32(0xdb, 0xffffffff)},
		{"bin8 255", []byte{0xc4, 0xff}},
		{"bin16 65535", be16(0xc5, 0xffff)},
		{"bin32 max", be32(0xc6, 0xffffffff)},
		{"bin32 1 MiB short by one", cat(be32(0xc6, 1<<20), make([]byte, 1<<20-1))},
		{"fixext1 truncated", []byte{0xd4, 0x01}},
		{"fixext16 truncated", []byte{0xd8, 0xff, 0x00}},
		{"ext8 255", []byte{0xc7, 0xff, 0x01}},
		{"ext16 65535", append(be16(0xc8, 0xffff), 0x01)},
		{"ext32 max", append(be32(0xc9, 0xffffffff), 0xff)},
		{"ext32 without type", be32(0xc9, 0)},
		{"uint64 truncated", []byte{0xcf, 0, 0, 0}},
		{"array16 header truncated", []byte{0xdc, 0xff}},
		{"array32 header truncated", []byte{0xdd, 0xff, 0xff}},
		{"nested array32", nest(1, be32(0xdd, 0xffffffff))},
		{"nested deep array32", nest(100, be32(0xdd, 1<<27))},
		{"nested map value bin32", cat([]byte{0x81}, fixstr("a"), be32(0xc6, 0xffffffff))},
		{"nested map value str32", cat([]byte{0x81}, fixstr("a"), be32(0xdb, 0xffffffff))},
		{"struct field array32", cat([]byte{0x81}, fixstr("Ints"), be32(0xdd, 1<<27))},
		{"struct field map32", cat([]byte{0x81}, fixstr("Map"), be32(0xdf, 1<<27))},
		{"struct field bin32", cat([]byte{0x81}, fixstr("Bytes"), be32(0xc6, 1<<30))},
		{"struct field ext32", cat([]byte{0x81}, fixstr("When"), be32(0xc9, 1<<30), []byte{0xff})},
		{"array of maps declaring too much", cat([]byte{0x92}, be16(0xde, 3), be16(0xde, 3))},
		// Each inner length fits what follows it, the total does not.
		{"siblings declaring the same bytes", cat([]byte{0x92}, be16(0xdc, 4), []byte{1, 2, 3, 4})},
		{"nesting 513 deep", nest(513, []byte{0xc0})},
		{"nesting 100000 deep", nest(100000, []byte{0xc0})},
		{"reserved code", []byte{0xc1}},
		{"reserved code nested", []byte{0x92, 0x01, 0xc1}},
		{"trailing byte", []byte{0xc0, 0xc0}},
		{"two values", cat(full, full)},
		{"empty", nil},
	}
	// Every proper prefix of a valid payload: MessagePack is prefix-free,
	// so each is truncated.
	for i := range full {
		ps = append(ps, payload{"prefix " + strconv.Itoa(i) + "/" + strconv.Itoa(len(full)), full[:i]})
	}
	return ps
}

// validDoc returns the MessagePack encoding of a Doc that uses every field.
func validDoc(t testing.TB) []byte {
	t.Helper()
	b, err := codec.MsgPack[Doc]().Marshal(Doc{
		Int: -5, Uint: 70000, Float: 1.5, Bool: true, Str: "string",
		Bytes: []byte{1, 2, 3}, Ints: []int{1, 300, -70000}, Strs: []string{"a", "bc"},
		Map: map[string]int{"k": 1}, StrMap: map[string]string{"k": "v"},
		Ptr: &Inner{N: 1, S: "p"}, Nested: Inner{N: 2}, Nesteds: []Inner{{N: 3}, {S: "x"}},
		When: time.Unix(1_700_000_000, 123).UTC(),
	})
	require.NoError(t, err)
	return b
}

func TestMsgPackHostileErrors(t *testing.T) {
	t.Parallel()
	scan := codec.NewMsgPackScanner()
	for _, p := range hostilePayloads(t) {
		require.ErrorIs(t, scan(p.data), codec.ErrDecode, p.name)
		for _, tg := range hostileTargets() {
			err := tg.decode(p.data)
			require.Error(t, err, "%s into %s", p.name, tg.name)
			require.ErrorIs(t, err, codec.ErrDecode, "%s into %s", p.name, tg.name)
		}
	}
}

func TestMsgPackScan(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		data  []byte
		ok    bool
		traps []int
	}{
		{"nil", []byte{0xc0}, true, nil},
		{"every scalar", cat(be16(0xdc, 16), []byte{0x00, 0x7f, 0xe0, 0xff, 0xc2, 0xc3},
			[]byte{0xcc, 1, 0xcd, 1, 2, 0xce, 1, 2, 3, 4, 0xcf, 1, 2, 3, 4, 5, 6, 7, 8},
			[]byte{0xd0, 1, 0xd1, 1, 2, 0xd2, 1, 2, 3, 4, 0xd3, 1, 2, 3, 4, 5, 6, 7, 8},
			[]byte{0xca, 1, 2, 3, 4, 0xcb, 1, 2, 3, 4, 5, 6, 7, 8}), true, nil},
		{"str and bin of every width", cat([]byte{0x97}, fixstr("ab"), []byte{0xd9, 1, 'x'},
			be16(0xda, 1), []byte{'y'}, be32(0xdb, 0), []byte{0xc4, 0}, be16(0xc5, 0), be32(0xc6, 2), []byte{7, 8}), true, nil},
		{"maps of every width", cat([]byte{0x93, 0x81, 0x01, 0x02}, be16(0xde, 1), []byte{1, 2}, be32(0xdf, 0)), true, nil},
		{"exts of every width", cat([]byte{0x98, 0xd4, 5, 0, 0xd5, 5, 0, 0, 0xd6, 5, 0, 0, 0, 0},
			[]byte{0xd7, 5}, make([]byte, 8), []byte{0xd8, 5}, make([]byte, 16),
			[]byte{0xc7, 1, 5, 0}, be16(0xc8, 0), []byte{5}, be32(0xc9, 0), []byte{5}), true, nil},
		{"array16 exactly filled", cat(be16(0xdc, 3), []byte{1, 2, 3}), true, nil},
		{"nesting 512 deep", nest(512, []byte{0xc0}), true, nil},
		{"nesting 513 deep", nest(513, []byte{0xc0}), false, nil},
		{"empty containers do not nest", cat(nest(511, []byte{0x92, 0x90, 0x80})), true, nil},
		// An extension body that starts like a map but is not one value
		// (a timestamp, here) is a trap: offset 2 is its first byte.
		{"ext body like a map", []byte{0xd7, 0xff, 0x81, 0xa0, 0xc6, 0xff, 0xff, 0xff, 0xff, 0x00}, true, []int{2}},
		{"ext body is a map", []byte{0xc7, 4, 5, 0x81, 0xa1, 'a', 0x01}, true, nil},
		{"ext body is a map and more", []byte{0xc7, 5, 5, 0x81, 0xa1, 'a', 0x01, 0x01}, true, []int{3}},
		{"ext body not a map", []byte{0xd7, 0xff, 0x91, 0xdd, 0xff, 0xff, 0xff, 0xff, 0, 0}, true, nil},
		{"traps in order", cat([]byte{0x93, 0xd4, 1, 0x81}, []byte{0xc0}, []byte{0xd5, 1, 0x8f, 0}), true, []int{3, 7}},
		// A trap inside a body that is itself a trap is moot.
		{"trap inside a trap", []byte{0xc7, 4, 5, 0x81, 0xd4, 1, 0x81}, true, []int{3}},
		// A trap inside a body that is a valid map stays.
		{"trap inside a valid body", []byte{0xc7, 5, 5, 0x81, 0x00, 0xd4, 1, 0x81}, true, []int{7}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			traps, err := codec.MsgPackTraps(tc.data)
			if !tc.ok {
				assert.ErrorIs(t, err, codec.ErrDecode)
				return
			}
			require.NoError(t, err)
			if len(tc.traps) == 0 {
				assert.Empty(t, traps)
			} else {
				assert.Equal(t, tc.traps, traps)
			}
		})
	}
}

// TestMsgPackExtAsMap covers msgpack's habit of decoding an extension body
// as a map when it expects a map (DecodeMapLen skips an extension header).
func TestMsgPackExtAsMap(t *testing.T) {
	t.Parallel()

	// A timestamp whose body starts with fixmap(1), then declares a
	// 4 GiB bin: without the trap, decoding into a map allocates 4 GiB.
	evil := []byte{0xd7, 0xff, 0x81, 0xa0, 0xc6, 0xff, 0xff, 0xff, 0xff, 0x00}
	var m map[string][]byte
	err := codec.MsgPack[map[string][]byte]().Unmarshal(evil, &m)
	assert.ErrorIs(t, err, codec.ErrDecode)
	// The same bytes are a valid timestamp.
	var tm time.Time
	require.NoError(t, codec.MsgPack[time.Time]().Unmarshal(evil, &tm))

	// An extension whose body is a map still decodes as that map, so
	// types registered with msgpack.RegisterExt keep working.
	var ok map[string]int
	require.NoError(t, codec.MsgPack[map[string]int]().Unmarshal([]byte{0xc7, 4, 5, 0x81, 0xa1, 'a', 0x01}, &ok))
	assert.Equal(t, map[string]int{"a": 1}, ok)

	// A legitimate timestamp whose body starts with a map code (see
	// TestRoundTrip) is recorded as a trap and still decodes.
	when := time.Unix(1_700_000_000, 0x8f<<22).UTC()
	b, err := codec.MsgPack[[]time.Time]().Marshal([]time.Time{when, when})
	require.NoError(t, err)
	traps, err := codec.MsgPackTraps(b)
	require.NoError(t, err)
	assert.Len(t, traps, 2)
	var got []time.Time
	require.NoError(t, codec.MsgPack[[]time.Time]().Unmarshal(b, &got))
	require.Len(t, got, 2)
	assert.True(t, when.Equal(got[0]) && when.Equal(got[1]))
}

// TestMsgPackAny documents what interface{} targets receive.
func TestMsgPackAny(t *testing.T) {
	t.Parallel()
	c := codec.MsgPack[any]()
	b, err := c.Marshal(map[string]any{"i": 1, "big": int64(1) << 40, "neg": int64(-200), "f": 1.5, "s": "x", "l": []any{true, nil}})
	require.NoError(t, err)
	var got any
	require.NoError(t, c.Unmarshal(b, &got))
	// Integers take their smallest encoding, so they come back as the
	// narrowest type of it: uint for non-negative values, int for negative.
	assert.Equal(t, map[string]any{"i": int8(1), "big": uint64(1) << 40, "neg": int16(-200), "f": 1.5, "s": "x", "l": []any{true, nil}}, got)
}

// TestMsgPackErrorsNameTheCodecOnce: the library's messages begin with
// "msgpack: "; the codec's errors say it once, for decoding and encoding.
func TestMsgPackErrorsNameTheCodecOnce(t *testing.T) {
	data, err := codec.MsgPack[string]().Marshal("not a number")
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	err = codec.MsgPack[int64]().Unmarshal(data, &n)
	if !errors.Is(err, codec.ErrDecode) {
		t.Fatalf("Unmarshal of a string into an int64: %v, want ErrDecode", err)
	}
	if got := strings.Count(err.Error(), "msgpack:"); got != 1 {
		t.Errorf("decode error %q names msgpack %d times", err, got)
	}

	_, err = codec.MsgPack[chan int]().Marshal(make(chan int))
	if !errors.Is(err, codec.ErrEncode) {
		t.Fatalf("Marshal of a channel: %v, want ErrEncode", err)
	}
	if got := strings.Count(err.Error(), "msgpack:"); got != 1 {
		t.Errorf("encode error %q names msgpack %d times", err, got)
	}
}

// MarshalAfter is Marshal after room for a header: prefix bytes, zero, then
// the very bytes Marshal returns.
func TestMsgPackMarshalAfter(t *testing.T) {
	c := codec.MsgPack[map[string]int]()
	pm, ok := c.(codec.PrefixMarshaler[map[string]int])
	require.True(t, ok, "the MessagePack codec leaves room for the cache's header")
	v := map[string]int{"a": 1}
	want, err := c.Marshal(v)
	require.NoError(t, err)
	for _, prefix := range []int{0, 11, 19} {
		got, err := pm.MarshalAfter(prefix, v)
		require.NoError(t, err)
		require.Len(t, got, prefix+len(want))
		assert.Equal(t, make([]byte, prefix), got[:prefix])
		assert.Equal(t, want, got[prefix:])
	}
}
