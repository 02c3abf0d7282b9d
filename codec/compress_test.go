package codec_test

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/codec"
)

func TestCompressOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts codec.CompressOptions
		ok   bool
	}{
		{"zero", codec.CompressOptions{}, true},
		{"zstd best", codec.CompressOptions{Algorithm: codec.Zstd, Level: codec.LevelBest}, true},
		{"no ratio limit", codec.CompressOptions{MaxRatio: -1}, true},
		{"unknown algorithm", codec.CompressOptions{Algorithm: 3}, false},
		{"unknown level", codec.CompressOptions{Level: codec.LevelBest + 1}, false},
		{"negative threshold", codec.CompressOptions{Threshold: -1}, false},
		{"negative max size", codec.CompressOptions{MaxDecodedSize: -1}, false},
		{"max size over 4 GiB", codec.CompressOptions{MaxDecodedSize: 1 << 32}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := codec.Compress(codec.Bytes(), tc.opts)
			if tc.ok {
				require.NoError(t, err)
				assert.NotNil(t, c)
				return
			}
			assert.ErrorIs(t, err, codec.ErrInvalidOptions)
			assert.Nil(t, c)
		})
	}
	_, err := codec.Compress[[]byte](nil, codec.CompressOptions{})
	assert.ErrorIs(t, err, codec.ErrInvalidOptions)
}

// compressible returns n bytes of text that compresses about 3 to 5 times.
func compressible(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	words := []string{"cache ", "aside ", "redis ", "value ", "key ", "expire ", "lease ", "token "}
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
	}
	return b.Bytes()[:n]
}

func random(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestCompressMarker(t *testing.T) {
	t.Parallel()
	text := compressible(4 << 10)
	tests := []struct {
		name   string
		opts   codec.CompressOptions
		in     []byte
		marker byte
	}{
		{"under threshold", codec.CompressOptions{}, text[:1000], 0},
		{"at threshold", codec.CompressOptions{}, text[:1024], byte(codec.S2)},
		{"empty, threshold 1", codec.CompressOptions{Threshold: 1}, nil, 0},
		{"incompressible", codec.CompressOptions{}, random(4 << 10), 0},
		{"s2", codec.CompressOptions{}, text, byte(codec.S2)},
		{"s2 better", codec.CompressOptions{Level: codec.LevelBetter}, text, byte(codec.S2)},
		{"s2 best", codec.CompressOptions{Level: codec.LevelBest}, text, byte(codec.S2)},
		{"zstd fastest", codec.CompressOptions{Algorithm: codec.Zstd, Level: codec.LevelFastest}, text, byte(codec.Zstd)},
		{"zstd", codec.CompressOptions{Algorithm: codec.Zstd}, text, byte(codec.Zstd)},
		{"zstd best", codec.CompressOptions{Algorithm: codec.Zstd, Level: codec.LevelBest}, text, byte(codec.Zstd)},
		// Zeros compress beyond MaxRatio: stored as is, so that Unmarshal
		// accepts what Marshal wrote.
		{"beyond MaxRatio", codec.CompressOptions{}, make([]byte, 1<<20), 0},
		{"ratio unlimited", codec.CompressOptions{MaxRatio: -1}, make([]byte, 1<<20), byte(codec.S2)},
		{"over MaxDecodedSize", codec.CompressOptions{MaxDecodedSize: 2 << 10}, text, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := mustCompress(t, codec.Bytes(), tc.opts)
			b, err := c.Marshal(tc.in)
			require.NoError(t, err)
			require.NotEmpty(t, b)
			assert.Equal(t, tc.marker, b[0])
			if tc.marker != 0 {
				assert.Less(t, len(b), len(tc.in))
			}
			var got []byte
			require.NoError(t, c.Unmarshal(b, &got))
			assert.Equal(t, len(tc.in), len(got))
			assert.True(t, bytes.Equal(tc.in, got))
		})
	}
}

// TestCompressReadsEveryAlgorithm checks that the algorithm can change
// without invalidating what is cached.
func TestCompressReadsEveryAlgorithm(t *testing.T) {
	t.Parallel()
	text := compressible(8 << 10)
	s2c := mustCompress(t, codec.String(), codec.CompressOptions{})
	zc := mustCompress(t, codec.String(), codec.CompressOptions{Algorithm: codec.Zstd})
	for _, w := range []codec.Codec[string]{s2c, zc} {
		b, err := w.Marshal(string(text))
		require.NoError(t, err)
		for _, r := range []codec.Codec[string]{s2c, zc} {
			var got string
			require.NoError(t, r.Unmarshal(b, &got))
			assert.Equal(t, string(text), got)
		}
	}
}

func zstdFrame(t testing.TB, in []byte, opts ...zstd.EOption) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil, opts...)
	require.NoError(t, err)
	defer enc.Close()
	return enc.EncodeAll(in, nil)
}

