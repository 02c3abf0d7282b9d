package codec_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/aside-go/aside/codec"
)

func TestMain(m *testing.M) {
	// msgpack.Unmarshal would leave one goroutine per decoded type behind
	// (UsePreallocateValues); the zstd encoder and decoder must not start
	// any. Either would show up here.
	goleak.VerifyTestMain(m)
}

// Inner is nested in Doc, by value, by pointer and in a slice.
type Inner struct {
	N int
	S string
}

// Doc covers the shapes a cached value takes.
type Doc struct {
	Int     int64
	Uint    uint32
	Float   float64
	Bool    bool
	Str     string
	Bytes   []byte
	Ints    []int
	Strs    []string
	Map     map[string]int
	StrMap  map[string]string
	Ptr     *Inner
	Nested  Inner
	Nesteds []Inner
	When    time.Time
}

// codecCase names a codec under test and states what it does to times.
type codecCase struct {
	name  string
	codec codec.Codec[Doc]
	// localTime: times decode in time.Local (MsgPack); otherwise they keep
	// their UTC offset (JSON).
	localTime bool
}

func mustCompress[V any](t testing.TB, inner codec.Codec[V], opts codec.CompressOptions) codec.Codec[V] {
	t.Helper()
	c, err := codec.Compress(inner, opts)
	require.NoError(t, err)
	return c
}

func docCodecs(t testing.TB) []codecCase {
	// Threshold 1 makes Compress compress every payload it can shrink, so
	// the round trips go through the compressed path.
	s2 := codec.CompressOptions{Threshold: 1}
	zstd := codec.CompressOptions{Threshold: 1, Algorithm: codec.Zstd}
	return []codecCase{
		{"MsgPack", codec.MsgPack[Doc](), true},
		{"JSON", codec.JSON[Doc](), false},
		{"S2(MsgPack)", mustCompress(t, codec.MsgPack[Doc](), s2), true},
		{"S2(JSON)", mustCompress(t, codec.JSON[Doc](), s2), false},
		{"Zstd(MsgPack)", mustCompress(t, codec.MsgPack[Doc](), zstd), true},
		{"Zstd(JSON)", mustCompress(t, codec.JSON[Doc](), zstd), false},
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	india := time.FixedZone("IST", 5*3600+1800)
	// About 1 MiB of valid UTF-8: JSON would replace the rune the cut
	// splits, so drop it.
	big := strings.ToValidUTF8(strings.Repeat("héllo wörld ✓ 你好 ", 1<<16)[:1<<20], "")
	values := []struct {
		name string
		doc  Doc
	}{
		{"zero", Doc{}},
		{"nil slices and maps", Doc{Bytes: nil, Ints: nil, Strs: nil, Map: nil, StrMap: nil, Nesteds: nil}},
		{"empty slices and maps", Doc{
			Bytes: []byte{}, Ints: []int{}, Strs: []string{},
			Map: map[string]int{}, StrMap: map[string]string{}, Nesteds: []Inner{},
		}},
		{"nil pointer", Doc{Ptr: nil}},
		{"pointer to zero", Doc{Ptr: &Inner{}}},
		{"pointer", Doc{Ptr: &Inner{N: -7, S: "p"}}},
		{"nested", Doc{
			Nested:  Inner{N: 1, S: "one"},
			Nesteds: []Inner{{N: 2, S: "two"}, {}, {N: -3}},
		}},
		{"scalars", Doc{
			Int: -1 << 62, Uint: 1<<32 - 1, Float: 3.5e-300, Bool: true,
			Ints: []int{0, 1, -1, 127, 128, -33, 1 << 40}, Map: map[string]int{"a": 1, "": -1},
		}},
		{"unicode", Doc{
			Str: "Grüße, 世界! 🚀 \u0000 \u2028", Strs: []string{"ü", "🙂", ""},
			StrMap: map[string]string{"ключ": "значение", "🔑": "🚪"},
		}},
		{"time UTC", Doc{When: time.Date(2024, 2, 29, 23, 59, 59, 123456789, time.UTC)}},
		{"time with location", Doc{When: time.Date(1999, 12, 31, 23, 0, 0, 1, india)}},
		{"time with monotonic clock", Doc{When: time.Now()}},
		// msgpack's 8-byte timestamp starts with nsec>>22: these nanoseconds
		// make its body start with a map code, which the hardened decoder
		// must still read as a time.
		{"time whose ext body looks like a map", Doc{
			When: time.Unix(1_700_000_000, 0x80<<22+12345).UTC(),
			Map:  map[string]int{"x": 1},
		}},
		{"large", Doc{Str: big, Bytes: []byte(big), Strs: []string{big[:1000], big[1000:5000]}}},
	}
	for _, cc := range docCodecs(t) {
		for _, tc := range values {
			t.Run(cc.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				b, err := cc.codec.Marshal(tc.doc)
				require.NoError(t, err)

				var got Doc
				require.NoError(t, cc.codec.Unmarshal(b, &got))

				// Times: the instant always survives; the location
				// depends on the codec.
				want := tc.doc
				assert.True(t, want.When.Equal(got.When), "instant: want %v, got %v", want.When, got.When)
				switch {
				case want.When.IsZero():
					assert.Equal(t, time.UTC, got.When.Location())
				case cc.localTime:
					assert.Equal(t, time.Local, got.When.Location())
				default:
					_, wantOff := want.When.Zone()
					_, gotOff := got.When.Zone()
					assert.Equal(t, wantOff, gotOff, "UTC offset")
				}
				want.When, got.When = time.Time{}, time.Time{}

				// Everything else, nil versus empty included, is equal.
				// assert.Equal treats nil and empty slices as different.
				assert.Equal(t, want, got)
			})
		}
	}
}

