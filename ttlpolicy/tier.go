package ttlpolicy

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Defaults of the tiers built by [Minutes], [Hours] and [Static].
const (
	// DefaultJitter is the jitter of [Minutes], [Hours] and [Static]: each
	// TTL is spread evenly over ±10% of the tier's TTL, so entries written
	// together (a deploy, a warm-up, a batch) do not all expire in the same
	// millisecond and stampede the source together.
	DefaultJitter = 0.1
	// MaxDefaultNegativeTTL bounds the default negative TTL of every tier
	// (TTL/10): a not-found marker exists to shield the source from repeated
	// lookups of a missing key, not to hide a record created later for hours.
	MaxDefaultNegativeTTL = 5 * time.Minute
	// StaticTTL is the TTL of [Static]: static reference data lives 24 hours
	// and more.
	StaticTTL = 24 * time.Hour
)

// Tier is a [Policy] with one TTL for every key: a base TTL, an optional
// jitter, an optional soft TTL for refresh-ahead and a negative TTL for
// not-found markers.
//
// The TTL tiers of the Redis caching guide map onto constructors:
// frequently changing data [Minutes](1) to [Minutes](5), moderately changing
// data [Minutes](15) to [Hours](1), relatively stable data [Hours](1) to
// [Hours](24), static reference data [Static] (24 hours) and more.
//
// A Tier is an immutable value: every With method returns a modified copy,
// so a whole policy is one expression that fits in an options struct
// literal:
//
//	ttlpolicy.Minutes(5).WithJitter(0.2).WithSoft(0.8)
//
// Constructors and With methods never panic: an invalid setting is kept as
// given and reported by [Tier.Validate]. The zero Tier is invalid (its TTL
// is 0).
type Tier struct {
	ttl      time.Duration
	jitter   float64
	soft     float64
	negative time.Duration
	// negativeSet records that WithNegativeTTL was called; otherwise the
	// negative TTL is derived from ttl (see WithNegativeTTL).
	negativeSet bool
	// overflow is the unit of a Minutes or Hours argument that overflows
	// time.Duration; ttl then holds the argument, for Validate to report.
	// A unit rather than an error keeps Tier small: every call of TTL
	// through a Policy copies it.
	overflow unit
	rand     func() float64
}

// unit is a time unit of a constructor argument.
type unit uint8

const (
	noUnit unit = iota
	minutes
	hours
)

func (u unit) String() string {
	if u == minutes {
		return "minutes"
	}
	return "hours"
}

func (u unit) duration() time.Duration {
	if u == minutes {
		return time.Minute
	}
	return time.Hour
}

var _ Policy = Tier{}

// Fixed returns a Tier of TTL d, without jitter, for TTLs that the tiers
// below do not fit (seconds, or a TTL set by configuration).
func Fixed(d time.Duration) Tier {
	return Tier{ttl: d}
}

// Minutes returns a Tier of n minutes with [DefaultJitter]: the tier of
// frequently (1–5 minutes) or moderately (15–60 minutes) changing data.
func Minutes(n int) Tier {
	return units(n, minutes)
}

// Hours returns a Tier of n hours with [DefaultJitter]: the tier of
// relatively stable data (1–24 hours).
func Hours(n int) Tier {
	return units(n, hours)
}

// Static returns a Tier of [StaticTTL] (24 hours) with [DefaultJitter], so
// entries expire between 21.6 and 26.4 hours after their write: the tier of
// static reference data. Use [Hours] for a longer one.
func Static() Tier {
	return Tier{ttl: StaticTTL, jitter: DefaultJitter}
}

func units(n int, u unit) Tier {
	t := Tier{jitter: DefaultJitter}
	if limit := int64(math.MaxInt64 / u.duration()); int64(n) > limit || int64(n) < -limit {
		t.overflow = u
		t.ttl = time.Duration(n)
		return t
	}
	t.ttl = time.Duration(n) * u.duration()
	return t
}

// WithJitter returns a copy of t whose TTLs are spread evenly over
// ±fraction of its TTL: with fraction 0.2 a 5-minute tier gives TTLs from 4
// to 6 minutes. The fraction must be in [0, 1); 0 turns jitter off. The
// negative TTL is jittered by the same fraction.
func (t Tier) WithJitter(fraction float64) Tier {
	t.jitter = fraction
	return t
}

// WithSoft returns a copy of t with refresh-ahead: once an entry is older
// than fraction × its (jittered) hard TTL, a read still returns it but
// refreshes it in the background, so hot keys never expire under load. The
// fraction must be in [0, 1); 0, the default, turns refresh-ahead off.
func (t Tier) WithSoft(fraction float64) Tier {
	t.soft = fraction
	return t
}

// WithNegativeTTL returns a copy of t whose not-found markers live d
// (jittered like the TTL). 0 turns the caching of not-found results off.
//
// By default the negative TTL is a tenth of the TTL, at most
// [MaxDefaultNegativeTTL] and at least 1ms.
func (t Tier) WithNegativeTTL(d time.Duration) Tier {
	t.negative = d
	t.negativeSet = true
	return t
}

// WithRand returns a copy of t that draws its jitter from rand, which must
// return numbers in [0, 1) (values outside are clamped into it) and be safe
// for concurrent use. Tests inject a deterministic source with it. nil
// restores the default source, math/rand/v2's top-level Float64.
func (t Tier) WithRand(rand func() float64) Tier {
	t.rand = rand
	return t
}

// TTL returns the jittered TTL, truncated to the millisecond, and the soft
// TTL derived from it. key is ignored: a Tier treats every key alike.
func (t Tier) TTL(string) TTLs {
	hard := millis(jittered(t.ttl, t.jitter, t.rand))
	return TTLs{Hard: hard, Soft: softOf(hard, t.soft)}
}

