package ttlpolicy_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/ttlpolicy"
)

type token struct {
	validFor time.Duration // 0: unknown
}

// tokenTTL lets a token live exactly as long as it is valid.
func tokenTTL(_ string, tok token) (time.Duration, bool) {
	return tok.validFor, tok.validFor != 0
}

func TestByValue(t *testing.T) {
	t.Parallel()
	base := ttlpolicy.Minutes(10).WithSoft(0.5).WithRand(constant(0.5)) // 10m, soft 5m, negative 1m
	policy := ttlpolicy.ByValue(base, tokenTTL)
	require.NoError(t, policy.Validate())

	tests := []struct {
		name string
		tok  token
		want ttlpolicy.TTLs
	}{
		{"no override: base", token{}, ttlpolicy.TTLs{Hard: 10 * time.Minute, Soft: 5 * time.Minute}},
		{"override, not jittered, base soft proportion", token{validFor: 90 * time.Second},
			ttlpolicy.TTLs{Hard: 90 * time.Second, Soft: 45 * time.Second}},
		{"override truncated to ms", token{validFor: 2*time.Second + 999*time.Microsecond},
			ttlpolicy.TTLs{Hard: 2 * time.Second, Soft: time.Second}},
		{"override below 1ms", token{validFor: time.Microsecond}, ttlpolicy.TTLs{Hard: time.Millisecond}},
		{"override already expired", token{validFor: -time.Hour}, ttlpolicy.TTLs{Hard: time.Millisecond}},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, policy.TTLOf("tok:1", tt.tok), tt.name)
	}
	assert.Equal(t, ttlpolicy.TTLs{Hard: 10 * time.Minute, Soft: 5 * time.Minute}, policy.TTL("tok:1"))
	assert.Equal(t, time.Minute, policy.NegativeTTL("tok:1"))
}

func TestByValueWithoutSoft(t *testing.T) {
	t.Parallel()
	policy := ttlpolicy.ByValue(ttlpolicy.Minutes(10), tokenTTL)
	assert.Equal(t, ttlpolicy.TTLs{Hard: time.Hour}, policy.TTLOf("k", token{validFor: time.Hour}))
}

func TestByValueIsFoundByTypeAssertion(t *testing.T) {
	t.Parallel()
	// The cache holds a Policy and looks for the ValuePolicy of its own V.
	var policy ttlpolicy.Policy = ttlpolicy.ByValue(ttlpolicy.Minutes(1), tokenTTL)
	_, ok := policy.(ttlpolicy.ValuePolicy[token])
	assert.True(t, ok)
	_, ok = policy.(ttlpolicy.ValuePolicy[string])
	assert.False(t, ok)
	_, ok = ttlpolicy.Policy(ttlpolicy.Minutes(1)).(ttlpolicy.ValuePolicy[token])
	assert.False(t, ok)
}

func TestByValueValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		policy  ttlpolicy.ValuePolicy[token]
		message string
	}{
		{"nil base", ttlpolicy.ByValue(nil, tokenTTL), "base policy is nil"},
		{"nil f", ttlpolicy.ByValue[token](ttlpolicy.Minutes(1), nil), "f is nil"},
		{"invalid base", ttlpolicy.ByValue(ttlpolicy.Minutes(1).WithJitter(-1), tokenTTL), "jitter -1"},
	}
	for _, tt := range tests {
		err := tt.policy.Validate()
		require.ErrorIs(t, err, ttlpolicy.ErrInvalid, tt.name)
		assert.Contains(t, err.Error(), tt.message, tt.name)
	}
}
