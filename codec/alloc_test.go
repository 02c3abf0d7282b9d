package codec_test

import (
	"bytes"
	"runtime"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/codec"
)

// The tests in this file measure heap allocation with runtime.ReadMemStats,
// so they must not run alongside other tests: they do not call t.Parallel,
// and Go runs every sequential top-level test before it resumes the parallel
// ones.

// allocated returns the bytes allocated on the heap while f ran.
//
// TotalAlloc counts the whole process, so an allocation of another goroutine
// (the fuzzing engine's, a parallel test's) can land inside one measurement.
// f runs three times and the least is kept: f allocates the same every time,
// and a stray allocation of someone else does not repeat in all three.
func allocated(f func()) uint64 {
	least := ^uint64(0)
	for range 3 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	return least
}

const slack = 64 << 10

// TestMsgPackHostileAllocation checks the bound of malformed payloads: an
// error wrapping ErrDecode, having allocated at most 2 × len + 64 KiB (in
// practice the error message alone).
func TestMsgPackHostileAllocation(t *testing.T) {
	for _, p := range hostilePayloads(t) {
		for _, tg := range hostileTargets() {
			_ = tg.decode(p.data) // warm the pools up
			var err error
			n := allocated(func() { err = tg.decode(p.data) })
			require.ErrorIs(t, err, codec.ErrDecode, "%s into %s", p.name, tg.name)
			budget := 2*uint64(len(p.data)) + slack
			require.LessOrEqual(t, n, budget, "%s (%d bytes) into %s", p.name, len(p.data), tg.name)
			if p.name == "array32 2^27" && tg.name == "[]int64" {
				t.Logf("5-byte array32 declaring 2^27 elements into []int64: %d bytes allocated, err: %v", n, err)
			}
		}
	}
}

// Big stands for a large element type.
type Big struct{ A [32]int64 }

// TestMsgPackAmplification measures well-formed payloads that describe more
// memory than they occupy, and checks the bound MsgPack documents:
// len(data) × (4E + 128) + 64 KiB, E the size of the largest element of the
// target (slice element, map key plus value, pointer target).
func TestMsgPackAmplification(t *testing.T) {
	const n = 1 << 14
	array := func(elem ...byte) []byte { return cat(be32(0xdd, n), bytes.Repeat(elem, n)) }
	dupMap := func(entry ...byte) []byte { return cat(be32(0xdf, n), bytes.Repeat(entry, n)) }
	str := cat(be32(0xdb, 1<<20), bytes.Repeat([]byte("x"), 1<<20))
	bin := cat(be32(0xc6, 1<<20), bytes.Repeat([]byte("x"), 1<<20))
	sizeBig := uint64(unsafe.Sizeof(Big{}))
	tests := []struct {
		name   string
		data   []byte
		decode func([]byte) error
		e      uint64 // largest element size of the target
	}{
		{"1 MiB string", str, targetOf[string]("").decode, 0},
		{"1 MiB []byte", bin, targetOf[[]byte]("").decode, 0},
		{"nils into []Big", array(0xc0), targetOf[[]Big]("").decode, sizeBig},
		{"strings into []Big (type mismatch)", array(0xa0), targetOf[[]Big]("").decode, sizeBig},
		{"fixints into []int64", array(0x01), targetOf[[]int64]("").decode, 8},
		{"empty maps into []*Inner", array(0x80), targetOf[[]*Inner]("").decode, uint64(unsafe.Sizeof(Inner{}))},
		{"empty maps into []*Big", array(0x80), targetOf[[]*Big]("").decode, sizeBig},
		{"duplicate keys into map[string]any", dupMap(0xa0, 0xc0), targetOf[map[string]any]("").decode, 32},
		{"duplicate keys into map[int]Big", dupMap(0x00, 0xc0), targetOf[map[int]Big]("").decode, 8 + sizeBig},
		{"1-entry maps into []map[string]int", array(0x81, 0xa0, 0x00), targetOf[[]map[string]int]("").decode, 24},
		{"1-entry maps into []map[int]Big", array(0x81, 0x00, 0xc0), targetOf[[]map[int]Big]("").decode, 8 + sizeBig},
		{"empty maps into []any", array(0x80), targetOf[[]any]("").decode, 16},
		{"empty arrays into []any", array(0x90), targetOf[[]any]("").decode, 16},
		{"1-entry maps into []any", array(0x81, 0xa0, 0xc0), targetOf[[]any]("").decode, 32},
		{"empty maps into any", array(0x80), targetOf[any]("").decode, 16},
	}
	for _, tc := range tests {
		_ = tc.decode(tc.data)
		var err error
		got := allocated(func() { err = tc.decode(tc.data) })
		perByte := 4*tc.e + 128
		t.Logf("%-36s %8d B -> %9d B allocated (%5.1f per byte, bound %3d), err: %v",
			tc.name, len(tc.data), got, float64(got)/float64(len(tc.data)), perByte, err)
		assert.LessOrEqual(t, got, uint64(len(tc.data))*perByte+slack, tc.name)
	}
}

// TestMsgPackStringsAllocation checks the tighter bound of payloads made of
// strings and byte slices: at most 2 × len(data) + 64 KiB.
func TestMsgPackStringsAllocation(t *testing.T) {
	if raceEnabled {
		// Under -race, msgpack's read buffer costs one more copy of the
		// payload (the compiler keeps the temporary of its
		// append(b, make(...)...) idiom), so the 2× bound only holds in a
		// normal build: `make test` runs this test again without -race.
		t.Skip("the 2× bound is checked without -race (make test runs it so)")
	}
	big := bytes.Repeat([]byte("x"), 1<<20)
	tests := []struct {
		name   string
		data   []byte
		decode func([]byte) error
	}{
		{"str32 into string", cat(be32(0xdb, 1<<20), big), targetOf[string]("").decode},
		{"bin32 into []byte", cat(be32(0xc6, 1<<20), big), targetOf[[]byte]("").decode},
		{"str32 into any", cat(be32(0xdb, 1<<20), big), targetOf[any]("").decode},
		{"bin32 into any", cat(be32(0xc6, 1<<20), big), targetOf[any]("").decode},
		{"struct of strings", cat([]byte{0x82}, fixstr("Str"), be32(0xdb, 1<<19), big[:1<<19],
			fixstr("Bytes"), be32(0xc6, 1<<19), big[:1<<19]), targetOf[Doc]("").decode},
		{"many short strings", cat(be32(0xdd, 1<<16), bytes.Repeat(fixstr("0123456789abcdef"), 1<<16)),
			targetOf[[]string]("").decode},
	}
	for _, tc := range tests {
		_ = tc.decode(tc.data)
		var err error
		got := allocated(func() { err = tc.decode(tc.data) })
		require.NoError(t, err, tc.name)
		t.Logf("%-20s %8d B -> %8d B allocated (%.2f per byte)", tc.name, len(tc.data), got, float64(got)/float64(len(tc.data)))
		assert.LessOrEqual(t, got, 2*uint64(len(tc.data))+slack, tc.name)
	}
}
