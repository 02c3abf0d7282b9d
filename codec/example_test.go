package codec_test

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/aside-go/aside/codec"
)

func ExampleMsgPack() {
	type Product struct {
		SKU   string
		Price int64
		Tags  []string
	}
	products := codec.MsgPack[Product]()

	b, err := products.Marshal(Product{SKU: "A-1", Price: 1999, Tags: []string{"new"}})
	if err != nil {
		panic(err)
	}
	var p Product
	if err := products.Unmarshal(b, &p); err != nil {
		panic(err)
	}
	fmt.Printf("%d bytes: %+v\n", len(b), p)
	// Output: 28 bytes: {SKU:A-1 Price:1999 Tags:[new]}
}

// A payload that declares far more than it holds is rejected before msgpack
// sizes anything from it.
func ExampleMsgPack_hostile() {
	// An array32 header declaring 2^27 elements, and nothing else: plain
	// msgpack.Unmarshal allocates 2 GiB for it as []int64.
	hostile := []byte{0xdd, 0x08, 0x00, 0x00, 0x00}
	var v []int64
	err := codec.MsgPack[[]int64]().Unmarshal(hostile, &v)
	fmt.Println(errors.Is(err, codec.ErrDecode))
	fmt.Println(err)
	// Output:
	// true
	// codec: cannot decode: msgpack: declared length exceeds the remaining bytes at offset 0
}

func ExampleJSON() {
	type Point struct {
		X, Y int
	}
	points := codec.JSON[Point]()
	b, _ := points.Marshal(Point{X: 1, Y: 2})
	fmt.Println(string(b))

	var p Point
	err := points.Unmarshal([]byte(`{"X": "one"}`), &p)
	fmt.Println(errors.Is(err, codec.ErrDecode))
	// Output:
	// {"X":1,"Y":2}
	// true
}

func ExampleCompress() {
	docs, err := codec.Compress(codec.String(), codec.CompressOptions{Algorithm: codec.Zstd})
	if err != nil {
		panic(err)
	}
	small, _ := docs.Marshal("short")
	large, _ := docs.Marshal(strings.Repeat("compressible text, ", 1000))
	fmt.Println("short: marker", small[0], "size", len(small))
	fmt.Println("large: marker", large[0], "smaller:", len(large) < 19000)

	var s string
	_ = docs.Unmarshal(large, &s)
	fmt.Println(len(s))
	// Output:
	// short: marker 0 size 6
	// large: marker 2 smaller: true
	// 19000
}

func ExampleFuncs() {
	// A codec for ints stored as decimal text, readable with redis-cli.
	decimal := codec.Funcs[int]{
		MarshalFunc: func(v int) ([]byte, error) { return strconv.AppendInt(nil, int64(v), 10), nil },
		UnmarshalFunc: func(data []byte, v *int) error {
			n, err := strconv.Atoi(string(data))
			*v = n
			return err // Unmarshal wraps it with ErrDecode
		},
	}
	b, _ := decimal.Marshal(42)
	fmt.Println(string(b))

	var n int
	err := decimal.Unmarshal([]byte("x"), &n)
	fmt.Println(errors.Is(err, codec.ErrDecode))
	// Output:
	// 42
	// true
}

func ExampleBytes() {
	raw := codec.Bytes()
	b, _ := raw.Marshal([]byte("as is"))
	var got []byte
	_ = raw.Unmarshal(b, &got) // got is b itself, not a copy
	fmt.Println(string(got), &got[0] == &b[0])
	// Output: as is true
}

func ExampleString() {
	s := codec.String()
	b, _ := s.Marshal("héllo")
	fmt.Println(len(b))
	// Output: 6
}
