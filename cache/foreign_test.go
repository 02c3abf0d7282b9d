package cache_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/codec"
	"github.com/aside-go/aside/internal/envelope"
	"github.com/aside-go/aside/loader"
)

// Values other programs write: bytes without aside's envelope.

// other is a connection of another program: plain rueidis, no aside.
func other(t testing.TB, opt rueidis.ClientOption) rueidis.Client {
	t.Helper()
	opt.DisableCache = true
	rc, err := rueidis.NewClient(opt)
	require.NoError(t, err)
	t.Cleanup(rc.Close)
	return rc
}

func rawSet(t testing.TB, rc rueidis.Client, key, value string, px int64) {
	t.Helper()
	b := rc.B().Set().Key(key).Value(value)
	var err error
	if px > 0 {
		err = rc.Do(context.Background(), b.PxMilliseconds(px).Build()).Error()
	} else {
		err = rc.Do(context.Background(), b.Build()).Error()
	}
	require.NoError(t, err)
}

func rawGet(t testing.TB, rc rueidis.Client, key string) (string, bool) {
	t.Helper()
	v, err := rc.Do(context.Background(), rc.B().Get().Key(key).Build()).ToString()
	if rueidis.IsRedisNil(err) {
		return "", false
	}
	require.NoError(t, err)
	return v, true
}

func rawPTTL(t testing.TB, rc rueidis.Client, key string) int64 {
	t.Helper()
	n, err := rc.Do(context.Background(), rc.B().Pttl().Key(key).Build()).AsInt64()
	require.NoError(t, err)
	return n
}

// TestForeignValueIsAValue: a string another program SET is what a
// codec.String cache returns, with neither a load nor a write, and stays in
// process memory for the next Get until its PTTL; a JSON document another
// program SET is decoded by codec.JSON. Redis keeps the other program's
// bytes.
func TestForeignValueIsAValue(t *testing.T) {
	t.Parallel()
	for _, topo := range topologies() {
		t.Run(topo.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			opt := topo.opt(t)
			rc := other(t, opt)
			client := connectWith(t, opt)
			ns := namespace(t)
			var loads atomic.Int64
			strs, err := cache.New(client, cache.Options[string, string]{
				Namespace: ns, Codec: codec.String(),
				Loader: func(context.Context, string) (string, error) { loads.Add(1); return "loaded", nil },
			})
			require.NoError(t, err)
			before := time.Now() // the expiry is set after it
			rawSet(t, rc, strs.Key("greeting"), "hello", 60_000)
			rawSet(t, rc, strs.Key("forever"), "no expiry", 0)
			rawSet(t, rc, strs.Key("empty"), "", 0)

			v, err := strs.Get(ctx, "greeting")
			require.NoError(t, err)
			assert.Equal(t, "hello", v)
			// Kept in process memory (counted: a read is served from it
			// only while the heartbeat is fresh, which a loaded machine
			// may let lapse).
			assert.Equal(t, 1, strs.Stats().LocalEntries, "the value is kept in process memory")
			v, err = strs.Get(ctx, "greeting")
			require.NoError(t, err)
			assert.Equal(t, "hello", v)
			ttl, err := strs.TTL(ctx, "greeting")
			require.NoError(t, err)
			assert.LessOrEqual(t, ttl, 60*time.Second)
			assert.GreaterOrEqual(t, ttl, 60*time.Second-time.Since(before)-time.Millisecond)

			got, err := strs.GetMany(ctx, []string{"forever", "empty"})
			require.NoError(t, err)
			assert.Equal(t, map[string]string{"forever": "no expiry", "empty": ""}, got)
			n, err := strs.Exists(ctx, "greeting", "forever", "empty", "missing")
			require.NoError(t, err)
			assert.Equal(t, 3, n)
			assert.Zero(t, loads.Load(), "nothing was loaded")
			raw, _ := rawGet(t, rc, strs.Key("greeting"))
			assert.Equal(t, "hello", raw, "the other program's bytes are untouched")
			assert.Equal(t, int64(-1), rawPTTL(t, rc, strs.Key("forever")), "and so is its expiry")

			type profile struct {
				Name  string   `json:"name"`
				Roles []string `json:"roles"`
			}
			docs, err := cache.New(client, cache.Options[string, profile]{Namespace: ns + "-json", Codec: codec.JSON[profile]()})
			require.NoError(t, err)
			rawSet(t, rc, docs.Key("ada"), `{"name":"Ada","roles":["admin"],"extra":1}`, 0)
			p, err := docs.Get(ctx, "ada")
			require.NoError(t, err)
			assert.Equal(t, profile{Name: "Ada", Roles: []string{"admin"}}, p)

			// Another program's change reaches the copy (tracking).
			rawSet(t, rc, strs.Key("greeting"), "bonjour", 60_000)
			require.Eventually(t, func() bool {
				v, err := strs.Get(ctx, "greeting")
				return err == nil && v == "bonjour"
			}, 10*time.Second, time.Millisecond)
		})
	}
}

