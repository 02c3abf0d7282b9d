package codec_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/aside-go/aside/codec"
)

// User is a typical small cached value: about 150 bytes in MessagePack.
type User struct {
	ID        int64
	Name      string
	Email     string
	Age       int
	Admin     bool
	Roles     []string
	Country   string
	CreatedAt time.Time
	Score     float64
}

// Page is a typical large cached value: about 10 KiB in MessagePack.
type Page struct {
	Title string
	Total int
	Users []User
}

func sampleUser(i int) User {
	return User{
		ID:        1_000_000 + int64(i),
		Name:      fmt.Sprintf("Ada Lovelace %d", i),
		Email:     fmt.Sprintf("ada.lovelace.%d@example.com", i),
		Age:       36,
		Admin:     i%2 == 0,
		Roles:     []string{"admin", "editor"},
		Country:   "GB",
		CreatedAt: time.Date(2024, 5, 17, 10, 30, 0, 123456789, time.UTC),
		Score:     98.5,
	}
}

func samplePage() Page {
	p := Page{Title: "All users, page 1", Total: 10_000}
	for i := range 64 {
		p.Users = append(p.Users, sampleUser(i))
	}
	return p
}

type benchCodec[V any] struct {
	name  string
	codec codec.Codec[V]
}

// benchCodecs lists the codecs compared by the benchmarks; "msgpack.Unmarshal"
// is the library without the hardening, as a baseline.
func benchCodecs[V any](b *testing.B) []benchCodec[V] {
	return []benchCodec[V]{
		{"MsgPack", codec.MsgPack[V]()},
		{"msgpack.Unmarshal", codec.Funcs[V]{
			MarshalFunc: func(v V) ([]byte, error) { return msgpack.Marshal(v) },
			UnmarshalFunc: func(data []byte, v *V) error {
				// UsePreallocateValues is off: on, it leaks a goroutine
				// per type.
				return msgpack.NewDecoder(bytes.NewReader(data)).Decode(v)
			},
		}},
		{"JSON", codec.JSON[V]()},
		{"S2(MsgPack)", mustCompress(b, codec.MsgPack[V](), codec.CompressOptions{})},
		{"Zstd(MsgPack)", mustCompress(b, codec.MsgPack[V](), codec.CompressOptions{Algorithm: codec.Zstd})},
	}
}

func benchMarshal[V any](b *testing.B, name string, v V) {
	for _, bc := range benchCodecs[V](b) {
		b.Run(bc.name+"/"+name, func(b *testing.B) {
			enc, err := bc.codec.Marshal(v)
			require.NoError(b, err)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.codec.Marshal(v); err != nil {
					b.Fatal(err)
				}
			}
			// After the loop: b.Loop's timer reset drops reported metrics.
			b.ReportMetric(float64(len(enc)), "encoded-B")
		})
	}
}

func benchUnmarshal[V any](b *testing.B, name string, v V) {
	for _, bc := range benchCodecs[V](b) {
		b.Run(bc.name+"/"+name, func(b *testing.B) {
			enc, err := bc.codec.Marshal(v)
			require.NoError(b, err)
			b.ReportAllocs()
			for b.Loop() {
				var got V
				if err := bc.codec.Unmarshal(enc, &got); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(enc)), "encoded-B")
		})
	}
}

func BenchmarkMarshal(b *testing.B) {
	benchMarshal(b, "User", sampleUser(1))
	benchMarshal(b, "Page", samplePage())
}

func BenchmarkUnmarshal(b *testing.B) {
	benchUnmarshal(b, "User", sampleUser(1))
	benchUnmarshal(b, "Page", samplePage())
}

// BenchmarkMsgPackScan measures the pre-scan alone.
func BenchmarkMsgPackScan(b *testing.B) {
	for _, tc := range []struct {
		name string
		v    any
	}{{"User", sampleUser(1)}, {"Page", samplePage()}} {
		b.Run(tc.name, func(b *testing.B) {
			data, err := codec.MsgPack[any]().Marshal(tc.v)
			require.NoError(b, err)
			scan := codec.NewMsgPackScanner()
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if err := scan(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
