package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/codec"
	"github.com/aside-go/aside/internal/envelope"
	"github.com/aside-go/aside/internal/redistest"
	"github.com/aside-go/aside/loader"
	"github.com/aside-go/aside/ttlpolicy"
)

type product struct {
	ID    int64
	Name  string
	Price int64
	Tags  []string
}

type doc struct {
	Title string `json:"title"`
	Pages int    `json:"pages"`
}

// server starts a private redis-server and returns its URL and a client of
// it (closed with the test).
func server(t *testing.T) (*redistest.Server, string, rueidis.Client) {
	t.Helper()
	srv := redistest.Start(t, redistest.Config{})
	opt := srv.ClientOption()
	opt.DisableCache = true
	rc, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Close)
	return srv, "redis://" + srv.Addr(), rc
}

func connectCache(t *testing.T, srv *redistest.Server) *cache.Client {
	t.Helper()
	c, err := cache.Connect(srv.ClientOption())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// inspect runs the command against url and returns its output.
func inspect(t *testing.T, url string, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), append([]string{"-url", url}, args...), &out); err != nil {
		t.Fatalf("aside-inspect %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	t.Logf("$ aside-inspect %s\n%s", strings.Join(args, " "), out.String())
	return out.String()
}

func mustContain(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

func mustMatch(t *testing.T, out string, pattern string) {
	t.Helper()
	if !regexp.MustCompile(pattern).MatchString(out) {
		t.Errorf("output does not match %q:\n%s", pattern, out)
	}
}

// jsonLines decodes the JSON lines of out.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	return lines
}

// TestGetEntries writes through the library (values of each codec, a
// not-found marker, a held lease, a tag index) and reads every key back.
func TestGetEntries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, url, _ := server(t)
	client := connectCache(t, srv)

	products, err := cache.New(client, cache.Options[int64, product]{
		Namespace: "product",
		Codec:     codec.MsgPack[product](),
		TTL:       ttlpolicy.Minutes(10).WithJitter(0).WithSoft(0.5).WithNegativeTTL(30 * time.Second),
		Loader: func(_ context.Context, id int64) (product, error) {
			if id > 1000 {
				return product{}, loader.ErrNotFound
			}
			return product{ID: id, Name: "lamp", Price: 1999, Tags: []string{"home", "light"}}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := products.Get(ctx, 42); err != nil {
		t.Fatal(err)
	}
	if _, err := products.Get(ctx, 4040); !errors.Is(err, cache.ErrNotFound) {
		t.Fatalf("Get of a missing product: %v", err)
	}
	if err := products.Set(ctx, 7, product{ID: 7, Name: "desk"}, cache.WithTags("sale", "furniture")); err != nil {
		t.Fatal(err)
	}

	docs, err := cache.New(client, cache.Options[string, doc]{Namespace: "doc", Codec: codec.JSON[doc]()})
	if err != nil {
		t.Fatal(err)
	}
	if err := docs.Set(ctx, "guide", doc{Title: "Guide", Pages: 12}); err != nil {
		t.Fatal(err)
	}
	greetings, err := cache.New(client, cache.Options[string, string]{Namespace: "greet", Codec: codec.String()})
	if err != nil {
		t.Fatal(err)
	}
	if err := greetings.Set(ctx, "en", "hello, world"); err != nil {
		t.Fatal(err)
	}
	if err := greetings.Set(ctx, "long", strings.Repeat("hello ", 100)); err != nil {
		t.Fatal(err)
	}
	zipped, err := codec.Compress(codec.MsgPack[product](), codec.CompressOptions{Threshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	big, err := cache.New(client, cache.Options[int64, product]{Namespace: "big", Codec: zipped})
	if err != nil {
		t.Fatal(err)
	}
	if err := big.Set(ctx, 1, product{ID: 1, Name: strings.Repeat("long name ", 20)}); err != nil {
		t.Fatal(err)
	}

	// A load that blocks holds the key's lease.
	parked, release, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	slow, err := cache.New(client, cache.Options[int64, product]{
		Namespace: "slow",
		Loader: func(context.Context, int64) (product, error) {
			close(parked)
			<-release
			return product{ID: 9}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(done)
		_, _ = slow.Get(ctx, 9)
	}()
	<-parked
	defer func() { close(release); <-done }()

	t.Run("msgpack value", func(t *testing.T) {
		out := inspect(t, url, "get", "product:42")
		mustContain(t, out,
			"product:42\n",
			"type:         string, ",
			"entry:        aside entry, format version 1",
			"kind:         value",
			"flags:        none",
			"payload:      MessagePack, ",
			`"Name": "lamp"`,
			`"Price": 1999`,
			`"home",`,
		)
		// Soft expiry is half the hard one: about 5 minutes from now.
		mustMatch(t, out, `soft expiry:  in 4m5\d[0-9.]*s, at 20\d\d-`)
		mustMatch(t, out, `hard expiry:  in 9m5\d[0-9.]*s, at 20\d\d-`)
	})
	t.Run("not-found marker", func(t *testing.T) {
		out := inspect(t, url, "get", "product:4040")
		mustContain(t, out, "kind:         not-found marker")
		mustMatch(t, out, `hard expiry:  in 29[0-9.]*s`)
		if strings.Contains(out, "payload") {
			t.Error("a marker has no payload")
		}
	})
	t.Run("lease", func(t *testing.T) {
		out := inspect(t, url, "get", "slow:9")
		mustContain(t, out, "kind:         lease: a load holds this key")
		mustMatch(t, out, `lease token:  [0-9a-f]{32}\n`)
	})
	t.Run("json value", func(t *testing.T) {
		out := inspect(t, url, "get", "doc:guide")
		mustContain(t, out, "payload:      JSON, 28 bytes", `"title": "Guide",`, `"pages": 12`, "soft expiry:  none")
	})
	t.Run("string value", func(t *testing.T) {
		out := inspect(t, url, "get", "greet:en")
		mustContain(t, out, "payload:      UTF-8 text, 12 bytes", `"hello, world"`)
	})
	t.Run("compressed value", func(t *testing.T) {
		out := inspect(t, url, "get", "big:1")
		mustContain(t, out, "payload:      MessagePack, codec.Compress s2", `"Name": "long name long name`)
	})
	t.Run("over the read limit", func(t *testing.T) {
		out := inspect(t, url, "get", "-max-bytes", "64", "greet:long")
		mustContain(t, out,
			"read:         first 64 of 611 bytes",
			"payload:      not decoded (over -max-bytes), 600 bytes",
			"68656c6c6f2068656c6c6f",
			"unreadable:   value of ",
			"is over the read limit (-max-bytes 64); showing its first bytes")
	})
	t.Run("tag index", func(t *testing.T) {
		out := inspect(t, url, "get", "product#tag:sale")
		mustContain(t, out,
			"type:         set",
			`role:         tag index of tag "sale" in namespace product`,
			"members:      1 (SCARD)",
			`"product:7"`)
	})
	t.Run("missing key", func(t *testing.T) {
		out := inspect(t, url, "get", "product:1")
		mustContain(t, out, "type:         none (no such key)")
	})
	t.Run("json lines", func(t *testing.T) {
		lines := jsonLines(t, inspect(t, url, "-json", "get", "product:42", "product:4040", "slow:9", "product#tag:sale"))
		if len(lines) != 4 {
			t.Fatalf("%d lines", len(lines))
		}
		value := lines[0]["payload"].(map[string]any)
		if value["format"] != "msgpack" || value["json"].(map[string]any)["Name"] != "lamp" {
			t.Errorf("value: %v", lines[0])
		}
		if e := lines[0]["entry"].(map[string]any); e["kind"] != "value" || e["soft_expiry"] == nil || e["soft_in_ms"].(float64) <= 0 {
			t.Errorf("value entry: %v", e)
		}
		if e := lines[1]["entry"].(map[string]any); e["kind"] != "not-found" {
			t.Errorf("marker: %v", e)
		}
		if e := lines[2]["entry"].(map[string]any); e["kind"] != "lease" || len(e["lease_token"].(string)) != 32 {
			t.Errorf("lease: %v", e)
		}
		if lines[3]["role"] != "tag index" || lines[3]["count"].(float64) != 1 || lines[3]["members"].([]any)[0] != "product:7" {
			t.Errorf("tag index: %v", lines[3])
		}
	})
	t.Run("scan", func(t *testing.T) {
		out := inspect(t, url, "scan", "product")
		mustMatch(t, out, `(?m)^KEY\s+KIND\s+SIZE\s+TTL$`)
		mustMatch(t, out, `(?m)^product#tag:furniture\s+tag index\s+1 member\s+\d`)
		mustMatch(t, out, `(?m)^product#tag:sale\s+tag index\s+1 member\s+\d`)
		mustMatch(t, out, `(?m)^product:4040\s+marker\s+11\s+\d`)
		mustMatch(t, out, `(?m)^product:42\s+value\s+\d+\s+\d`)
		mustMatch(t, out, `(?m)^product:7\s+value\s+\d+\s+\d`)
		mustContain(t, out, "5 keys\n")

		out = inspect(t, url, "scan", "slow")
		mustMatch(t, out, `(?m)^slow:9\s+lease\s+27\s+\d`)

		out = inspect(t, url, "scan", "product", "-match", "4*")
		mustContain(t, out, "product:42", "product:4040", "2 keys\n")
		out = inspect(t, url, "scan", "product", "-prefix", "7")
		mustContain(t, out, "product:7", "1 key\n")
		out = inspect(t, url, "scan", "-limit", "2", "product")
		mustContain(t, out, "2 keys: stopped at the limit (-limit 2); more may exist")

		lines := jsonLines(t, inspect(t, url, "-json", "scan", "product", "-match", "42"))
		if len(lines) != 1 || lines[0]["key"] != "product:42" || lines[0]["kind"] != "value" || lines[0]["size"].(float64) < 11 {
			t.Errorf("scan -json: %v", lines)
		}
	})
}

// TestPlainMode reads a plain-mode cache: a held load's lease key, the value
// key while it loads, and the plain value it then writes.
func TestPlainMode(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, url, rc := server(t)
	parked, release, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	plain, err := cache.New(connectCache(t, srv), cache.Options[string, doc]{
		Namespace: "report",
		Codec:     codec.JSON[doc](),
		Plain:     true,
		Loader: func(context.Context, string) (doc, error) {
			close(parked)
			<-release
			return doc{Title: "Q3", Pages: 3}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(done)
		_, _ = plain.Get(ctx, "q3")
	}()
	<-parked

	out := inspect(t, url, "get", "report#lease{report:q3}", "report:q3")
	mustContain(t, out,
		"report#lease{report:q3}\n",
		"role:         lease key of report:q3 (plain mode, namespace report): a load holds report:q3",
		"kind:         lease: a load holds this key",
		"report:q3\n",
		"type:         none (no such key)",
		"lease key:    report#lease{report:q3} exists (plain mode): a load holds this key; expires in ",
	)
	out = inspect(t, url, "scan", "report")
	mustMatch(t, out, `(?m)^report#lease\{report:q3\}\s+lease key\s+27\s+\d`)

	close(release)
	<-done
	// The load's write goes on behind the Get.
	if err := plain.AwaitWrites(ctx, "q3"); err != nil {
		t.Fatal(err)
	}
	if n, err := rc.Do(ctx, rc.B().Exists().Key("report:q3").Build()).AsInt64(); err != nil || n != 1 {
		t.Fatalf("the load wrote no value: %d, %v", n, err)
	}
	out = inspect(t, url, "get", "report:q3")
	mustContain(t, out, "entry:        plain value (no envelope)", "payload:      JSON, 24 bytes", `"title": "Q3"`)
	if strings.Contains(out, "lease key:") {
		t.Error("the lease key outlived the load")
	}
	out = inspect(t, url, "scan", "report")
	mustMatch(t, out, `(?m)^report:q3\s+plain\s+24\s+\d`)
	mustContain(t, out, "1 key\n")
}

// hostile are strings no aside process writes: truncated or malformed
// envelopes, and payloads whose declared lengths nothing backs.
func hostile() map[string][]byte {
	header := func(flags byte, payload ...byte) []byte {
		return append([]byte{envelope.Magic, envelope.Version, flags, 0, 0, 0, 0, 0, 0, 0, 0}, payload...)
	}
	// An array32 header claiming 2^27 elements: msgpack alone would
	// allocate 2 GiB for it.
	array32 := []byte{0xdd, 0x08, 0x00, 0x00, 0x00}
	soft := header(byte(envelope.Value))
	binary.BigEndian.PutUint64(soft[3:], 1<<63)
	return map[string][]byte{
		"evil:magic-only":     {envelope.Magic},
		"evil:short-header":   {envelope.Magic, envelope.Version, byte(envelope.Value), 0, 0},
		"evil:version-0":      {envelope.Magic, 0, 1},
		"evil:newer-version":  {envelope.Magic, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0},
		"evil:unknown-kind":   header(0x07, 1, 2, 3),
		"evil:short-lease":    header(byte(envelope.Lease), 1, 2, 3),
		"evil:soft-overflow":  soft,
		"evil:array32":        header(byte(envelope.Value), array32...),
		"evil:array32-plain":  array32,
		"evil:str32":          header(byte(envelope.Value), 0xdb, 0xff, 0xff, 0xff, 0xff, 'x'),
		"evil:map32-nested":   header(byte(envelope.Value), 0x91, 0x91, 0xdf, 0x7f, 0xff, 0xff, 0xff),
		"evil:s2-bomb":        header(byte(envelope.Value), 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00),
		"evil:zstd-bomb":      header(byte(envelope.Value), 0x02, 0x28, 0xb5, 0x2f, 0xfd, 0xe4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f),
		"evil:flagged-zipped": header(byte(envelope.Value)|0x10, 0x07, 1, 2),
	}
}

// TestHostileBytes: every malformed key gets its own "unreadable" line, and
// the command neither panics nor fails.
func TestHostileBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, url, rc := server(t)
	keys := []string{"evil:missing"}
	for k, v := range hostile() {
		if err := rc.Do(ctx, rc.B().Set().Key(k).Value(rueidis.BinaryString(v)).Build()).Error(); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys[1:])
	out := inspect(t, url, append([]string{"get"}, keys...)...)
	blocks := strings.Split(out, "\n\n")
	if len(blocks) != len(keys) {
		t.Fatalf("%d blocks for %d keys", len(blocks), len(keys))
	}
	for _, b := range blocks {
		key, _, _ := strings.Cut(b, "\n")
		if key == "evil:missing" {
			continue
		}
		if !strings.Contains(b, "\n  unreadable:   ") {
			t.Errorf("%s: no unreadable line:\n%s", key, b)
		}
	}
	mustContain(t, out,
		"unreadable:   envelope: not an aside entry (truncated: 1 byte, the header is 11)",
		"unreadable:   envelope: not an aside entry (truncated: 5 bytes, the header is 11)",
		"unreadable:   envelope: entry written by a newer format version (version 9, this build reads up to 2)",
		"unreadable:   payload looks like MessagePack, but codec: cannot decode: msgpack: declared length exceeds the remaining bytes at offset 0",
		"unreadable:   payload looks compressed (codec.Compress marker 0x1), but codec: cannot decode: compressed payload declares",
	)

	lines := jsonLines(t, inspect(t, url, append([]string{"-json", "get"}, keys...)...))
	for _, l := range lines {
		if l["key"] != "evil:missing" && l["unreadable"] == nil {
			t.Errorf("%s: no unreadable field: %v", l["key"], l)
		}
	}
	out = inspect(t, url, "scan", "evil")
	mustMatch(t, out, `(?m)^evil:array32\s+value\s+16\s`)
	mustMatch(t, out, `(?m)^evil:array32-plain\s+plain\s+5\s`)
	mustMatch(t, out, `(?m)^evil:short-lease\s+unreadable\s+14\s`)
	mustMatch(t, out, `(?m)^evil:magic-only\s+unreadable\s+1\s`)
	mustMatch(t, out, `(?m)^evil:newer-version\s+newer format\s+11\s`)
}

// TestHostileBytesAllocate: reading the hostile strings allocates a bounded
// amount, whatever lengths they declare.
func TestHostileBytesAllocate(t *testing.T) {
	in := &inspector{now: time.Now, maxBytes: 16 << 20, members: 20}
	cases := hostile()
	read := func() {
		for key, raw := range cases {
			r := &report{Key: key, Type: "string", Size: int64(len(raw))}
			in.describeString(r, raw)
			if r.Unreadable == "" {
				t.Fatalf("%s: readable: %+v", key, r)
			}
			printer{w: &bytes.Buffer{}}.report(r)
		}
	}
	read() // warm the codec's pools
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const rounds = 10
	for range rounds {
		read()
	}
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Fatalf("%d rounds allocated %d bytes", rounds, d)
	} else {
		t.Logf("%d rounds over %d hostile strings allocated %d bytes", rounds, len(cases), d)
	}
	if n := testing.AllocsPerRun(5, read); n > 2000 {
		t.Errorf("%v allocations a round", n)
	}
}

// TestPayloads reads payloads no cache wrote: every codec's encoding, plain
// bytes of other programs.
func TestPayloads(t *testing.T) {
	t.Parallel()
	mp := func(v any) []byte {
		b, err := codec.MsgPack[any]().Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	zstd, err := codec.Compress(codec.Bytes(), codec.CompressOptions{Algorithm: codec.Zstd, Threshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	zipped, err := zstd.Marshal([]byte(strings.Repeat(`{"a":1}`, 0) + `{"name":"` + strings.Repeat("z", 300) + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		data   []byte
		format string
		want   string
	}{
		{"empty", nil, "empty", ""},
		{"json number", []byte("5"), "json", "5"},
		{"single letter", []byte("a"), "string", ""},
		{"msgpack map", mp(map[string]any{"a": []any{1, "x", nil, true, 1.5}}), "msgpack", `{"a":[1,"x",null,true,1.5]}`},
		{"msgpack int keys", mp(map[int]string{7: "seven"}), "msgpack", `{"7":"seven"}`},
		{"msgpack bin", mp([]byte{1, 2, 3}), "msgpack", `"AQID"`},
		{"msgpack nil", mp(nil), "msgpack", `null`},
		{"msgpack time", mp(time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)), "msgpack", `"2024-05-06T07:08:09Z"`},
		{"msgpack ext", []byte{0xd4, 0x05, 0xab}, "msgpack", `{"ext":5,"hex":"ab"}`},
		{"msgpack nan", mp(map[string]float64{"x": nanValue()}), "msgpack", `{"x":"NaN"}`},
		{"zstd json", zipped, "json", `{"name":"zzz`},
		{"stored", []byte("\x00hello"), "string", ""},
		{"binary", []byte{0xff, 0xfe, 0x00}, "binary", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := readPayload(c.data, false)
			if err != nil {
				t.Fatal(err)
			}
			if p.Format != c.format || !strings.HasPrefix(string(p.JSON), c.want) {
				t.Errorf("got %s %s, want %s %s", p.Format, p.JSON, c.format, c.want)
			}
		})
	}
}

func nanValue() float64 {
	zero := 0.0
	return zero / zero
}

// TestUsage checks the command line.
func TestUsage(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "no subcommand"},
		{[]string{"put"}, `unknown subcommand "put"`},
		{[]string{"get"}, "get: no key"},
		{[]string{"scan"}, "scan: one namespace"},
		{[]string{"scan", "a:b"}, `namespace "a:b"`},
		{[]string{"scan", "ns", "-match", "[a"}, "never closed"},
		{[]string{"scan", "ns", "-match", "a", "-prefix", "b"}, "exclude each other"},
		{[]string{"-url", "rediss://h:1?skip_verify=true", "get", "k"}, "skip_verify"},
		{[]string{"-url", "http://user:secret@h", "get", "k"}, "invalid URL scheme"},
		{[]string{"-bogus", "get", "k"}, "flag provided but not defined"},
	} {
		err := run(context.Background(), c.args, &bytes.Buffer{})
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want a usage error with %q", c.args, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%q: the error repeats the password: %v", c.args, err)
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, &out); err != nil || !strings.Contains(out.String(), "-max-bytes") {
		t.Errorf("-h: %v\n%s", err, out.String())
	}
}

// FuzzReadPayload: no payload makes the reading panic, and every reading is
// valid JSON where it claims to be.
func FuzzReadPayload(f *testing.F) {
	for _, v := range hostile() {
		f.Add(v)
	}
	f.Add([]byte{0x81, 0xa1, 'a', 0x93, 1, 2, 3})
	f.Add([]byte{0xc7, 0x03, 0x05, 0x81, 0xa0, 0xc0})
	f.Add([]byte("\x00{\"a\":1}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		in := &inspector{now: time.Now, maxBytes: 16 << 20}
		r := &report{Key: "k", Type: "string", Size: int64(len(data))}
		in.describeString(r, data)
		printer{w: io.Discard}.report(r)
		if r.Payload != nil && r.Payload.JSON != nil && !json.Valid(r.Payload.JSON) {
			t.Fatalf("invalid JSON %q from %x", r.Payload.JSON, data)
		}
	})
}

// TestScanCluster: scan lists every key of the namespace once, whichever
// primary holds it, and skips the replicas.
func TestScanCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cl := redistest.StartCluster(t, redistest.ClusterConfig{Primaries: 2, Replicas: 1})
	addrs := cl.Addrs()
	url := "redis://" + addrs[0] + "?addr=" + strings.Join(addrs[1:], "&addr=")
	client, err := cache.Connect(cl.ClientOption())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := cache.New(client, cache.Options[int, string]{Namespace: "shard", Codec: codec.String()})
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	for i := range n {
		if err := c.Set(ctx, i, "v", cache.WithTags("all")); err != nil {
			t.Fatal(err)
		}
	}
	out := inspect(t, url, "scan", "shard")
	mustContain(t, out, "41 keys\n", "shard#tag:all")
	lines := jsonLines(t, inspect(t, url, "-json", "scan", "shard"))
	seen := map[string]bool{}
	for _, l := range lines {
		k := l["key"].(string)
		if seen[k] {
			t.Errorf("%s listed twice", k)
		}
		seen[k] = true
		want := "value"
		if k == "shard#tag:all" {
			want = "tag index"
		}
		if l["kind"] != want {
			t.Errorf("%s: kind %v, want %s", k, l["kind"], want)
		}
	}
	out = inspect(t, url, "get", "shard:7", "shard#tag:all")
	mustContain(t, out, `"v"`, "members:      40 (SCARD)", "first:        20 members:")
}
