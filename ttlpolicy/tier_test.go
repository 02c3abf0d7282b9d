package ttlpolicy_test

import (
	"errors"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/ttlpolicy"
)

// constant returns a random source that always draws r.
func constant(r float64) func() float64 {
	return func() float64 { return r }
}

// sequence returns a random source that draws 0, 1/n, 2/n, … (n-1)/n, 0, …:
// a perfectly even spread over [0, 1) for n draws.
func sequence(n int) func() float64 {
	var i atomic.Int64
	return func() float64 { return float64((i.Add(1)-1)%int64(n)) / float64(n) }
}

// justBelowOne is the largest float64 below 1, the largest draw a source
// may return.
var justBelowOne = math.Nextafter(1, 0)

func TestTierTTL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		tier     ttlpolicy.Tier
		want     ttlpolicy.TTLs
		negative time.Duration
	}{
		{"minutes draw 0", ttlpolicy.Minutes(5).WithRand(constant(0)),
			ttlpolicy.TTLs{Hard: 4*time.Minute + 30*time.Second}, 27 * time.Second},
		{"minutes draw 0.5", ttlpolicy.Minutes(5).WithRand(constant(0.5)),
			ttlpolicy.TTLs{Hard: 5 * time.Minute}, 30 * time.Second},
		// float64 rounding carries the largest draw up to the upper bound.
		{"minutes largest draw", ttlpolicy.Minutes(5).WithRand(constant(justBelowOne)),
			ttlpolicy.TTLs{Hard: 5*time.Minute + 30*time.Second}, 33 * time.Second},
		{"minutes draw 0.999", ttlpolicy.Minutes(5).WithRand(constant(0.999)),
			ttlpolicy.TTLs{Hard: 5*time.Minute + 29*time.Second + 940*time.Millisecond}, 32*time.Second + 994*time.Millisecond},
		{"hours negative capped", ttlpolicy.Hours(2).WithRand(constant(0.5)),
			ttlpolicy.TTLs{Hard: 2 * time.Hour}, ttlpolicy.MaxDefaultNegativeTTL},
		{"static", ttlpolicy.Static().WithRand(constant(0.5)),
			ttlpolicy.TTLs{Hard: 24 * time.Hour}, ttlpolicy.MaxDefaultNegativeTTL},
		{"static draw 0", ttlpolicy.Static().WithRand(constant(0)),
			ttlpolicy.TTLs{Hard: 21*time.Hour + 36*time.Minute}, 4*time.Minute + 30*time.Second},
		{"fixed has no jitter", ttlpolicy.Fixed(90 * time.Second).WithRand(constant(0)),
			ttlpolicy.TTLs{Hard: 90 * time.Second}, 9 * time.Second},
		{"truncated to ms", ttlpolicy.Fixed(1234567891 * time.Nanosecond),
			ttlpolicy.TTLs{Hard: 1234 * time.Millisecond}, 123 * time.Millisecond},
		{"largest Duration", ttlpolicy.Fixed(math.MaxInt64),
			ttlpolicy.TTLs{Hard: math.MaxInt64 / time.Millisecond * time.Millisecond}, ttlpolicy.MaxDefaultNegativeTTL},
		{"1.5ms truncates to 1ms", ttlpolicy.Fixed(1500 * time.Microsecond),
			ttlpolicy.TTLs{Hard: time.Millisecond}, time.Millisecond},
		{"default negative at least 1ms", ttlpolicy.Fixed(5 * time.Millisecond),
			ttlpolicy.TTLs{Hard: 5 * time.Millisecond}, time.Millisecond},
		{"soft of jittered hard", ttlpolicy.Fixed(10 * time.Second).WithJitter(0.5).WithSoft(0.5).WithRand(constant(0)),
			ttlpolicy.TTLs{Hard: 5 * time.Second, Soft: 2500 * time.Millisecond}, 500 * time.Millisecond},
		{"soft truncated to ms", ttlpolicy.Fixed(1001 * time.Millisecond).WithSoft(0.5),
			ttlpolicy.TTLs{Hard: 1001 * time.Millisecond, Soft: 500 * time.Millisecond}, 100 * time.Millisecond},
		{"negative set", ttlpolicy.Minutes(5).WithNegativeTTL(10 * time.Second).WithRand(constant(0)),
			ttlpolicy.TTLs{Hard: 4*time.Minute + 30*time.Second}, 9 * time.Second},
		{"negative off", ttlpolicy.Minutes(5).WithNegativeTTL(0).WithRand(constant(0.5)),
			ttlpolicy.TTLs{Hard: 5 * time.Minute}, 0},
		{"jitter off", ttlpolicy.Minutes(5).WithJitter(0).WithRand(constant(0)),
			ttlpolicy.TTLs{Hard: 5 * time.Minute}, 30 * time.Second},
		{"bad draws clamped low", ttlpolicy.Minutes(5).WithRand(constant(-3)),
			ttlpolicy.TTLs{Hard: 4*time.Minute + 30*time.Second}, 27 * time.Second},
		{"NaN draw clamped low", ttlpolicy.Minutes(5).WithRand(constant(math.NaN())),
			ttlpolicy.TTLs{Hard: 4*time.Minute + 30*time.Second}, 27 * time.Second},
		{"bad draws clamped high", ttlpolicy.Minutes(5).WithRand(constant(7)),
			ttlpolicy.TTLs{Hard: 5*time.Minute + 30*time.Second}, 33 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.NoError(t, tt.tier.Validate())
			assert.Equal(t, tt.want, tt.tier.TTL("k"))
			assert.Equal(t, tt.negative, tt.tier.NegativeTTL("k"))
		})
	}
}

