package ttlpolicy_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/ttlpolicy"
)

func TestByPrefixFirstMatchWins(t *testing.T) {
	t.Parallel()
	policy := ttlpolicy.ByPrefix(ttlpolicy.Fixed(time.Hour),
		ttlpolicy.Rule{Prefix: "session:admin:", Policy: ttlpolicy.Fixed(time.Minute)},
		ttlpolicy.Rule{Prefix: "session:", Policy: ttlpolicy.Fixed(5 * time.Minute)},
		ttlpolicy.Rule{Prefix: "country:", Policy: ttlpolicy.Fixed(24 * time.Hour).WithNegativeTTL(0)},
	)
	require.NoError(t, policy.Validate())
	tests := []struct {
		key      string
		hard     time.Duration
		negative time.Duration
	}{
		{"session:admin:1", time.Minute, 6 * time.Second},
		{"session:42", 5 * time.Minute, 30 * time.Second},
		{"session:", 5 * time.Minute, 30 * time.Second},
		{"session", time.Hour, 5 * time.Minute},
		{"country:fr", 24 * time.Hour, 0},
		{"user:1", time.Hour, 5 * time.Minute},
		{"", time.Hour, 5 * time.Minute},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.hard, policy.TTL(tt.key).Hard, "key %q", tt.key)
		assert.Equal(t, tt.negative, policy.NegativeTTL(tt.key), "key %q", tt.key)
	}
}

func TestByPrefixEmptyPrefixMatchesEverything(t *testing.T) {
	t.Parallel()
	policy := ttlpolicy.ByPrefix(ttlpolicy.Fixed(time.Hour),
		ttlpolicy.Rule{Prefix: "a:", Policy: ttlpolicy.Fixed(time.Second)},
		ttlpolicy.Rule{Prefix: "", Policy: ttlpolicy.Fixed(time.Minute)},
	)
	require.NoError(t, policy.Validate())
	assert.Equal(t, time.Second, policy.TTL("a:1").Hard)
	assert.Equal(t, time.Minute, policy.TTL("b:1").Hard)
}

func TestByPrefixCopiesRules(t *testing.T) {
	t.Parallel()
	rules := []ttlpolicy.Rule{{Prefix: "a:", Policy: ttlpolicy.Fixed(time.Second)}}
	policy := ttlpolicy.ByPrefix(ttlpolicy.Fixed(time.Hour), rules...)
	rules[0] = ttlpolicy.Rule{Prefix: "b:", Policy: ttlpolicy.Fixed(time.Minute)}
	assert.Equal(t, time.Second, policy.TTL("a:1").Hard)
	assert.Equal(t, time.Hour, policy.TTL("b:1").Hard)
}

func TestByPrefixValidate(t *testing.T) {
	t.Parallel()
	valid := ttlpolicy.Minutes(5)
	tests := []struct {
		name   string
		policy ttlpolicy.Policy
		want   []string // each a line of the error; none when valid
	}{
		{"valid", ttlpolicy.ByPrefix(valid, ttlpolicy.Rule{Prefix: "a:", Policy: valid}), nil},
		{"no rules", ttlpolicy.ByPrefix(valid), nil},
		{"nil default", ttlpolicy.ByPrefix(nil), []string{"default policy: ttlpolicy: invalid policy: policy is nil"}},
		{"invalid default", ttlpolicy.ByPrefix(ttlpolicy.Fixed(0)), []string{"default policy: ttlpolicy: invalid policy: TTL 0s"}},
		{
			"invalid rule",
			ttlpolicy.ByPrefix(valid,
				ttlpolicy.Rule{Prefix: "user:", Policy: valid},
				ttlpolicy.Rule{Prefix: "session:", Policy: ttlpolicy.Minutes(5).WithJitter(2)},
			),
			[]string{`rule 2 (prefix "session:"): ttlpolicy: invalid policy: jitter 2`},
		},
		{
			"nil rule policy",
			ttlpolicy.ByPrefix(valid, ttlpolicy.Rule{Prefix: "user:"}),
			[]string{`rule 1 (prefix "user:"): ttlpolicy: invalid policy: policy is nil`},
		},
		{
			"shadowed rule",
			ttlpolicy.ByPrefix(valid,
				ttlpolicy.Rule{Prefix: "session:", Policy: valid},
				ttlpolicy.Rule{Prefix: "session:admin:", Policy: valid},
			),
			[]string{`rule 2 (prefix "session:admin:"): ttlpolicy: invalid policy: never matches, rule 1 (prefix "session:")`},
		},
		{
			"every problem reported",
			ttlpolicy.ByPrefix(ttlpolicy.Minutes(0),
				ttlpolicy.Rule{Prefix: "a:", Policy: ttlpolicy.Minutes(1).WithSoft(1)},
				ttlpolicy.Rule{Prefix: "b:", Policy: valid},
				ttlpolicy.Rule{Prefix: "c:", Policy: ttlpolicy.Minutes(1).WithNegativeTTL(-1)},
			),
			[]string{
				"default policy: ttlpolicy: invalid policy: TTL 0s",
				`rule 1 (prefix "a:"): ttlpolicy: invalid policy: soft 1`,
				`rule 3 (prefix "c:"): ttlpolicy: invalid policy: negative TTL -1ns`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.policy.Validate()
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ttlpolicy.ErrInvalid)
			lines := strings.Split(err.Error(), "\n")
			require.Len(t, lines, len(tt.want), err.Error())
			for i, want := range tt.want {
				assert.True(t, strings.HasPrefix(lines[i], want), "line %d: %q does not start with %q", i, lines[i], want)
			}
		})
	}
}

// TestHasSoft: a soft TTL anywhere in a ByPrefix policy — its default, a
// rule, a rule of a nested ByPrefix — is seen; none, and it is not.
func TestHasSoft(t *testing.T) {
	hard := ttlpolicy.Minutes(5)
	soft := ttlpolicy.Minutes(5).WithSoft(0.8)
	for name, tc := range map[string]struct {
		p    ttlpolicy.Policy
		want bool
	}{
		"nil":                {nil, false},
		"a tier":             {hard, false},
		"a soft tier":        {soft, true},
		"prefixes, none":     {ttlpolicy.ByPrefix(hard, ttlpolicy.Rule{Prefix: "a:", Policy: hard}), false},
		"a soft default":     {ttlpolicy.ByPrefix(soft, ttlpolicy.Rule{Prefix: "a:", Policy: hard}), true},
		"a soft rule":        {ttlpolicy.ByPrefix(hard, ttlpolicy.Rule{Prefix: "a:", Policy: hard}, ttlpolicy.Rule{Prefix: "b:", Policy: soft}), true},
		"a nested soft rule": {ttlpolicy.ByPrefix(hard, ttlpolicy.Rule{Prefix: "a:", Policy: ttlpolicy.ByPrefix(hard, ttlpolicy.Rule{Prefix: "a:x", Policy: soft})}), true},
		"a nil rule":         {ttlpolicy.ByPrefix(hard, ttlpolicy.Rule{Prefix: "a:"}), false},
	} {
		if got := ttlpolicy.HasSoft(tc.p); got != tc.want {
			t.Errorf("%s: HasSoft = %v, want %v", name, got, tc.want)
		}
	}
}