// TestUnreadableValueIsLeftInRedis: bytes that are no aside entry and that
// the codec cannot decode fail Get and GetMany with ErrCorrupt, the loader
// is not called and nothing is written: the other program's value stays, its
// expiry too.
func TestUnreadableValueIsLeftInRedis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rc := other(t, shared.ClientOption())
	var calls atomic.Int64
	c := userCache(t, connect(t, shared), namespace(t), &calls)
	foreign := map[int64]string{1: "hello", 2: `{"ID":1}`, 3: "", 4: "\xae\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x81"}
	for id, v := range foreign {
		rawSet(t, rc, c.Key(id), v, 60_000)
	}
	for id := range foreign {
		_, err := c.Get(ctx, id)
		require.ErrorIs(t, err, cache.ErrCorrupt, "value %q", foreign[id])
		var ke *loader.KeyError[int64]
		assert.True(t, errors.As(err, &ke), "the error names the key")
	}
	got, err := c.GetMany(ctx, []int64{1, 2, 3, 4, 5})
	require.ErrorIs(t, err, cache.ErrCorrupt)
	assert.Equal(t, map[int64]User{5: sampleUser(5)}, got, "the missing key is loaded")
	assert.EqualValues(t, 1, calls.Load(), "only the missing key was loaded")
	for id, v := range foreign {
		raw, ok := rawGet(t, rc, c.Key(id))
		assert.True(t, ok)
		assert.Equal(t, v, raw, "key %d keeps the other program's bytes", id)
		assert.Positive(t, rawPTTL(t, rc, c.Key(id)), "and its expiry")
	}
	assert.EqualValues(t, 2*len(foreign), c.Stats().DecodeErrors)
}

// TestForeignBytesBeginningWithTheMagic: codec.Bytes holds any bytes, so
// another program may store a value that begins with the envelope's magic.
// Bytes that are no entry are reported (ErrCorrupt) and left; bytes of a
// newer format version (the magic followed by any byte above 1) are loaded
// around, without writing, and counted in DecodeErrors; bytes shaped like
// a lease but without an expiry are no lease (aside's all expire): reported,
// not waited for; bytes shaped like a lease with an expiry are a lease, which
// a LeaseWait bounds. Nothing panics, nothing is overwritten.
func TestForeignBytesBeginningWithTheMagic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rc := other(t, shared.ClientOption())
	var loads atomic.Int64
	c, err := cache.New(connect(t, shared), cache.Options[string, []byte]{
		Namespace: namespace(t), Codec: codec.Bytes(), LeaseWait: 20 * time.Millisecond,
		Loader: func(context.Context, string) ([]byte, error) { loads.Add(1); return []byte("loaded"), nil },
	})
	require.NoError(t, err)
	token := strings.Repeat("t", envelope.LeaseTokenSize)
	lease := string(envelope.Encode(envelope.Lease, false, time.Time{}, []byte(token)))
	cases := []struct {
		name  string
		bytes string
		px    int64
		want  error // nil: loaded without writing
	}{
		{"the magic alone", "\xc1", 0, cache.ErrCorrupt},
		{"magic and text", "\xc1hello", 0, nil}, // 'h' reads as a newer version
		{"a short header", "\xc1\x01\x01\x00", 0, cache.ErrCorrupt},
		{"an unknown kind", "\xc1\x01\x09" + strings.Repeat("\x00", 8), 0, cache.ErrCorrupt},
		{"a lease of the wrong size", lease + "x", 60_000, cache.ErrCorrupt},
		{"a lease without expiry", lease, 0, cache.ErrCorrupt},
		{"a newer version", "\xc1\x07anything", 0, nil},
		{"a lease with an expiry", lease, 60_000, nil},
	}
	for _, tc := range cases {
		key := "k-" + strings.ReplaceAll(tc.name, " ", "-")
		rawSet(t, rc, c.Key(key), tc.bytes, tc.px)
		before := loads.Load()
		v, err := c.Get(ctx, key)
		if tc.want != nil {
			require.ErrorIs(t, err, tc.want, tc.name)
			assert.Equal(t, before, loads.Load(), "%s: nothing loaded", tc.name)
		} else {
			require.NoError(t, err, tc.name)
			assert.Equal(t, "loaded", string(v), tc.name)
		}
		require.NoError(t, cache.AwaitWrites(ctx, c, key))
		raw, ok := rawGet(t, rc, c.Key(key))
		assert.True(t, ok, tc.name)
		assert.Equal(t, tc.bytes, raw, "%s: left in Redis", tc.name)
	}
	// An entry is an entry, whoever wrote it.
	rawSet(t, rc, c.Key("entry"), string(envelope.Encode(envelope.Value, false, time.Time{}, []byte("\xc1raw"))), 0)
	v, err := c.Get(ctx, "entry")
	require.NoError(t, err)
	assert.Equal(t, "\xc1raw", string(v))
}

