package envelope

import (
	"encoding/binary"
	"fmt"
)

// IsMarker reports whether data is one of aside's markers, a not-found marker
// or a lease placeholder, which stand for the absence of a value: every
// operation of a cache treats a key holding one as a key that does not exist.
// Anything else (a value, bytes another program wrote) is not a marker.
func IsMarker(data []byte) bool {
	if len(data) < HeaderSize || data[0] != magic || (data[1] != Version && data[1] != GenVersion) {
		return false
	}
	k := Kind(data[2] & kindMask)
	return k == NotFound || k == Lease
}

// MarkerLua is the Lua source of a function is_marker(v) that answers
// [IsMarker] for the bytes v of a GET inside a script (false, a key that
// holds nothing, is not a marker). It is built from the layout's constants,
// so that scripts and Encode never disagree.
var MarkerLua = fmt.Sprintf(`
local function is_marker(v)
	if type(v) ~= 'string' or string.len(v) < %[1]d or string.byte(v, 1) ~= %[2]d or (string.byte(v, 2) ~= %[3]d and string.byte(v, 2) ~= %[7]d) then
		return false
	end
	local k = bit.band(string.byte(v, 3), %[4]d)
	return k == %[5]d or k == %[6]d
end
`, HeaderSize, magic, Version, kindMask, NotFound, Lease, GenVersion)

// IsCleared reports whether data is an entry of aside's of a generation
// older than gen (a Clear of the namespace came since it was written): a
// version-1 entry is of generation 0. With gen 0 nothing is cleared.
func IsCleared(data []byte, gen uint64) bool {
	if gen == 0 || len(data) < HeaderSize || data[0] != magic {
		return false
	}
	switch data[1] {
	case Version:
		return true
	case GenVersion:
		return len(data) >= GenHeaderSize && binary.BigEndian.Uint64(data[genOffset:GenHeaderSize]) < gen
	}
	return false
}

// ClearedLua is the Lua source of a function is_cleared(v, gen) that answers
// [IsCleared] for the bytes v of a GET inside a script and a generation gen
// (a number), built from the layout's constants. Generations are compared
// as Lua numbers: exact below 2^53 Clears.
var ClearedLua = fmt.Sprintf(`
local function is_cleared(v, gen)
	if gen == 0 or type(v) ~= 'string' or string.len(v) < %[1]d or string.byte(v, 1) ~= %[2]d then
		return false
	end
	local version = string.byte(v, 2)
	if version == %[3]d then
		return true
	end
	if version ~= %[4]d or string.len(v) < %[5]d then
		return false
	end
	local g = 0
	for i = %[6]d, %[5]d do
		g = g * 256 + string.byte(v, i)
	end
	return g < gen
end
`, HeaderSize, magic, Version, GenVersion, GenHeaderSize, genOffset+1)
