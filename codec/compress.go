package codec

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// Algorithm selects the compression format of Compress. Its value is the
// marker byte written in front of a compressed payload, so the constants
// below are part of the stored format and never change.
type Algorithm uint8

const (
	// S2 is the default: an extension of Snappy (github.com/klauspost/compress/s2,
	// block format), the faster of the two, the right trade for values
	// on the request path.
	S2 Algorithm = 1
	// Zstd (github.com/klauspost/compress/zstd, one frame per payload)
	// compresses better than S2 for more CPU: the 9 KiB MessagePack value
	// of this package's benchmarks takes 572 bytes against 1240 with S2.
	Zstd Algorithm = 2
)

// markerStored marks a payload Compress kept as is: it was under the
// threshold, did not shrink, or compressed beyond what Unmarshal accepts.
const markerStored = 0

// Level trades speed for size within an algorithm.
type Level uint8

const (
	// LevelDefault is s2.Encode for S2 and zstd.SpeedDefault for Zstd.
	LevelDefault Level = iota
	// LevelFastest is s2.Encode for S2 and zstd.SpeedFastest for Zstd.
	LevelFastest
	// LevelBetter is s2.EncodeBetter for S2 and
	// zstd.SpeedBetterCompression for Zstd.
	LevelBetter
	// LevelBest is s2.EncodeBest for S2 and zstd.SpeedBestCompression for
	// Zstd; much slower to encode, no slower to decode.
	LevelBest
)

// Defaults of CompressOptions.
const (
	DefaultThreshold      = 1 << 10
	DefaultMaxDecodedSize = 64 << 20
	DefaultMaxRatio       = 1024
)

// CompressOptions configures Compress. The zero value selects S2 at its
// default level with the documented defaults.
type CompressOptions struct {
	// Algorithm compresses new payloads; zero means S2. Unmarshal reads
	// payloads of every algorithm whatever this says, so it can be changed
	// without invalidating a cache.
	Algorithm Algorithm

	// Level of the Algorithm; zero means LevelDefault.
	Level Level

	// Threshold is the smallest encoded size worth compressing; smaller
	// payloads are stored as is, since compressing them costs more CPU than
	// the bytes it saves. Zero means DefaultThreshold (1 KiB); 1 compresses
	// every non-empty payload.
	Threshold int

	// MaxDecodedSize is the largest decompressed size Unmarshal accepts.
	// The size a compressed payload declares is checked against it before
	// anything is allocated. Zero means DefaultMaxDecodedSize (64 MiB).
	MaxDecodedSize int

	// MaxRatio bounds the decompressed size relative to the compressed
	// one: Unmarshal rejects a payload that declares more than MaxRatio
	// times its own length, so small hostile payloads cannot each claim
	// MaxDecodedSize. Zero means DefaultMaxRatio (1024), beyond anything
	// but long runs of repeated bytes; a negative value disables the check.
	MaxRatio int
}

// ErrInvalidOptions is wrapped by the error Compress returns for options it
// cannot use; the message names the field.
var ErrInvalidOptions = errors.New("codec: invalid options")