// TestHostileForeignBytesNeverPanic feeds random bytes, stored by another
// program, to caches of every codec: each Get returns a value or ErrCorrupt
// (or a load around a newer version), never panics, and leaves the bytes.
func TestHostileForeignBytesNeverPanic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rc := other(t, shared.ClientOption())
	client := connect(t, shared)
	ns := namespace(t)
	users := userCache(t, client, ns+"-u", nil, func(o *cache.Options[int64, User]) { o.LocalBytes = -1 })
	zc, err := codec.Compress(codec.MsgPack[User](), codec.CompressOptions{Algorithm: codec.Zstd})
	require.NoError(t, err)
	zipped := userCache(t, client, ns+"-z", nil, func(o *cache.Options[int64, User]) { o.LocalBytes = -1; o.Codec = zc })
	docs := userCache(t, client, ns+"-j", nil, func(o *cache.Options[int64, User]) { o.LocalBytes = -1; o.Codec = codec.JSON[User]() })
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 300 {
		b := make([]byte, r.IntN(64))
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		if round%3 == 0 && len(b) > 0 {
			b[0] = envelope.Magic
		}
		for _, c := range []*cache.Cache[int64, User]{users, zipped, docs} {
			rawSet(t, rc, c.Key(int64(round)), string(b), 60_000)
			_, err := c.Get(ctx, int64(round))
			if err != nil && !errors.Is(err, cache.ErrCorrupt) {
				t.Fatalf("bytes %x: %v", b, err)
			}
			raw, _ := rawGet(t, rc, c.Key(int64(round)))
			require.Equal(t, string(b), raw)
		}
	}
}

// magicSamples are values of every kind the codecs encode.
func magicSamples(r *rand.Rand) []any {
	s := randomText(r)
	return []any{
		s, int64(r.Uint64()), -int64(r.UintN(1 << 20)), r.Float64() * 1e6, r.UintN(2) == 0, nil,
		[]byte(s), []string{s, s}, map[string]any{s: int64(r.UintN(300))}, sampleUser(int64(r.UintN(1 << 40))),
		[]any{s, 1.5, map[string]string{"a": s}},
	}
}

// randomText is valid UTF-8 of every width, some of it at the start.
func randomText(r *rand.Rand) string {
	var sb strings.Builder
	for range r.IntN(40) {
		var c rune
		switch r.IntN(4) {
		case 0:
			c = rune(r.IntN(0x80))
		case 1:
			c = rune(0x80 + r.IntN(0x800-0x80))
		case 2:
			c = rune(0x800 + r.IntN(0xd800-0x800))
		default:
			c = rune(0x10000 + r.IntN(0x10ffff-0x10000))
		}
		sb.WriteRune(c)
	}
	return sb.String()
}

