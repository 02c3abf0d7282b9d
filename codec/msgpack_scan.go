package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// maxDepth bounds how deeply arrays, maps and extension bodies may nest in a
// MessagePack payload. The decoder recurses once per level, so the bound also
// keeps a hostile payload from growing a goroutine stack without limit.
const maxDepth = 512

// Why a pre-scan.
//
// msgpack/v5 sizes allocations from the lengths a payload declares: an array
// header makes it allocate that many elements up front (decodeSliceValue; its
// element cap is dead code because of an inverted flag test), a bin header
// that many bytes (readN), a map header a map with that many buckets. Five
// bytes declaring 2^27 elements make it allocate 2 GiB before it notices the
// payload is empty. The scanner below walks the payload first, allocating
// nothing, and rejects it unless every declared length is backed by the
// bytes that follow: each array element needs at least one byte, each map
// entry two, a string, bin or extension body its full length. It also rejects
// truncation, trailing bytes, the reserved code 0xc1 and nesting deeper than
// maxDepth. Only then does msgpack see the payload, and every length it reads
// at a value boundary is one the scanner checked.
//
// The catch: msgpack does not always read at value boundaries. When it decodes
// a map (DecodeMapLen) and finds an extension header, it skips the header and
// decodes the extension body as the map, then carries on from wherever that
// map ends. A body is usually opaque bytes (a timestamp's seconds and
// nanoseconds) that the scanner never parsed, so a crafted body would lead the
// decoder to lengths nobody checked. The scanner therefore looks at every
// extension whose body starts with a map code: if the body is exactly one
// valid value, reading it as a map is safe; otherwise the body's offset goes on
// a list of traps, and the reader the decoder reads from refuses to hand out a
// code byte (ReadByte) at a trap. Legitimate decoders read extension bodies
// in bulk (Read), so only the misreading path trips.

// fault describes why a payload was rejected. It is a value, not an error, so
// tentative scans of extension bodies that fail cost no allocation.
type fault struct {
	reason string
	off    int
}

func (f fault) err() error {
	return fmt.Errorf("%w: msgpack: %s at offset %d", ErrDecode, f.reason, f.off)
}

const (
	reasonTruncated = "truncated value"
	reasonReserved  = "reserved code 0xc1"
	reasonTooDeep   = "nesting deeper than 512"
	reasonTrailing  = "trailing bytes after the value"
	reasonLength    = "declared length exceeds the remaining bytes"
)

// scanner validates MessagePack payloads. The zero value is ready to use; it
// is reused through a pool, so its trap list costs no allocation once warm.
type scanner struct {
	// stack holds, for each open container, how many items it still
	// expects; the item being read is tracked in a local variable.
	stack [maxDepth]uint64
	// traps lists, in increasing order, the offsets of extension bodies
	// the decoder must not read a code byte from.
	traps []int
}

// check validates data as exactly one MessagePack value.
func (s *scanner) check(data []byte) error {
	s.traps = s.traps[:0]
	end, f := s.value(data, 0, 0)
	if f.reason != "" {
		return f.err()
	}
	if end != len(data) {
		return fault{reasonTrailing, end}.err()
	}
	return nil
}

// isMapCode reports whether c starts a map (fixmap, map16, map32).
func isMapCode(c byte) bool { return c&0xf0 == 0x80 || c == 0xde || c == 0xdf }