// Compress wraps inner so that payloads of at least opts.Threshold bytes are
// compressed. Every payload starts with one marker byte: 0 for a payload
// stored as is, otherwise the Algorithm that compressed it.
//
// Unmarshal treats its input as hostile. An unknown marker, corrupt
// compressed data, or a declared decompressed size above MaxDecodedSize or
// MaxRatio times the payload length yields an error wrapping ErrDecode
// before any buffer is allocated, so decompression allocates at most
// min(MaxDecodedSize, MaxRatio × len(data)) bytes (zstd adds its per-decoder
// buffers, allocated once). The decompressed bytes are then handed to inner,
// whose own bounds apply.
//
// Marshal never produces a payload its own Unmarshal would refuse: a value
// larger than MaxDecodedSize, or one that compresses beyond MaxRatio, is
// stored uncompressed, which is also what happens to payloads compression
// does not shrink.
func Compress[V any](inner Codec[V], opts CompressOptions) (Codec[V], error) {
	c := &compressCodec[V]{
		inner:      inner,
		alg:        opts.Algorithm,
		level:      opts.Level,
		threshold:  opts.Threshold,
		maxDecoded: opts.MaxDecodedSize,
		maxRatio:   opts.MaxRatio,
	}
	switch {
	case inner == nil:
		return nil, fmt.Errorf("%w: inner codec is nil", ErrInvalidOptions)
	case c.alg == 0:
		c.alg = S2
	case c.alg != S2 && c.alg != Zstd:
		return nil, fmt.Errorf("%w: CompressOptions.Algorithm %d is unknown", ErrInvalidOptions, c.alg)
	}
	if c.level > LevelBest {
		return nil, fmt.Errorf("%w: CompressOptions.Level %d is unknown", ErrInvalidOptions, c.level)
	}
	switch {
	case c.threshold < 0:
		return nil, fmt.Errorf("%w: CompressOptions.Threshold %d is negative", ErrInvalidOptions, c.threshold)
	case c.threshold == 0:
		c.threshold = DefaultThreshold
	}
	switch {
	case c.maxDecoded < 0:
		return nil, fmt.Errorf("%w: CompressOptions.MaxDecodedSize %d is negative", ErrInvalidOptions, c.maxDecoded)
	case c.maxDecoded == 0:
		c.maxDecoded = DefaultMaxDecodedSize
	case uint64(c.maxDecoded) > math.MaxUint32:
		// The S2 block format cannot describe more.
		return nil, fmt.Errorf("%w: CompressOptions.MaxDecodedSize %d is over 4 GiB", ErrInvalidOptions, c.maxDecoded)
	}
	if c.maxRatio == 0 {
		c.maxRatio = DefaultMaxRatio
	}
	return c, nil
}

type compressCodec[V any] struct {
	inner      Codec[V]
	alg        Algorithm
	level      Level
	threshold  int
	maxDecoded int
	maxRatio   int // negative: unlimited
}

func (c *compressCodec[V]) Marshal(v V) ([]byte, error) {
	raw, err := c.inner.Marshal(v)
	if err != nil {
		return nil, err
	}
	if len(raw) >= c.threshold && len(raw) <= c.maxDecoded {
		out, err := c.compress(raw)
		if err != nil {
			return nil, err
		}
		if out != nil {
			return out, nil
		}
	}
	out := make([]byte, 1+len(raw))
	out[0] = markerStored
	copy(out[1:], raw)
	return out, nil
}

// scratchPool holds encode buffers of up to maxPooled bytes.
var scratchPool = sync.Pool{New: func() any { return new([]byte) }}

// compress returns the marked compressed form of raw, or nil if raw should
// be stored as is.
func (c *compressCodec[V]) compress(raw []byte) ([]byte, error) {
	bound := len(raw) + 1
	if c.alg == S2 {
		n := s2.MaxEncodedLen(len(raw))
		if n < 0 {
			return nil, nil // too large for an S2 block
		}
		bound = 1 + n
	}
	sp := scratchPool.Get().(*[]byte)
	defer func() {
		if cap(*sp) <= maxPooled {
			scratchPool.Put(sp)
		}
	}()
	if cap(*sp) < bound {
		*sp = make([]byte, bound)
	}
	scratch := (*sp)[:bound]
	scratch[0] = byte(c.alg)

	var body []byte
	switch c.alg {
	case S2:
		switch c.level {
		case LevelBetter:
			body = s2.EncodeBetter(scratch[1:], raw)
		case LevelBest:
			body = s2.EncodeBest(scratch[1:], raw)
		default:
			body = s2.Encode(scratch[1:], raw)
		}
	case Zstd:
		enc, err := zstdEncoder(c.level)
		if err != nil {
			return nil, fmt.Errorf("%w: zstd: %w", ErrEncode, err)
		}
		// If the frame outgrows the scratch, EncodeAll reallocates and
		// the result is dropped below as not worth storing.
		body = enc.EncodeAll(raw, scratch[1:1])
	}
	if len(body) >= len(raw) || c.declaredTooLarge(uint64(len(raw)), len(body)) != nil {
		return nil, nil
	}
	out := make([]byte, 1+len(body))
	out[0] = byte(c.alg)
	copy(out[1:], body)
	return out, nil
}

// declaredTooLarge checks a decompressed size declared by a compressed body
// of bodyLen bytes against the limits.
func (c *compressCodec[V]) declaredTooLarge(n uint64, bodyLen int) error {
	if n > uint64(c.maxDecoded) {
		return fmt.Errorf("%w: compressed payload declares %d bytes, over MaxDecodedSize %d",
			ErrDecode, n, c.maxDecoded)
	}
	if c.maxRatio > 0 && n > uint64(c.maxRatio)*uint64(bodyLen) {
		return fmt.Errorf("%w: compressed payload of %d bytes declares %d bytes, over MaxRatio %d",
			ErrDecode, bodyLen, n, c.maxRatio)
	}
	return nil
}