// codecOutputs encodes v with every codec that can take it.
func codecOutputs(t testing.TB, v any) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	put := func(name string, b []byte, err error) {
		if err == nil {
			out[name] = b
		}
	}
	mp := codec.MsgPack[any]()
	b, err := mp.Marshal(v)
	put("msgpack", b, err)
	b, err = codec.JSON[any]().Marshal(v)
	put("json", b, err)
	for _, alg := range []codec.Algorithm{codec.S2, codec.Zstd} {
		for _, threshold := range []int{1, 1 << 20} {
			cc, cerr := codec.Compress(mp, codec.CompressOptions{Algorithm: alg, Threshold: threshold})
			require.NoError(t, cerr)
			b, err = cc.Marshal(v)
			put(fmt.Sprintf("compress-%d-msgpack", alg), b, err)
			cj, cerr := codec.Compress(codec.JSON[any](), codec.CompressOptions{Algorithm: alg, Threshold: threshold})
			require.NoError(t, cerr)
			b, err = cj.Marshal(v)
			put(fmt.Sprintf("compress-%d-json", alg), b, err)
		}
	}
	funcs := codec.Funcs[any]{MarshalFunc: json.Marshal, UnmarshalFunc: func(data []byte, v *any) error { return json.Unmarshal(data, v) }}
	b, err = funcs.Marshal(v)
	put("funcs-json", b, err)
	if s, ok := v.(string); ok && utf8.ValidString(s) {
		b, err = codec.String().Marshal(s)
		put("string-utf8", b, err)
	}
	return out
}

// TestNoCodecOutputBeginsWithTheMagic: whatever MsgPack, JSON, Compress (S2,
// Zstd, stored or compressed), a Funcs codec over encoding/json, and String
// of valid UTF-8 encode, the first byte is never the envelope's magic, so
// aside never mistakes such a value for its own entry. (codec.Bytes and
// codec.String of invalid UTF-8 can begin with it:
// TestForeignBytesBeginningWithTheMagic and TestPlainRefusesTheMagic.)
func TestNoCodecOutputBeginsWithTheMagic(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	n := 0
	for range 500 {
		for _, v := range magicSamples(r) {
			for name, b := range codecOutputs(t, v) {
				n++
				if envelope.IsEntry(b) {
					t.Fatalf("%s of %#v begins with the magic: %x", name, v, b)
				}
			}
		}
	}
	t.Logf("%d encodings checked", n)
}

// FuzzNoCodecOutputBeginsWithTheMagic is the same claim, fuzzed: strings and
// byte strings as values of each codec, as a string, bytes decoded as
// MessagePack or JSON and re-encoded.
func FuzzNoCodecOutputBeginsWithTheMagic(f *testing.F) {
	f.Add("hello", []byte{0x81, 0xa1, 'a', 0x01})
	f.Add("\u00c1", []byte(`{"a":[1,2]}`))
	f.Add("", []byte{0xc1})
	f.Fuzz(func(t *testing.T, s string, b []byte) {
		values := []any{s, b, []any{s}, map[string]any{s: b}}
		var fromMsgpack, fromJSON any
		if codec.MsgPack[any]().Unmarshal(b, &fromMsgpack) == nil {
			values = append(values, fromMsgpack)
		}
		if json.Unmarshal(b, &fromJSON) == nil {
			values = append(values, fromJSON)
		}
		for _, v := range values {
			for name, out := range codecOutputs(t, v) {
				if envelope.IsEntry(out) {
					t.Fatalf("%s of %#v begins with the magic: %x", name, v, out)
				}
			}
		}
	})
}

// TestEnvelopeIsElevenBytesInFront: what the documentation says Redis holds
// for a codec.String "hello" — 16 bytes, the 11-byte header beginning with
// 0xC1, then the codec's bytes — and, in plain mode, "hello" alone.
func TestEnvelopeIsElevenBytesInFront(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := connect(t, shared)
	rc := other(t, shared.ClientOption())
	ns := namespace(t)
	for _, plain := range []bool{false, true} {
		c, err := cache.New(client, cache.Options[string, string]{Namespace: fmt.Sprintf("%s-%v", ns, plain), Codec: codec.String(), Plain: plain})
		require.NoError(t, err)
		require.NoError(t, c.Set(ctx, "k", "hello"))
		raw, ok := rawGet(t, rc, c.Key("k"))
		require.True(t, ok)
		if plain {
			assert.Equal(t, "hello", raw)
			continue
		}
		assert.Len(t, raw, 16)
		assert.Equal(t, envelope.HeaderSize, 11)
		assert.Equal(t, byte(0xc1), raw[0])
		assert.Equal(t, "hello", raw[11:])
	}
}