// hostileCompressed returns payloads Compress must refuse, with the codec
// options used: MaxDecodedSize 1 MiB, default MaxRatio 1024.
func hostileCompressed(t testing.TB) []payload {
	text := compressible(64 << 10)
	okS2 := s2.Encode(nil, text)
	okZstd := zstdFrame(t, text, zstd.WithSingleSegment(true))
	s2Declaring := func(n uint64, rest ...byte) []byte {
		return append(binary.AppendUvarint([]byte{byte(codec.S2)}, n), rest...)
	}
	zstdHeader := func(fcs uint32) []byte {
		// Magic, single segment with a 4-byte content size, then a
		// last raw block of one byte.
		h := []byte{byte(codec.Zstd), 0x28, 0xb5, 0x2f, 0xfd, 0xa0}
		h = binary.LittleEndian.AppendUint32(h, fcs)
		return append(h, 0x09, 0x00, 0x00, 'x')
	}
	twoFrames := cat([]byte{byte(codec.Zstd)},
		zstdFrame(t, text[:2000], zstd.WithSingleSegment(true)),
		zstdFrame(t, text, zstd.WithSingleSegment(true)))
	skippable := cat([]byte{byte(codec.Zstd), 0x50, 0x2a, 0x4d, 0x18}, []byte{4, 0, 0, 0}, []byte("skip"))
	withDict := []byte{byte(codec.Zstd), 0x28, 0xb5, 0x2f, 0xfd, 0x21, 0x07, 0x01, 0x09, 0x00, 0x00, 'x'}
	noFCS := cat([]byte{byte(codec.Zstd)}, zstdFrame(t, text[:100]))
	corruptS2 := cat([]byte{byte(codec.S2)}, okS2)
	corruptS2[len(corruptS2)/2] ^= 0xff
	corruptZstd := cat([]byte{byte(codec.Zstd)}, okZstd)
	corruptZstd[len(corruptZstd)/2] ^= 0xff
	return []payload{
		{"empty", nil},
		{"unknown marker 3", []byte{3, 'x'}},
		{"unknown marker 0xff", []byte{0xff}},
		{"s2 no header", []byte{byte(codec.S2)}},
		{"s2 declaring 4 GiB", s2Declaring(0xffffffff, 0x00)},
		{"s2 declaring 1 MiB + 1", s2Declaring(1<<20+1, bytes.Repeat([]byte{0}, 2000)...)},
		{"s2 declaring beyond MaxRatio", s2Declaring(1<<20, bytes.Repeat([]byte{0}, 100)...)},
		{"s2 bad varint", []byte{byte(codec.S2), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{"s2 corrupt", corruptS2},
		{"s2 truncated", cat([]byte{byte(codec.S2)}, okS2[:len(okS2)/2])},
		{"zstd no header", []byte{byte(codec.Zstd)}},
		{"zstd declaring 4 GiB", zstdHeader(0xffffffff)},
		{"zstd declaring 1 MiB + 1", zstdHeader(1<<20 + 1)},
		{"zstd declaring beyond MaxRatio", zstdHeader(1 << 19)},
		{"zstd declaring more than it holds", zstdHeader(5000)},
		{"zstd without content size", noFCS},
		{"zstd skippable frame", skippable},
		{"zstd with dictionary", withDict},
		{"zstd second frame beyond the first's size", twoFrames},
		{"zstd trailing garbage", cat([]byte{byte(codec.Zstd)}, okZstd, []byte("garbage"))},
		{"zstd corrupt", corruptZstd},
		{"zstd truncated", cat([]byte{byte(codec.Zstd)}, okZstd[:len(okZstd)/2])},
	}
}

func hostileCompressCodec(t testing.TB) codec.Codec[[]byte] {
	return mustCompress(t, codec.Bytes(), codec.CompressOptions{MaxDecodedSize: 1 << 20})
}

func TestCompressHostile(t *testing.T) {
	t.Parallel()
	c := hostileCompressCodec(t)
	for _, p := range hostileCompressed(t) {
		var got []byte
		err := c.Unmarshal(p.data, &got)
		require.Error(t, err, p.name)
		assert.ErrorIs(t, err, codec.ErrDecode, p.name)
	}
}

// TestCompressInnerErrors checks that an inner codec's errors pass through.
func TestCompressInnerErrors(t *testing.T) {
	t.Parallel()
	c := mustCompress(t, codec.MsgPack[[]int](), codec.CompressOptions{Threshold: 1})
	var got []int
	err := c.Unmarshal([]byte{0, 0xdd, 0xff, 0xff, 0xff, 0xff}, &got)
	assert.ErrorIs(t, err, codec.ErrDecode)
	err = c.Unmarshal(cat([]byte{byte(codec.S2)}, s2.Encode(nil, []byte{0xdd, 0xff, 0xff, 0xff, 0xff})), &got)
	assert.ErrorIs(t, err, codec.ErrDecode)
}