func (c *compressCodec[V]) Unmarshal(data []byte, v *V) error {
	if len(data) == 0 {
		return fmt.Errorf("%w: compressed payload is empty", ErrDecode)
	}
	body := data[1:]
	switch data[0] {
	case markerStored:
		return c.inner.Unmarshal(body, v)
	case byte(S2):
		n, err := s2.DecodedLen(body)
		if err != nil {
			return fmt.Errorf("%w: s2: %w", ErrDecode, err)
		}
		if err := c.declaredTooLarge(uint64(n), len(body)); err != nil {
			return err
		}
		out, err := s2.Decode(make([]byte, n), body)
		if err != nil {
			return fmt.Errorf("%w: s2: %w", ErrDecode, err)
		}
		return c.inner.Unmarshal(out, v)
	case byte(Zstd):
		out, err := c.unzstd(body)
		if err != nil {
			return err
		}
		return c.inner.Unmarshal(out, v)
	default:
		return fmt.Errorf("%w: unknown compression marker %#x", ErrDecode, data[0])
	}
}

// unzstd decompresses one zstd frame whose header declares its size.
func (c *compressCodec[V]) unzstd(body []byte) ([]byte, error) {
	var h zstd.Header
	if err := h.Decode(body); err != nil {
		return nil, fmt.Errorf("%w: zstd: %w", ErrDecode, err)
	}
	// Marshal writes single-segment frames, which always carry their
	// content size; without it the size could only be learnt by
	// decompressing.
	switch {
	case h.Skippable:
		return nil, fmt.Errorf("%w: zstd: skippable frame", ErrDecode)
	case !h.HasFCS:
		return nil, fmt.Errorf("%w: zstd: frame does not declare its size", ErrDecode)
	case h.DictionaryID != 0:
		return nil, fmt.Errorf("%w: zstd: frame needs dictionary %d", ErrDecode, h.DictionaryID)
	}
	if err := c.declaredTooLarge(h.FrameContentSize, len(body)); err != nil {
		return nil, err
	}
	dec, err := zstdDecoder()
	if err != nil {
		return nil, fmt.Errorf("%w: zstd: %w", ErrDecode, err)
	}
	// The decoder is built with WithDecodeAllCapLimit: it will not write
	// past cap(dst), whatever the frames that follow claim.
	n := int(h.FrameContentSize)
	out, err := dec.DecodeAll(body, make([]byte, 0, n))
	if err != nil {
		return nil, fmt.Errorf("%w: zstd: %w", ErrDecode, err)
	}
	if len(out) != n {
		return nil, fmt.Errorf("%w: zstd: decoded %d bytes, frame declared %d", ErrDecode, len(out), n)
	}
	return out, nil
}

// zstd encoders and the decoder are safe for concurrent use and costly to
// build (their state runs to megabytes), so the package shares one per level,
// built on first use.
var (
	zstdEncoders = [...]func() (*zstd.Encoder, error){
		LevelDefault: newZstdEncoder(zstd.SpeedDefault),
		LevelFastest: newZstdEncoder(zstd.SpeedFastest),
		LevelBetter:  newZstdEncoder(zstd.SpeedBetterCompression),
		LevelBest:    newZstdEncoder(zstd.SpeedBestCompression),
	}
	zstdDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
		return zstd.NewReader(nil,
			zstd.WithDecodeAllCapLimit(true),
			zstd.WithDecoderConcurrency(0), // GOMAXPROCS concurrent DecodeAll calls
		)
	})
)

func newZstdEncoder(l zstd.EncoderLevel) func() (*zstd.Encoder, error) {
	return sync.OnceValues(func() (*zstd.Encoder, error) {
		// Single-segment frames always carry their content size, which
		// Unmarshal requires; DecodeAll holds the whole output anyway.
		return zstd.NewWriter(nil, zstd.WithEncoderLevel(l), zstd.WithSingleSegment(true))
	})
}

func zstdEncoder(l Level) (*zstd.Encoder, error) { return zstdEncoders[l]() }
