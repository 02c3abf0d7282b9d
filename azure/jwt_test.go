package azure_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/azure"
)

func TestParseClaims(t *testing.T) {
	t.Parallel()
	exp := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	oid, gotExp, err := azure.ParseClaims(newJWT(map[string]any{"oid": oid, "exp": exp.Unix(), "aud": "https://redis.azure.com"}))
	require.NoError(t, err)
	assert.Equal(t, "5f0c8a2e-1b7d-4c3e-9a61-2d4f8e7b9c10", oid)
	assert.True(t, exp.Equal(gotExp))

	// Padding some issuers add is tolerated.
	enc := base64.URLEncoding
	padded := enc.EncodeToString([]byte(`{"alg":"none"}`)) + "." + enc.EncodeToString([]byte(`{"oid":"abc"}`)) + "."
	got, _, err := azure.ParseClaims(padded)
	require.NoError(t, err)
	assert.Equal(t, "abc", got)

	for _, bad := range []string{
		"", "abc", "a.b", "a.b.c.d", ".e30.", "a..c", "a.!!!.c",
		"a." + base64.RawURLEncoding.EncodeToString([]byte("not json")) + ".c",
		"a." + base64.RawURLEncoding.EncodeToString([]byte(`{"oid":42}`)) + ".c",
		"a." + base64.RawURLEncoding.EncodeToString([]byte(`{"oid":"has space"}`)) + ".c",
	} {
		_, _, err := azure.ParseClaims(bad)
		assert.Error(t, err, bad)
	}
	_, _, err = azure.ParseClaims(newJWT(map[string]any{"sub": "x"}))
	require.ErrorIs(t, err, azure.ErrNoOID)
}

// FuzzParseClaims: no input panics, a success yields a usable user name, and
// no error quotes the token.
func FuzzParseClaims(f *testing.F) {
	f.Add(newJWT(map[string]any{"oid": "o", "exp": 1}))
	f.Add(newJWT(map[string]any{"sub": "s"}))
	f.Add("eyJhbGciOiJub25lIn0.eyJvaWQiOiJ4In0.c2ln")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, token string) {
		oid, _, err := azure.ParseClaims(token)
		if err != nil {
			if len(token) >= 8 {
				assert.NotContains(t, err.Error(), token)
			}
			return
		}
		assert.NotEmpty(t, oid)
		assert.False(t, strings.ContainsAny(oid, " \t\r\n"))
	})
}
