package codec

import (
	"bytes"
	"fmt"
	"strings"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// MsgPack returns a codec over MessagePack (github.com/vmihailenco/msgpack/v5),
// compact and fast, hardened against hostile payloads.
//
// Encoding uses msgpack's defaults (struct fields keyed by the `msgpack` tag
// or the Go field name, map entries in Go's random order) except that integers
// take their smallest encoding whatever their Go width.
//
// What survives a round trip: nil and empty slices and maps stay apart (nil is
// encoded as nil, empty as a zero-length array or map); a nil pointer stays
// nil; time.Time keeps its instant to the nanosecond but decodes in
// time.Local (a zero time decodes as UTC), losing its location and monotonic
// clock reading. Integers decoded into an interface{} take the type of their
// smallest encoding: int8 up to 127, then uint8 through uint64 when
// non-negative, int8 through int64 when negative. Unknown struct fields are
// skipped, so a type may gain fields without breaking values already cached.
//
// # Hostile input
//
// Unmarshal validates the payload before msgpack sees it, without allocating:
// any declared length the rest of the payload cannot back (array, map, str,
// bin, ext, at any width and depth), truncation, trailing bytes, the reserved
// code 0xc1 or nesting deeper than 512 is rejected with an error wrapping
// ErrDecode, having allocated nothing but the error. So no length written in
// a payload ever sizes an allocation larger than the payload itself.
//
// A well-formed payload can still describe more memory than it occupies,
// because one payload byte can become one element of the target: decoding
// allocates at most about len(data) × (4E + 128) + 64 KiB bytes, where E is
// the size of the largest element reachable from V (a slice element, a map
// key plus value, the target of a pointer; an interface{} value counts 16, a
// map[string]interface{} entry 32). Measured, in bytes per payload byte: a
// string 2, a []byte 1, nils into []T 2 × unsafe.Sizeof(T) (msgpack
// allocates the slice twice), one-entry maps into []map[string]int 99,
// values decoded into interface{} up to 123. So a 1 MiB payload of nils
// decoded into []T with a 256-byte T allocates 512 MiB, and a payload whose
// elements do not fit the target allocates the slice before it fails. Cap the size of cached values
// when V has large elements (Compress's MaxDecodedSize caps what it hands to
// this codec).
func MsgPack[V any]() Codec[V] { return msgPackCodec[V]{} }

type msgPackCodec[V any] struct{}

// maxPooled is the largest buffer a pooled encoder or decoder may keep, so a
// rare large value does not pin its memory in the pool.
const maxPooled = 64 << 10

type encodeState struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

var encodePool = sync.Pool{New: func() any {
	st := new(encodeState)
	st.enc = msgpack.NewEncoder(&st.buf)
	return st
}}

type decodeState struct {
	scan scanner
	r    reader
	dec  *msgpack.Decoder
}

var decodePool = sync.Pool{New: func() any {
	st := new(decodeState)
	st.dec = msgpack.NewDecoder(&st.r)
	return st
}}

func (c msgPackCodec[V]) Marshal(v V) ([]byte, error) { return c.MarshalAfter(0, v) }

// MarshalAfter implements [PrefixMarshaler].
func (msgPackCodec[V]) MarshalAfter(prefix int, v V) ([]byte, error) {
	st := encodePool.Get().(*encodeState)
	st.buf.Reset()
	st.enc.Reset(&st.buf) // also clears options a previous user may have set
	st.enc.UseCompactInts(true)
	err := st.enc.Encode(v)
	var out []byte
	if err == nil {
		// Copy out so the pooled buffer can be reused: one exact-size
		// allocation instead of the growth steps of a fresh buffer.
		out = make([]byte, prefix+st.buf.Len())
		copy(out[prefix:], st.buf.Bytes())
	}
	if st.buf.Cap() <= maxPooled {
		encodePool.Put(st)
	}
	if err != nil {
		return nil, msgpackErr(ErrEncode, err)
	}
	return out, nil
}

func (msgPackCodec[V]) Unmarshal(data []byte, v *V) error {
	var zero V
	*v = zero // decode into a clean value: msgpack merges into maps and reuses slices
	st := decodePool.Get().(*decodeState)
	err := st.unmarshal(data, v)
	st.r.reset(nil, nil) // drop the reference to the caller's bytes
	// The decoder keeps a scratch buffer as large as the longest string it
	// read, and the trap list one entry per three bytes at worst: both are
	// bounded by len(data).
	if len(data) <= maxPooled {
		if cap(st.scan.traps) > 256 {
			st.scan.traps = nil
		}
		decodePool.Put(st)
	}
	return err
}

func (st *decodeState) unmarshal(data []byte, v any) error {
	if err := st.scan.check(data); err != nil {
		return err
	}
	st.r.reset(data, st.scan.traps)
	// Reset clears every decoder option. In particular it leaves
	// UsePreallocateValues off: msgpack.Unmarshal turns it on, and it starts
	// a goroutine per decoded type that never exits.
	st.dec.Reset(&st.r)
	if err := st.dec.Decode(v); err != nil {
		return msgpackErr(ErrDecode, err)
	}
	return nil
}

// msgpackErr wraps an error of the msgpack library as kind, naming the codec
// once: the library's own messages already begin with "msgpack: ".
func msgpackErr(kind, err error) error {
	if strings.HasPrefix(err.Error(), "msgpack: ") {
		return fmt.Errorf("%w: %w", kind, err)
	}
	return fmt.Errorf("%w: msgpack: %w", kind, err)
}
