// Package envelope is the format of every value aside stores in Redis.
//
// An entry is a fixed 11-byte header followed by the codec's bytes:
//
//	offset 0   magic 0xC1
//	offset 1   format version (1 or 2)
//	offset 2   kind and flags
//	offset 3   soft expiry, Unix milliseconds, big-endian uint64 (0 = none)
//	offset 11  payload (version 1)
//	offset 11  clear generation, big-endian uint64 (version 2)
//	offset 19  payload (version 2)
//
// Version 2 is version 1 with the generation of the cache's Clear it was
// written under ([AppendGen]): an entry whose generation is below the
// namespace's current one was cleared. An entry of generation 0 is written
// as version 1, so that a namespace never cleared writes what older builds
// read; an older build meets a version-2 entry as [ErrVersion] and loads
// around it.
//
// The kind tells a value, a not-found marker and a lease placeholder apart, so
// none of them can be mistaken for another: a not-found marker is not an empty
// or "*" payload (an empty payload is a real value, for example the zero
// string), and a lease is not a value. Anything that does not start with the
// magic byte is not an entry ([IsEntry] is false; Decode says [ErrCorrupt]):
// the cache reads it as a value another program wrote. Bytes that start with
// the magic but are no entry of any version are [ErrCorrupt]; a version newer
// than this code understands is [ErrVersion], so a rolling upgrade that
// introduces a new format makes old readers miss instead of misreading.
//
// The magic, 0xC1, begins no value another program is likely to store: it is
// never the first byte of valid UTF-8 (an overlong two-byte lead, invalid
// everywhere), so of no text, no JSON document (which is text) and no
// decimal number; and MessagePack never uses it (the specification reserves
// 0xC1 as "never used"). Only raw binary (the cache's codec.Bytes, or
// codec.String holding invalid UTF-8) can begin with it.
//
// A lease is exactly a header without flags or soft expiry and a 16-byte
// token ([LeaseTokenSize]); anything else of kind Lease is [ErrCorrupt], so
// bytes that merely look like a lease are not waited for.
//
// Decoding never allocates and never panics: the returned payload aliases the
// input.
package envelope

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

const (
	// Magic is the first byte of every entry.
	Magic = 0xC1
	magic = Magic
	// Version is the format version of an entry without a generation, and
	// of every lease.
	Version = 1
	// GenVersion is the format version of an entry with a generation.
	GenVersion = 2
	// MaxVersion is the newest format version this package reads.
	MaxVersion = GenVersion
	// HeaderSize is the number of bytes before the payload of a version-1
	// entry.
	HeaderSize = 11
	// GenHeaderSize is the number of bytes before the payload of a
	// version-2 entry.
	GenHeaderSize = HeaderSize + 8
	// genOffset is where a version-2 entry's generation starts.
	genOffset = HeaderSize
	// softOffset is where the soft expiry starts.
	softOffset = 3
	// LeaseTokenSize is the size of a lease's token, its payload.
	LeaseTokenSize = 16
)

// Kind is what an entry holds.
type Kind uint8

const (
	// Value is a value encoded by the cache's codec.
	Value Kind = 1
	// NotFound marks a key the loader reported as absent (negative caching).
	NotFound Kind = 2
	// Lease is a placeholder written by a process that is loading the key;
	// its payload is the lease token.
	Lease Kind = 3
)

const (
	kindMask       = 0x0F
	flagCompressed = 0x10
	// FlagStale marks a value whose soft expiry passed and whose refresh a
	// process has claimed (the cache's claim script sets it in Redis).
	FlagStale  = 0x20
	knownFlags = kindMask | flagCompressed | FlagStale
)

var (
	// ErrCorrupt reports bytes that are not an entry of any version.
	ErrCorrupt = errors.New("envelope: not an aside entry")
	// ErrVersion reports an entry written by a newer format version.
	ErrVersion = errors.New("envelope: entry written by a newer format version")
)

// Entry is a decoded header and its payload.
type Entry struct {
	Kind Kind
	// Compressed records that the payload was compressed by the codec.
	Compressed bool
	// Stale records that the value is past its soft expiry and being (or
	// having failed to be) refreshed.
	Stale bool
	// SoftExpiry is when the value should be refreshed ahead of its hard
	// expiry; the zero time means never.
	SoftExpiry time.Time
	// Gen is the generation of the cache's Clear the entry was written
	// under (0 for a version-1 entry).
	Gen uint64
	// Payload is the codec's bytes (the token for a lease). It aliases the
	// decoded input.
	Payload []byte
}

// Append appends the encoding of a header and payload to dst.
func Append(dst []byte, kind Kind, compressed bool, softExpiry time.Time, payload []byte) []byte {
	return AppendGen(dst, kind, compressed, softExpiry, 0, payload)
}

// AppendGen is Append with the generation gen: a version-2 entry, or a
// version-1 entry when gen is 0.
func AppendGen(dst []byte, kind Kind, compressed bool, softExpiry time.Time, gen uint64, payload []byte) []byte {
	flags := byte(kind) & kindMask
	if compressed {
		flags |= flagCompressed
	}
	var soft uint64
	if !softExpiry.IsZero() {
		if ms := softExpiry.UnixMilli(); ms > 0 {
			soft = uint64(ms)
		}
	}
	version := byte(Version)
	if gen != 0 {
		version = GenVersion
	}
	dst = append(dst, magic, version, flags)
	dst = binary.BigEndian.AppendUint64(dst, soft) // at softOffset
	if gen != 0 {
		dst = binary.BigEndian.AppendUint64(dst, gen) // at genOffset
	}
	return append(dst, payload...)
}

