package envelope

import "fmt"

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
