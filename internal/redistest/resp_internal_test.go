package redistest

import (
	"bufio"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The launcher's own servers speak RESP2 to Do; these cases cover the RESP3
// types Do must still render should a connection ever be switched with HELLO 3.
func TestReadValueRendering(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, wire, text, err string
	}{
		{"simple", "+OK\r\n", "OK", ""},
		{"integer", ":42\r\n", "42", ""},
		{"bulk", "$5\r\nhello\r\n", "hello", ""},
		{"null bulk", "$-1\r\n", "", ""},
		{"null", "_\r\n", "", ""},
		{"double", ",1.5\r\n", "1.5", ""},
		{"boolean", "#t\r\n", "t", ""},
		{"big number", "(123456789012345678901234567890\r\n", "123456789012345678901234567890", ""},
		{"verbatim", "=9\r\ntxt:hello\r\n", "hello", ""},
		{"array", "*2\r\n$1\r\na\r\n:1\r\n", "a\n1", ""},
		{"nested", "*2\r\n*2\r\n+a\r\n+b\r\n+c\r\n", "a\nb\nc", ""},
		{"map", "%1\r\n+k\r\n+v\r\n", "k\nv", ""},
		{"set", "~2\r\n+x\r\n+y\r\n", "x\ny", ""},
		{"attribute", "|1\r\n+ttl\r\n:3\r\n+value\r\n", "value", ""},
		{"error", "-ERR boom\r\n", "ERR boom", "ERR boom"},
		{"blob error", "!9\r\nNOPERM no\r\n", "NOPERM no", "NOPERM no"},
		{"error inside array", "*2\r\n+OK\r\n-ERR inner\r\n", "OK\nERR inner", "ERR inner"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v, err := readValue(bufio.NewReader(strings.NewReader(tc.wire)), 0)
			require.NoError(t, err)
			text, err := render(v)
			assert.Equal(t, tc.text, text)
			if tc.err == "" {
				assert.NoError(t, err)
			} else {
				var re ReplyError
				require.ErrorAs(t, err, &re)
				assert.Equal(t, tc.err, re.Error())
			}
		})
	}
}

func TestReadValueRejectsMalformed(t *testing.T) {
	t.Parallel()
	for _, wire := range []string{
		"",                  // EOF
		"\r\n",              // empty line
		"?x\r\n",            // unknown type
		"$abc\r\n",          // bad length
		"$999999999999\r\n", // over the bound
		"$5\r\nab",          // short payload
		"*2\r\n+a\r\n",      // short aggregate
		strings.Repeat("*1\r\n", 40) + "+deep\r\n",
	} {
		_, err := readValue(bufio.NewReader(strings.NewReader(wire)), 0)
		assert.Error(t, err, "%q", wire)
	}
}

func FuzzReadValue(f *testing.F) {
	for _, seed := range []string{"+OK\r\n", "*2\r\n$1\r\na\r\n:1\r\n", "%1\r\n+k\r\n_\r\n", "|1\r\n+a\r\n+b\r\n+c\r\n", "$-1\r\n"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, wire []byte) {
		v, err := readValue(bufio.NewReader(strings.NewReader(string(wire))), 0)
		if err != nil {
			return
		}
		_, _ = render(v) // must not panic on anything readValue accepted
	})
}