// NegativeTTL returns the jittered negative TTL, truncated to the
// millisecond, or 0 when not-found results are not cached. key is ignored.
func (t Tier) NegativeTTL(string) time.Duration {
	n := t.negativeTTL()
	if n == 0 {
		return 0
	}
	return millis(jittered(n, t.jitter, t.rand))
}

func (t Tier) negativeTTL() time.Duration {
	if t.negativeSet {
		return t.negative
	}
	return max(min(t.ttl/10, MaxDefaultNegativeTTL), time.Millisecond)
}

// maxDraw is the largest float64 below 1.
const maxDraw = 1 - 0x1p-53

// jittered spreads d evenly over [d×(1-jitter), d×(1+jitter)] with a draw
// from source (nil: math/rand/v2).
func jittered(d time.Duration, jitter float64, source func() float64) time.Duration {
	if jitter == 0 {
		return d
	}
	var r float64
	if source == nil {
		r = rand.Float64()
	} else {
		// Clamp a foreign source so that a bad one cannot move a TTL out
		// of the bounds that Validate checked.
		r = source()
		if !(r >= 0) { // also NaN
			r = 0
		}
		r = min(r, maxDraw)
	}
	return spread(d, jitter, r)
}

// spread maps r in [0, 1) linearly onto [d×(1-j), d×(1+j)]: the upper bound
// is reached when float64 rounding carries r just below 1 up to it. It is
// monotonic in r, so r = 0 gives the smallest TTL that Validate checks, and
// d×(1+j) bounds the largest.
func spread(d time.Duration, j, r float64) time.Duration {
	return time.Duration(float64(d) * (1 + j*(2*r-1)))
}

// lowest returns the smallest TTL that jitter can make of d.
func lowest(d time.Duration, jitter float64) time.Duration {
	if jitter == 0 {
		return d // spread would round d through a float64
	}
	return spread(d, jitter, 0)
}

// millis truncates d to the millisecond but never below 1ms.
func millis(d time.Duration) time.Duration {
	d -= d % time.Millisecond
	return max(d, time.Millisecond)
}

// softOf returns fraction × hard in whole milliseconds, kept in [1ms, hard)
// and 0 when fraction is 0 or no such value exists (hard is 1ms).
func softOf(hard time.Duration, fraction float64) time.Duration {
	if fraction <= 0 || hard <= time.Millisecond {
		return 0
	}
	s := time.Duration(float64(hard) * fraction)
	s -= s % time.Millisecond
	// float64 does not hold every Duration above 2^53ns exactly, so the
	// product may round up to hard itself; soft must stay below it.
	return min(max(s, time.Millisecond), hard-time.Millisecond)
}

// Validate reports the first invalid setting of t, wrapped around
// [ErrInvalid]: a TTL below 1ms; a jitter or soft fraction outside [0, 1);
// a negative TTL below 0; a jitter that can bring the TTL (or an explicitly
// set negative TTL) below 1ms or the TTL above the largest time.Duration; a
// soft fraction that can give a soft TTL below 1ms.
func (t Tier) Validate() error {
	switch {
	case t.overflow != noUnit:
		return fmt.Errorf("%w: TTL %d %v: overflows time.Duration", ErrInvalid, int64(t.ttl), t.overflow)
	case t.ttl < time.Millisecond:
		return fmt.Errorf("%w: TTL %v: want at least 1ms", ErrInvalid, t.ttl)
	case !(t.jitter >= 0 && t.jitter < 1):
		return fmt.Errorf("%w: jitter %v: want 0 <= jitter < 1", ErrInvalid, t.jitter)
	case !(t.soft >= 0 && t.soft < 1):
		return fmt.Errorf("%w: soft %v: want 0 <= soft < 1", ErrInvalid, t.soft)
	case t.negative < 0:
		return fmt.Errorf("%w: negative TTL %v: want 0 (off) or more", ErrInvalid, t.negative)
	}
	lo := lowest(t.ttl, t.jitter)
	if lo < time.Millisecond {
		return fmt.Errorf("%w: jitter %v: TTL %v can drop to %v, below 1ms", ErrInvalid, t.jitter, t.ttl, lo)
	}
	if t.jitter > 0 && float64(t.ttl)*(1+t.jitter) >= math.MaxInt64 {
		return fmt.Errorf("%w: jitter %v: TTL %v can overflow time.Duration", ErrInvalid, t.jitter, t.ttl)
	}
	if t.soft > 0 {
		if s := time.Duration(float64(millis(lo)) * t.soft); s < time.Millisecond {
			return fmt.Errorf("%w: soft %v: soft TTL can drop to %v, below 1ms", ErrInvalid, t.soft, s)
		}
	}
	if t.negativeSet && t.negative > 0 {
		if n := lowest(t.negative, t.jitter); n < time.Millisecond {
			return fmt.Errorf("%w: negative TTL %v: jitter %v can bring it to %v, below 1ms", ErrInvalid, t.negative, t.jitter, n)
		}
	}
	return nil
}

// String describes t, such as "5m0s ±10% soft 80% negative 30s".
func (t Tier) String() string {
	s := t.ttl.String()
	if t.jitter != 0 {
		s += fmt.Sprintf(" ±%.4g%%", t.jitter*100)
	}
	if t.soft != 0 {
		s += fmt.Sprintf(" soft %.4g%%", t.soft*100)
	}
	if n := t.negativeTTL(); n == 0 {
		s += " negative off"
	} else {
		s += " negative " + n.String()
	}
	return s
}