// TestUnmarshalReplaces checks that Unmarshal does not merge into what the
// target held: a cached value must not depend on the caller's leftovers.
func TestUnmarshalReplaces(t *testing.T) {
	t.Parallel()
	for _, cc := range docCodecs(t) {
		t.Run(cc.name, func(t *testing.T) {
			t.Parallel()
			b, err := cc.codec.Marshal(Doc{Map: map[string]int{"new": 1}})
			require.NoError(t, err)
			got := Doc{Str: "old", Map: map[string]int{"old": 1}, Ints: []int{1, 2, 3}}
			require.NoError(t, cc.codec.Unmarshal(b, &got))
			assert.Equal(t, Doc{Map: map[string]int{"new": 1}}, got)
		})
	}
}

func TestUnmarshalGarbage(t *testing.T) {
	t.Parallel()
	inputs := map[string][]byte{
		"empty":        {},
		"wrong type":   {0xa3, 'a', 'b', 'c'}, // msgpack "abc"; JSON: invalid
		"json garbage": []byte(`{"Int":`),
		"bad marker":   {0x7f, 0x00},
		"corrupt s2":   {byte(codec.S2), 0x10, 0xff, 0xff},
		"corrupt zstd": {byte(codec.Zstd), 0x28, 0xb5, 0x2f, 0xfd, 0x00},
	}
	for _, cc := range docCodecs(t) {
		for name, in := range inputs {
			t.Run(cc.name+"/"+name, func(t *testing.T) {
				t.Parallel()
				var got Doc
				err := cc.codec.Unmarshal(in, &got)
				require.Error(t, err)
				assert.ErrorIs(t, err, codec.ErrDecode)
			})
		}
	}
}

func TestMarshalError(t *testing.T) {
	t.Parallel()
	type bad struct{ C chan int }
	tests := []struct {
		name  string
		codec codec.Codec[bad]
	}{
		{"MsgPack", codec.MsgPack[bad]()},
		{"JSON", codec.JSON[bad]()},
		{"S2(MsgPack)", mustCompress(t, codec.MsgPack[bad](), codec.CompressOptions{})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := tc.codec.Marshal(bad{C: make(chan int)})
			assert.ErrorIs(t, err, codec.ErrEncode)
			assert.Nil(t, b)
		})
	}
}

func TestString(t *testing.T) {
	t.Parallel()
	c := codec.String()
	for _, s := range []string{"", "a", "日本語", "\xff\xfe not UTF-8", strings.Repeat("x", 1<<20)} {
		b, err := c.Marshal(s)
		require.NoError(t, err)
		assert.Equal(t, []byte(s), b)
		var got string
		require.NoError(t, c.Unmarshal(b, &got))
		assert.Equal(t, s, got)
	}

	// Unmarshal copies: changing the input afterwards does not change
	// the string.
	in := []byte("abc")
	var got string
	require.NoError(t, c.Unmarshal(in, &got))
	in[0] = 'X'
	assert.Equal(t, "abc", got)
}

func TestBytes(t *testing.T) {
	t.Parallel()
	c := codec.Bytes()
	v := []byte("payload")
	b, err := c.Marshal(v)
	require.NoError(t, err)
	assert.Same(t, &v[0], &b[0], "Marshal returns v itself")

	var got []byte
	require.NoError(t, c.Unmarshal(b, &got))
	assert.Same(t, &b[0], &got[0], "Unmarshal keeps data itself")

	for _, in := range [][]byte{nil, {}} {
		got := []byte("old")
		require.NoError(t, c.Unmarshal(in, &got))
		assert.Empty(t, got)
	}
}

func TestFuncs(t *testing.T) {
	t.Parallel()
	errBoom := errors.New("boom")
	upper := codec.Funcs[string]{
		MarshalFunc: func(v string) ([]byte, error) {
			if v == "" {
				return nil, errBoom
			}
			return []byte(strings.ToUpper(v)), nil
		},
		UnmarshalFunc: func(data []byte, v *string) error {
			if len(data) == 0 {
				return errBoom
			}
			if data[0] == '!' {
				return codec.ErrDecode // already wrapped: left alone
			}
			*v = strings.ToLower(string(data))
			return nil
		},
	}
	b, err := upper.Marshal("Hello")
	require.NoError(t, err)
	assert.Equal(t, "HELLO", string(b))
	var got string
	require.NoError(t, upper.Unmarshal(b, &got))
	assert.Equal(t, "hello", got)

	_, err = upper.Marshal("")
	assert.ErrorIs(t, err, codec.ErrEncode)
	assert.ErrorIs(t, err, errBoom)

	err = upper.Unmarshal(nil, &got)
	assert.ErrorIs(t, err, codec.ErrDecode)
	assert.ErrorIs(t, err, errBoom)

	err = upper.Unmarshal([]byte("!"), &got)
	assert.Same(t, codec.ErrDecode, err)

	var empty codec.Funcs[string]
	_, err = empty.Marshal("x")
	assert.ErrorIs(t, err, codec.ErrEncode)
	assert.ErrorIs(t, empty.Unmarshal([]byte("x"), &got), codec.ErrDecode)
}