// value walks one value that starts at data[pos] and must end within data,
// with depth levels already open. It returns the offset just past the value.
func (s *scanner) value(data []byte, pos, depth int) (int, fault) {
	base := depth
	pending := uint64(1) // items left in the innermost open container
	for {
		for pending == 0 {
			if depth == base {
				return pos, fault{}
			}
			depth--
			pending = s.stack[depth]
		}
		pending--
		if pos >= len(data) {
			return pos, fault{reasonTruncated, pos}
		}
		c := data[pos]

		// Classify the code: hdr is the size of everything before the
		// variable part (code, length field, extension type), n the
		// number of items (containers) or bytes (everything else).
		var hdr int
		var n uint64
		kind := kindBytes
		switch {
		case c <= 0x7f || c >= 0xe0: // positive and negative fixint
			pos++
			continue
		case c <= 0x8f: // fixmap
			hdr, n, kind = 1, uint64(c&0x0f), kindMap
		case c <= 0x9f: // fixarray
			hdr, n, kind = 1, uint64(c&0x0f), kindItems
		case c <= 0xbf: // fixstr
			hdr, n = 1, uint64(c&0x1f)
		default:
			switch c {
			case 0xc0, 0xc2, 0xc3: // nil, false, true
				pos++
				continue
			case 0xc1:
				return pos, fault{reasonReserved, pos}
			case 0xcc, 0xd0: // uint8, int8
				hdr = 2
			case 0xcd, 0xd1: // uint16, int16
				hdr = 3
			case 0xca, 0xce, 0xd2: // float32, uint32, int32
				hdr = 5
			case 0xcb, 0xcf, 0xd3: // float64, uint64, int64
				hdr = 9
			case 0xc4, 0xd9: // bin8, str8
				hdr = 2
			case 0xc5, 0xda: // bin16, str16
				hdr = 3
			case 0xc6, 0xdb: // bin32, str32
				hdr = 5
			case 0xdc: // array16
				hdr, kind = 3, kindItems
			case 0xdd: // array32
				hdr, kind = 5, kindItems
			case 0xde: // map16
				hdr, kind = 3, kindMap
			case 0xdf: // map32
				hdr, kind = 5, kindMap
			case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16: code, type
				hdr, n, kind = 2, 1<<(c-0xd4), kindExt
			case 0xc7: // ext8: code, length, type
				hdr, kind = 3, kindExt
			case 0xc8: // ext16
				hdr, kind = 4, kindExt
			case 0xc9: // ext32
				hdr, kind = 6, kindExt
			}
		}
		if hdr > len(data)-pos {
			return pos, fault{reasonTruncated, pos}
		}
		// Read the length field of the variable-size codes.
		switch c {
		case 0xc4, 0xd9, 0xc7:
			n = uint64(data[pos+1])
		case 0xc5, 0xda, 0xdc, 0xde, 0xc8:
			n = uint64(binary.BigEndian.Uint16(data[pos+1:]))
		case 0xc6, 0xdb, 0xdd, 0xdf, 0xc9:
			n = uint64(binary.BigEndian.Uint32(data[pos+1:]))
		}
		if kind == kindMap {
			n *= 2
		}
		start := pos
		pos += hdr
		// Every item takes at least one byte and every body its length,
		// so n can never exceed what is left.
		if n > uint64(len(data)-pos) {
			return start, fault{reasonLength, start}
		}
		switch kind {
		case kindBytes:
			pos += int(n)
		case kindItems, kindMap:
			if n == 0 {
				continue
			}
			if depth >= maxDepth {
				return start, fault{reasonTooDeep, start}
			}
			s.stack[depth] = pending
			depth++
			pending = n
		case kindExt:
			body := pos
			pos += int(n)
			if n > 0 && isMapCode(data[body]) {
				s.checkExtBody(data[:pos], body, depth)
			}
		}
	}
}

const (
	kindBytes = iota // scalar, string, bin: n bytes follow the header
	kindItems        // array: n items follow
	kindMap          // map: n entries, 2n items follow
	kindExt          // extension: n body bytes follow
)

// checkExtBody decides whether the body data[body:] of an extension may be
// read as a map (see the comment at the top of the file) and records a trap
// if it may not. The body counts as one more level of nesting.
func (s *scanner) checkExtBody(data []byte, body, depth int) {
	mark := len(s.traps)
	if depth < maxDepth {
		end, f := s.value(data, body, depth+1)
		if f.reason == "" && end == len(data) {
			return
		}
	}
	// Traps found inside an opaque body are moot: the decoder cannot
	// reach them without first reading a code at the body's start.
	s.traps = append(s.traps[:mark], body)
}

// errMisread is returned by reader when the decoder reads a code byte at the
// start of an extension body that is not itself a MessagePack value.
var errMisread = errors.New("msgpack: extension body read as a value")

// reader is what the msgpack decoder reads from: a bytes.Reader that refuses
// to return a code byte at a trap (see the comment at the top of the file).
// It implements io.Reader and io.ByteScanner, so msgpack adds no buffering.
type reader struct {
	data  []byte
	off   int
	traps []int
	next  int  // index of the first trap that may be at or after off
	byteR bool // the last call was a successful ReadByte (for UnreadByte)
}

func (r *reader) reset(data []byte, traps []int) {
	*r = reader{data: data, traps: traps}
}

// Read implements io.Reader. Bulk reads may cover traps: decoders read
// string, bin and extension bodies this way.
func (r *reader) Read(p []byte) (int, error) {
	r.byteR = false
	if r.off >= len(r.data) {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := copy(p, r.data[r.off:])
	r.off += n
	return n, nil
}

// ReadByte implements io.ByteReader; msgpack reads every code with it.
func (r *reader) ReadByte() (byte, error) {
	r.byteR = false
	if r.off >= len(r.data) {
		return 0, io.EOF
	}
	if r.next < len(r.traps) {
		for r.next < len(r.traps) && r.traps[r.next] < r.off {
			r.next++
		}
		if r.next < len(r.traps) && r.traps[r.next] == r.off {
			return 0, errMisread
		}
	}
	c := r.data[r.off]
	r.off++
	r.byteR = true
	return c, nil
}

// UnreadByte implements io.ByteScanner. Like bytes.Reader it only undoes a
// ReadByte, which keeps off from moving back past a trap already passed.
func (r *reader) UnreadByte() error {
	if !r.byteR {
		return errors.New("msgpack: UnreadByte without ReadByte")
	}
	r.byteR = false
	r.off--
	return nil
}
