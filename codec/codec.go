package codec

import (
	"errors"
	"fmt"
)

// Codec turns values of type V into bytes and back.
//
// Implementations must be safe for concurrent use: one codec serves every
// goroutine of a cache.
type Codec[V any] interface {
	// Marshal encodes v. The caller owns the returned slice.
	Marshal(v V) ([]byte, error)
	// Unmarshal decodes data into *v, replacing what *v held. It must
	// treat data as untrusted: a malformed payload yields an error that
	// wraps ErrDecode, never a panic.
	Unmarshal(data []byte, v *V) error
}

// PrefixMarshaler is implemented by a Codec that can leave room before its
// encoding: MarshalAfter returns prefix bytes the caller fills, then the
// encoding of v, in one slice the caller owns. The cache writes its header
// there instead of copying the encoding after it: one allocation per value
// written instead of two. Codecs that do not implement it are used through
// Marshal.
type PrefixMarshaler[V any] interface {
	MarshalAfter(prefix int, v V) ([]byte, error)
}

var (
	// ErrDecode is wrapped by every error Unmarshal returns for a payload
	// it cannot decode: corrupt or truncated bytes, bytes of another
	// format, or bytes that do not fit the target type.
	ErrDecode = errors.New("codec: cannot decode")

	// ErrEncode is wrapped by every error Marshal returns, for instance for
	// a value of a type the format cannot represent.
	ErrEncode = errors.New("codec: cannot encode")
)

// Funcs adapts a pair of functions to Codec, so a codec can be written as two
// closures. Errors the functions return are wrapped with ErrEncode and
// ErrDecode (unless they already wrap them), keeping the contract of Codec for
// callers that test with errors.Is.
type Funcs[V any] struct {
	// MarshalFunc implements Codec.Marshal; it must not be nil.
	MarshalFunc func(v V) ([]byte, error)
	// UnmarshalFunc implements Codec.Unmarshal; it must not be nil.
	UnmarshalFunc func(data []byte, v *V) error
}

var errNilFunc = errors.New("codec: Funcs with a nil function")

// Marshal calls f.MarshalFunc.
func (f Funcs[V]) Marshal(v V) ([]byte, error) {
	if f.MarshalFunc == nil {
		return nil, fmt.Errorf("%w: %w", ErrEncode, errNilFunc)
	}
	b, err := f.MarshalFunc(v)
	if err != nil && !errors.Is(err, ErrEncode) {
		err = fmt.Errorf("%w: %w", ErrEncode, err)
	}
	return b, err
}

// Unmarshal calls f.UnmarshalFunc.
func (f Funcs[V]) Unmarshal(data []byte, v *V) error {
	if f.UnmarshalFunc == nil {
		return fmt.Errorf("%w: %w", ErrDecode, errNilFunc)
	}
	err := f.UnmarshalFunc(data, v)
	if err != nil && !errors.Is(err, ErrDecode) {
		err = fmt.Errorf("%w: %w", ErrDecode, err)
	}
	return err
}

// String returns a codec that stores a string as its raw bytes. Both
// directions copy, so neither side aliases the other's memory. Every byte
// sequence decodes (no UTF-8 check), so Unmarshal never fails.
func String() Codec[string] { return stringCodec{} }

type stringCodec struct{}

func (stringCodec) Marshal(v string) ([]byte, error) { return []byte(v), nil }

func (stringCodec) Unmarshal(data []byte, v *string) error {
	*v = string(data)
	return nil
}

// Bytes returns a codec that stores a byte slice as is, without copying.
//
// Ownership moves in both directions: Marshal returns v itself, so the caller
// must not modify v while the result is in use; Unmarshal stores data itself
// in *v, so the caller hands data over and must not modify or reuse it
// afterwards. A nil and an empty slice are not told apart: both encode to no
// bytes, and Unmarshal yields whatever slice it was given. Unmarshal never
// fails.
func Bytes() Codec[[]byte] { return bytesCodec{} }

type bytesCodec struct{}

func (bytesCodec) Marshal(v []byte) ([]byte, error) { return v, nil }

func (bytesCodec) Unmarshal(data []byte, v *[]byte) error {
	*v = data
	return nil
}

// Compile-time checks that the adapters satisfy Codec.
var (
	_ Codec[int]    = Funcs[int]{}
	_ Codec[string] = stringCodec{}
	_ Codec[[]byte] = bytesCodec{}
)
