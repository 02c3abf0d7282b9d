package invalidation_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/internal/redistest"
	"github.com/aside-go/aside/invalidation"
)

// metachars are the bytes Escape must escape: what Redis' stringmatchlen
// treats specially outside a bracket expression ('*', '?', '[', '\'), and ']'.
const metachars = `*?[]\`

func TestEscape(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"user:1001", "user:1001"},
		{"1*", `1\*`},
		{"?", `\?`},
		{"[a-z]", `\[a-z\]`},
		{"]", `\]`},
		{`\`, `\\`},
		{`a\*b`, `a\\\*b`},
		{"^-!:{}", "^-!:{}"}, // special only inside brackets, or not at all
		{"\xff*\x00", "\xff\\*\x00"},
		{"é?", `é\?`},
		{"**", `\*\*`},
	} {
		assert.Equal(t, tc.want, invalidation.Escape(tc.in), "Escape(%q)", tc.in)
	}
}

// escapeCorpus returns at least n distinct strings heavy in glob
// metacharacters, with pairs where one is a prefix of the other.
func escapeCorpus(seed uint64, n int) []string {
	// Multi-byte entries are picked whole: "é" is two bytes, "\xff" is not
	// UTF-8 at all.
	alphabet := []string{
		"*", "*", "?", "?", "[", "[", "]", "]", `\`, `\`, "^", "-", "!",
		"a", "b", "0", "1", ":", "é", "\xff", "\x00",
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := []string{
		"", "1", "10", "1*", "1001", "10010", "100", "*", "?", "[", "]", `\`,
		`\*`, `\\`, "[]", "[a]", "a", "[^a]", "b", "[a-b]", "-", "[!a]", "!",
		"a?", "ab", "a*", "abc", `a\`, `a\\`, "[[", "[\\]", "1\xff", "1\xff*",
	}
	seen := make(map[string]bool)
	for _, s := range out {
		seen[s] = true
	}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for len(out) < n {
		var b strings.Builder
		for range rng.IntN(7) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		s := b.String()
		add(s)
		switch rng.IntN(3) {
		case 0: // a longer string with s as prefix
			add(s + alphabet[rng.IntN(len(alphabet))])
		case 1: // a shorter one that is a prefix of s
			if len(s) > 0 {
				add(s[:rng.IntN(len(s))])
			}
		}
	}
	return out
}

// TestEscapeAgainstScan checks Escape against Redis' own matcher: for every
// s of the corpus, SCAN MATCH "p:"+Escape(s) finds exactly the key "p:"+s,
// and "p:"+Escape(s)+"*" exactly the keys "p:"+t with t starting with s.
func TestEscapeAgainstScan(t *testing.T) {
	t.Parallel()
	d := standalone(t)
	client := connect(t, d)
	ctx := testContext(t)

	corpus := escapeCorpus(1, 500)
	all := make([]string, len(corpus))
	for i, s := range corpus {
		all[i] = "p:" + s
	}
	fill(t, ctx, client, all)

	unescapedDiffers := 0
	for _, s := range corpus {
		exact, err := scan(ctx, client, "p:"+invalidation.Escape(s))
		require.NoError(t, err)
		assert.Equal(t, set("p:"+s), exact, "MATCH p:Escape(%q)", s)

		want := make(map[string]bool)
		for _, o := range corpus {
			if strings.HasPrefix(o, s) {
				want["p:"+o] = true
			}
		}
		prefixed, err := scan(ctx, client, "p:"+invalidation.Escape(s)+"*")
		require.NoError(t, err)
		assert.Equal(t, want, prefixed, "MATCH p:Escape(%q)*", s)

		// The same pattern unescaped must go wrong for some inputs, or the
		// corpus does not exercise the matcher.
		raw, err := scan(ctx, client, "p:"+s)
		require.NoError(t, err)
		if len(raw) != 1 || !raw["p:"+s] {
			unescapedDiffers++
		}
	}
	t.Logf("%d strings; unescaped pattern wrong for %d", len(corpus), unescapedDiffers)
	assert.Greater(t, unescapedDiffers, len(corpus)/4, "corpus too tame to test Escape")
}

// unescape undoes Escape: a backslash takes the next byte literally.
func unescape(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '\\' && i+1 < len(p) {
			i++
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// fuzzRedis returns the fuzz server's client, launching it on first use.
func fuzzRedis(t *testing.T) rueidis.Client {
	t.Helper()
	fuzzOnce.Do(func() {
		fuzzServer, fuzzErr = redistest.Launch(redistest.Config{})
		if fuzzErr != nil {
			return
		}
		fuzzClient, fuzzErr = rueidis.NewClient(fuzzServer.ClientOption())
	})
	if fuzzErr != nil {
		t.Fatalf("fuzz server: %v", fuzzErr)
	}
	return fuzzClient
}

func FuzzEscape(f *testing.F) {
	for _, s := range []string{
		"", "1*", "1001", "a?b", "[a-z]", `\`, `x\`, "]", "[^]", "\xff\x00*", "é[",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := invalidation.Escape(s)

		// Pure properties: every metacharacter is escaped, every backslash
		// escapes one, nothing else changes.
		require.Equal(t, s, unescape(e))
		n := 0
		for i := 0; i < len(e); i++ {
			if strings.IndexByte(metachars, e[i]) < 0 {
				continue
			}
			require.Equal(t, byte('\\'), e[i], "unescaped %q at %d of %q", e[i], i, e)
			require.Less(t, i+1, len(e), "trailing backslash in %q", e)
			require.Contains(t, metachars, string(e[i+1]), "needless escape at %d of %q", i, e)
			i++
			n++
		}
		require.Len(t, e, len(s)+n)

		// Against Redis: the escaped pattern matches s and nothing near it.
		if len(s) > 4096 {
			return // long inputs add time, not cases
		}
		client := fuzzRedis(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		written := []string{"f:" + s, "f:" + s + "x", "f:" + s + "*"}
		if len(s) > 0 {
			written = append(written, "f:"+s[:len(s)-1])
			last := byte('a')
			if s[len(s)-1] == last {
				last = 'b'
			}
			written = append(written, "f:"+s[:len(s)-1]+string(last))
		}
		fill(t, ctx, client, written)
		defer func() {
			require.NoError(t, client.Do(ctx, client.B().Flushall().Sync().Build()).Error())
		}()

		exact, err := scan(ctx, client, "f:"+e)
		require.NoError(t, err)
		require.Equal(t, set("f:"+s), exact, "MATCH f:%q", e)

		want := make(map[string]bool)
		for _, k := range written {
			if strings.HasPrefix(k, "f:"+s) {
				want[k] = true
			}
		}
		prefixed, err := scan(ctx, client, "f:"+e+"*")
		require.NoError(t, err)
		require.Equal(t, want, prefixed, "MATCH f:%q*", e)
	})
}

func TestCheckPattern(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{
		"*", "user:*", `a\[`, "[a-z]*", `\\`, `[\]]`, "[]", "[^]", "[^a]x", "[a-]]", `x\*`, "?", "]", "^",
		invalidation.Escape(`[a\`) + "*",
	} {
		assert.NoError(t, invalidation.CheckPattern(ok), "%q", ok)
	}
	for _, tc := range []struct{ pattern, text string }{
		{"", "invalidation: invalid pattern: empty"},
		{"[", `invalidation: invalid pattern: the [ at offset 0 is never closed (escape it as \[ to match a bracket)`},
		{"user:[1", `invalidation: invalid pattern: the [ at offset 5 is never closed (escape it as \[ to match a bracket)`},
		{"[a-]", `invalidation: invalid pattern: the [ at offset 0 is never closed (escape it as \[ to match a bracket)`},
		{`[\]`, `invalidation: invalid pattern: the [ at offset 0 is never closed (escape it as \[ to match a bracket)`},
		{"[^", `invalidation: invalid pattern: the [ at offset 0 is never closed (escape it as \[ to match a bracket)`},
		{`a\`, `invalidation: invalid pattern: ends in a lone backslash at offset 1 (escape it as \\)`},
		{`a\\\`, `invalidation: invalid pattern: ends in a lone backslash at offset 3 (escape it as \\)`},
	} {
		err := invalidation.CheckPattern(tc.pattern)
		require.ErrorIs(t, err, invalidation.ErrPattern, "%q", tc.pattern)
		assert.Equal(t, tc.text, err.Error(), "%q", tc.pattern)
	}
}

// TestCheckPatternAgainstRedis shows why the refused patterns are refused:
// Redis reads each of them otherwise than it is written. "[a-]" does not
// match "a" (a range from 'a' to ']', never closed, whose end is the end of
// the pattern), a trailing '\' matches a backslash, an unclosed '[' matches
// nothing of what follows it.
func TestCheckPatternAgainstRedis(t *testing.T) {
	t.Parallel()
	client := fuzzRedis(t)
	ctx := context.Background()
	prefix := "checkpattern:" + strings.ReplaceAll(t.Name(), "/", "-") + ":"
	for _, k := range []string{"a", "-", "]", `\`, "[", "[1", "b"} {
		require.NoError(t, client.Do(ctx, client.B().Set().Key(prefix+k).Value("v").Build()).Error())
	}
	for _, tc := range []struct {
		pattern string
		redis   []string // what Redis' SCAN MATCH returns
	}{
		{"[a-]", []string{"a", "]"}},
		{`\`, []string{`\`}},
		{"[", nil},
		{"[1", nil},
	} {
		require.Error(t, invalidation.CheckPattern(tc.pattern))
		var got []string
		var cursor uint64
		for {
			e, err := client.Do(ctx, client.B().Scan().Cursor(cursor).Match(prefix+tc.pattern).Count(1000).Build()).AsScanEntry()
			require.NoError(t, err)
			for _, k := range e.Elements {
				got = append(got, strings.TrimPrefix(k, prefix))
			}
			if cursor = e.Cursor; cursor == 0 {
				break
			}
		}
		assert.ElementsMatch(t, tc.redis, got, "SCAN MATCH %q", tc.pattern)
	}
}

// FuzzCheckPattern: no input panics, and every escaped string is a pattern
// CheckPattern accepts, alone or before a '*'.
func FuzzCheckPattern(f *testing.F) {
	for _, s := range []string{"", "[", `\`, "[a-]", "a[b]c", `[\`, "[^", "*?[]\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_ = invalidation.CheckPattern(s)
		if s != "" {
			assert.NoError(t, invalidation.CheckPattern(invalidation.Escape(s)))
		}
		assert.NoError(t, invalidation.CheckPattern(invalidation.Escape(s)+"*"))
	})
}

// TestMatchAgainstScan checks Match against Redis' own matcher: for every
// pattern of a corpus that CheckPattern accepts (unescaped strings of the
// escape corpus, heavy in metacharacters, with and without a trailing '*'),
// SCAN MATCH finds exactly the keys Match accepts, but for the keys Match
// also accepts where Redis compares signed bytes (never fewer).
func TestMatchAgainstScan(t *testing.T) {
	t.Parallel()
	d := standalone(t)
	client := connect(t, d)
	ctx := testContext(t)

	corpus := escapeCorpus(2, 300)
	all := make([]string, len(corpus))
	for i, s := range corpus {
		all[i] = "m:" + s
	}
	fill(t, ctx, client, all)

	checked, extra := 0, 0
	for _, s := range corpus {
		for _, p := range []string{s, s + "*", "*" + s} {
			if invalidation.CheckPattern(p) != nil {
				continue
			}
			checked++
			found, err := scan(ctx, client, "m:"+p)
			require.NoError(t, err)
			for _, key := range all {
				m := invalidation.Match("m:"+p, key)
				switch {
				case found[key]:
					assert.True(t, m, "Redis matches %q against %q; Match does not", key, "m:"+p)
				case m:
					extra++
					assert.True(t, hasHighByte(p+key), "Match accepts %q for %q; Redis does not", key, "m:"+p)
				}
			}
		}
	}
	t.Logf("%d patterns against %d keys; %d extra matches", checked, len(all), extra)
	assert.Greater(t, checked, 300)
}

// hasHighByte reports whether s holds a byte of 0x80 or above, which Redis'
// matcher compares as a signed char in ranges.
func hasHighByte(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return true
		}
	}
	return false
}