func TestTierJitterSpreadsEvenly(t *testing.T) {
	t.Parallel()
	const draws = 10000
	const buckets = 10
	base := 5 * time.Minute
	tier := ttlpolicy.Minutes(5).WithJitter(0.2).WithRand(sequence(draws))
	lo, hi := base*8/10, base*12/10 // [4m, 6m]

	var sum time.Duration
	minTTL, maxTTL := time.Duration(math.MaxInt64), time.Duration(0)
	var counts [buckets]int
	for range draws {
		d := tier.TTL("k").Hard
		require.Zero(t, d%time.Millisecond, "whole milliseconds")
		require.GreaterOrEqual(t, d, lo)
		require.LessOrEqual(t, d, hi)
		minTTL, maxTTL = min(minTTL, d), max(maxTTL, d)
		sum += d
		counts[min((d-lo)*buckets/(hi-lo), buckets-1)]++
	}
	assert.Equal(t, lo, minTTL)
	// The largest draw, (n-1)/n, gives 6m - 2m/n.
	assert.Equal(t, hi-(hi-lo)/draws, maxTTL)
	// The draws i/n average (n-1)/2n, just below 1/2, and truncation to the
	// millisecond takes at most 1ms off each TTL.
	mean := sum / draws
	assert.LessOrEqual(t, mean, base)
	assert.Greater(t, mean, base-10*time.Millisecond)
	for i, c := range counts {
		assert.InDelta(t, draws/buckets, c, 1, "bucket %d", i)
	}
}

func TestTierDefaultRandStaysInBounds(t *testing.T) {
	t.Parallel()
	const draws = 10000
	tier := ttlpolicy.Minutes(10).WithSoft(0.75) // default source, ±10%
	lo, hi := 9*time.Minute, 11*time.Minute
	var lower, upper int
	for range draws {
		ttls := tier.TTL("k")
		require.GreaterOrEqual(t, ttls.Hard, lo)
		require.LessOrEqual(t, ttls.Hard, hi)
		require.Less(t, ttls.Soft, ttls.Hard)
		require.Zero(t, ttls.Hard%time.Millisecond)
		require.Zero(t, ttls.Soft%time.Millisecond)
		if ttls.Hard < 10*time.Minute {
			lower++
		} else {
			upper++
		}
		n := tier.NegativeTTL("k")
		require.GreaterOrEqual(t, n, 54*time.Second)
		require.LessOrEqual(t, n, 66*time.Second)
	}
	// Both halves are drawn (a fair source misses one with probability 2^-9999).
	assert.Positive(t, lower)
	assert.Positive(t, upper)
}

func TestSoftAlwaysBelowHard(t *testing.T) {
	t.Parallel()
	draws := []float64{0, 0.25, 0.5, 0.75, justBelowOne}
	tests := []struct {
		name string
		tier ttlpolicy.Tier
	}{
		{"tiny", ttlpolicy.Fixed(2 * time.Millisecond).WithSoft(0.5)},
		{"fraction just below 1", ttlpolicy.Fixed(time.Second).WithSoft(justBelowOne)},
		{"fraction just below 1 jittered", ttlpolicy.Minutes(1).WithSoft(justBelowOne)},
		{"large fraction of long TTL", ttlpolicy.Hours(1000000).WithSoft(0.9999999)},
		{"small fraction", ttlpolicy.Hours(1).WithJitter(0.9).WithSoft(0.01)},
		{"odd TTL", ttlpolicy.Fixed(1999999 * time.Microsecond).WithJitter(0.3).WithSoft(0.999)},
	}
	for _, tt := range tests {
		for _, r := range draws {
			tier := tt.tier.WithRand(constant(r))
			require.NoError(t, tier.Validate(), tt.name)
			ttls := tier.TTL("k")
			assert.Positive(t, ttls.Soft, "%s draw %v", tt.name, r)
			assert.Less(t, ttls.Soft, ttls.Hard, "%s draw %v", tt.name, r)
			assert.Zero(t, ttls.Soft%time.Millisecond, "%s draw %v", tt.name, r)
		}
	}
}

func TestTierIsImmutable(t *testing.T) {
	t.Parallel()
	base := ttlpolicy.Minutes(5).WithRand(constant(0))
	_ = base.WithJitter(0).WithSoft(0.5).WithNegativeTTL(time.Second).WithRand(constant(0.5))
	assert.Equal(t, ttlpolicy.TTLs{Hard: 4*time.Minute + 30*time.Second}, base.TTL("k"))
	assert.Equal(t, 27*time.Second, base.NegativeTTL("k"))
}

func TestTierValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		tier    ttlpolicy.Tier
		setting string // "" when valid
	}{
		{"minute", ttlpolicy.Minutes(1), ""},
		{"day in hours", ttlpolicy.Hours(24), ""},
		{"static", ttlpolicy.Static(), ""},
		{"1ms", ttlpolicy.Fixed(time.Millisecond), ""},
		{"2ms soft half", ttlpolicy.Fixed(2 * time.Millisecond).WithSoft(0.5), ""},
		{"jitter close to 1", ttlpolicy.Fixed(time.Hour).WithJitter(0.99), ""},
		{"largest Duration", ttlpolicy.Fixed(math.MaxInt64), ""},
		{"negative off", ttlpolicy.Minutes(1).WithNegativeTTL(0), ""},
		{"zero tier", ttlpolicy.Tier{}, "TTL"},
		{"zero TTL", ttlpolicy.Fixed(0), "TTL"},
		{"negative TTL value", ttlpolicy.Fixed(-time.Second), "TTL"},
		{"below 1ms", ttlpolicy.Fixed(999 * time.Microsecond), "TTL"},
		{"zero minutes", ttlpolicy.Minutes(0), "TTL"},
		{"negative hours", ttlpolicy.Hours(-1), "TTL"},
		{"hours overflow", ttlpolicy.Hours(math.MaxInt), "TTL"},
		{"minutes overflow", ttlpolicy.Minutes(math.MinInt), "TTL"},
		{"jitter below 0", ttlpolicy.Minutes(1).WithJitter(-0.1), "jitter"},
		{"jitter 1", ttlpolicy.Minutes(1).WithJitter(1), "jitter"},
		{"jitter NaN", ttlpolicy.Minutes(1).WithJitter(math.NaN()), "jitter"},
		{"jitter Inf", ttlpolicy.Minutes(1).WithJitter(math.Inf(1)), "jitter"},
		{"jitter below 1ms", ttlpolicy.Fixed(1500 * time.Microsecond).WithJitter(0.5), "jitter"},
		{"jitter overflow", ttlpolicy.Fixed(math.MaxInt64 - time.Hour).WithJitter(0.1), "jitter"},
		{"soft below 0", ttlpolicy.Minutes(1).WithSoft(-0.5), "soft"},
		{"soft 1", ttlpolicy.Minutes(1).WithSoft(1), "soft"},
		{"soft NaN", ttlpolicy.Minutes(1).WithSoft(math.NaN()), "soft"},
		{"soft below 1ms", ttlpolicy.Fixed(2 * time.Millisecond).WithSoft(0.4), "soft"},
		{"soft below 1ms jittered", ttlpolicy.Fixed(10 * time.Millisecond).WithJitter(0.5).WithSoft(0.1), "soft"},
		{"negative TTL below 0", ttlpolicy.Minutes(1).WithNegativeTTL(-time.Second), "negative TTL"},
		{"negative TTL jittered below 1ms", ttlpolicy.Minutes(1).WithNegativeTTL(time.Millisecond), "negative TTL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.tier.Validate()
			if tt.setting == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ttlpolicy.ErrInvalid)
			assert.Contains(t, err.Error(), ": "+tt.setting+" ")
		})
	}
}

func TestTierValidateDoesNotPanicTTL(t *testing.T) {
	t.Parallel()
	// The TTLs of an invalid tier are unspecified, but asking never panics
	// and never gives a hard TTL below the 1ms that PX needs.
	for _, tier := range []ttlpolicy.Tier{
		{}, ttlpolicy.Fixed(-time.Hour), ttlpolicy.Hours(math.MaxInt),
		ttlpolicy.Minutes(1).WithJitter(math.NaN()).WithSoft(math.Inf(1)),
	} {
		require.Error(t, tier.Validate())
		assert.NotPanics(t, func() {
			assert.GreaterOrEqual(t, tier.TTL("k").Hard, time.Millisecond)
			tier.NegativeTTL("k")
		})
	}
}

func TestTierString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		tier ttlpolicy.Tier
		want string
	}{
		{ttlpolicy.Fixed(time.Minute), "1m0s negative 6s"},
		{ttlpolicy.Minutes(5).WithSoft(0.8), "5m0s ±10% soft 80% negative 30s"},
		{ttlpolicy.Static().WithNegativeTTL(0), "24h0m0s ±10% negative off"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.tier.String())
	}
}

func TestErrInvalidIsSentinel(t *testing.T) {
	t.Parallel()
	err := ttlpolicy.Fixed(0).Validate()
	assert.True(t, errors.Is(err, ttlpolicy.ErrInvalid))
	assert.False(t, errors.Is(ttlpolicy.Fixed(time.Second).Validate(), ttlpolicy.ErrInvalid))
}