// EncodeGen returns a new entry holding a header with generation gen (see
// AppendGen) and payload.
func EncodeGen(kind Kind, compressed bool, softExpiry time.Time, gen uint64, payload []byte) []byte {
	size := HeaderSize
	if gen != 0 {
		size = GenHeaderSize
	}
	return AppendGen(make([]byte, 0, size+len(payload)), kind, compressed, softExpiry, gen, payload)
}

// HeaderLen is the size of the header AppendGen writes for generation gen.
func HeaderLen(gen uint64) int {
	if gen != 0 {
		return GenHeaderSize
	}
	return HeaderSize
}

// PutHeader writes, in the first HeaderLen(gen) bytes of entry, the header
// AppendGen would write before the payload that follows them.
func PutHeader(entry []byte, kind Kind, compressed bool, softExpiry time.Time, gen uint64) {
	AppendGen(entry[:0:HeaderLen(gen)], kind, compressed, softExpiry, gen, nil)
}

// Encode returns a new entry holding a header and payload.
func Encode(kind Kind, compressed bool, softExpiry time.Time, payload []byte) []byte {
	return Append(make([]byte, 0, HeaderSize+len(payload)), kind, compressed, softExpiry, payload)
}

// Decode parses an entry. The returned payload aliases data.
func Decode(data []byte) (Entry, error) {
	if len(data) < 2 || data[0] != magic {
		return Entry{}, ErrCorrupt
	}
	if data[1] > MaxVersion {
		return Entry{}, fmt.Errorf("%w (version %d, this build reads up to %d)", ErrVersion, data[1], MaxVersion)
	}
	header := HeaderSize
	if data[1] == GenVersion {
		header = GenHeaderSize
	}
	if data[1] == 0 || len(data) < header {
		return Entry{}, ErrCorrupt
	}
	flags := data[2]
	kind := Kind(flags & kindMask)
	if flags&^knownFlags != 0 || kind < Value || kind > Lease {
		return Entry{}, ErrCorrupt
	}
	if kind == Lease && (data[1] != Version || flags != byte(Lease) || len(data) != HeaderSize+LeaseTokenSize || binary.BigEndian.Uint64(data[softOffset:HeaderSize]) != 0) {
		return Entry{}, ErrCorrupt
	}
	e := Entry{Kind: kind, Compressed: flags&flagCompressed != 0, Stale: flags&FlagStale != 0, Payload: data[header:]}
	if header == GenHeaderSize {
		if e.Gen = binary.BigEndian.Uint64(data[genOffset:GenHeaderSize]); e.Gen == 0 {
			return Entry{}, ErrCorrupt // generation 0 is written as version 1
		}
	}
	if soft := binary.BigEndian.Uint64(data[softOffset:HeaderSize]); soft != 0 {
		if soft > 1<<62 {
			return Entry{}, ErrCorrupt
		}
		e.SoftExpiry = time.UnixMilli(int64(soft))
	}
	return e, nil
}

// SetStale returns data with the stale flag set, in place. data must be an
// entry (it is not checked beyond its length).
func SetStale(data []byte) []byte {
	if len(data) > 2 {
		data[2] |= FlagStale
	}
	return data
}

// ClaimScript is the Lua source of the refresh claim (see the cache's
// refresh.go): if KEYS[1] holds a value entry of a version this build reads whose soft
// expiry field equals ARGV[1] (8 bytes, big-endian milliseconds), it replaces
// that field with ARGV[2], sets the stale flag, keeps the key's TTL, and
// returns the new bytes; otherwise it returns nil. The offsets and flags come
// from the layout above, so that the script and Encode never disagree.
var ClaimScript = fmt.Sprintf(`
local v = redis.call('GET', KEYS[1])
if not v or string.len(v) < %[1]d or string.byte(v, 1) ~= %[2]d or (string.byte(v, 2) ~= %[3]d and string.byte(v, 2) ~= %[9]d) then
	return false
end
if bit.band(string.byte(v, 3), %[4]d) ~= %[5]d or string.sub(v, %[6]d, %[1]d) ~= ARGV[1] then
	return false
end
local claimed = string.sub(v, 1, 2) .. string.char(bit.bor(string.byte(v, 3), %[7]d)) .. ARGV[2] .. string.sub(v, %[8]d)
redis.call('SET', KEYS[1], claimed, 'KEEPTTL')
return claimed`,
	HeaderSize, magic, Version, kindMask, Value, softOffset+1, FlagStale, HeaderSize+1, GenVersion)

// IsLease reports whether data is a lease placeholder, without decoding the rest.
func IsLease(data []byte) bool {
	return len(data) == HeaderSize+LeaseTokenSize && data[0] == magic && data[1] == Version && data[2] == byte(Lease)
}

// IsEntry reports whether data begins with the magic byte: whether it is
// aside's to decode (Decode may still find it corrupt) rather than a value
// another program wrote, to be read by the codec alone.
func IsEntry(data []byte) bool {
	return len(data) > 0 && data[0] == magic
}
