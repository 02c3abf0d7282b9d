package ttlpolicy

import (
	"fmt"
	"time"
)

// byValue is the ValuePolicy of ByValue.
type byValue[V any] struct {
	Policy
	f func(key string, v V) (time.Duration, bool)
}

// ByValue returns a [ValuePolicy] that asks f for the hard TTL of each value
// written, and falls back to base when f returns false, or when the cache
// has no value to show (TTL, NegativeTTL).
//
// The TTL that f returns is used as it is, without base's jitter: such TTLs
// usually come from the value itself (a token's expiry, an HTTP max-age),
// and jitter would let an entry outlive what it describes. It is truncated
// to the millisecond; a TTL below 1ms, including 0 and negative ones such as
// an expiry already past, gives the minimum of 1ms, so the value is written
// but expires at once. The soft TTL keeps base's proportion: if base would
// refresh at 80% of its hard TTL, an overridden entry refreshes at 80% of
// f's TTL.
func ByValue[V any](base Policy, f func(key string, v V) (time.Duration, bool)) ValuePolicy[V] {
	return &byValue[V]{Policy: base, f: f}
}

// TTLOf returns the TTLs of v written under key.
func (p *byValue[V]) TTLOf(key string, v V) TTLs {
	d, ok := p.f(key, v)
	b := p.Policy.TTL(key)
	if !ok {
		return b
	}
	hard := millis(d)
	var soft time.Duration
	if b.Soft > 0 {
		soft = softOf(hard, float64(b.Soft)/float64(b.Hard))
	}
	return TTLs{Hard: hard, Soft: soft}
}

// Validate validates base and reports a nil base or f.
func (p *byValue[V]) Validate() error {
	if p.Policy == nil {
		return fmt.Errorf("%w: ByValue: base policy is nil", ErrInvalid)
	}
	if p.f == nil {
		return fmt.Errorf("%w: ByValue: f is nil", ErrInvalid)
	}
	return p.Policy.Validate()
}
