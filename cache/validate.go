package cache

import (
	"fmt"
	"time"

	"github.com/aside-go/aside/ttlpolicy"
)

// validate checks the options as the caller gave them, zero values meaning
// their defaults, and names the first field at fault.
func (o *Options[K, V]) validate() error {
	if o.Namespace == "" {
		return invalid("Namespace", "required")
	}
	if o.MaxValueBytes < 0 {
		return invalid("MaxValueBytes", "%d: must be 0 (no bound) or more", o.MaxValueBytes)
	}
	for _, r := range o.Namespace {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return invalid("Namespace", "%q has %q; use letters, digits and _-. only", o.Namespace, r)
		}
	}
	if o.Key == nil {
		if _, err := defaultKeyFunc[K](); err != nil {
			return err
		}
	}
	if o.TTL != nil {
		if err := o.TTL.Validate(); err != nil {
			return fmt.Errorf("cache: %w: TTL: %w", ErrInvalidOptions, err)
		}
	}
	switch o.OnRedisDown {
	case FailOpen, FailFast:
	default:
		return invalid("OnRedisDown", "unknown policy %d", o.OnRedisDown)
	}
	switch o.Refresh {
	case RefreshBackground, RefreshSync:
	default:
		return invalid("Refresh", "unknown mode %d", o.Refresh)
	}
	for _, f := range []struct {
		name string
		n    int
	}{
		{"BatchConcurrency", o.BatchConcurrency},
		{"RefreshConcurrency", o.RefreshConcurrency},
		{"FallbackConcurrency", o.FallbackConcurrency},
	} {
		if f.n < 0 {
			return invalid(f.name, "%d is negative", f.n)
		}
	}
	for _, f := range []struct {
		name string
		d    time.Duration
		min  time.Duration
	}{
		{"LocalTTL", o.LocalTTL, time.Millisecond},
		{"LeaseTTL", o.LeaseTTL, time.Millisecond},
		{"RefreshTimeout", o.RefreshTimeout, 0},
		{"BreakerCooldown", o.BreakerCooldown, 0},
		{"LeaseWait", o.LeaseWait, 0},
		{"RedisTimeout", o.RedisTimeout, time.Millisecond},
		{"OutageStaleness", o.OutageStaleness, 0},
		{"StaleWhileReloading", o.StaleWhileReloading, time.Millisecond},
		{"SoftTimeout", o.SoftTimeout, time.Millisecond},
		{"HardTimeout", o.HardTimeout, time.Millisecond},
		{"FailSafeThrottle", o.FailSafeThrottle, time.Millisecond},
		{"FailSafeMaxAge", o.FailSafeMaxAge, time.Millisecond},
	} {
		switch {
		case f.d < 0:
			return invalid(f.name, "%v is negative", f.d)
		case f.d != 0 && f.d < f.min:
			return invalid(f.name, "%v is below %v", f.d, f.min)
		}
	}
	if o.Plain {
		return o.validatePlain()
	}
	return nil
}

// validatePlain refuses the options that need the envelope.
func (o *Options[K, V]) validatePlain() error {
	const why = "needs the envelope's soft expiry, which Plain does not store"
	if ttlpolicy.HasSoft(o.TTL) {
		return invalid("TTL", "a soft TTL (refresh-ahead) %s", why)
	}
	switch {
	case o.Refresh != RefreshBackground:
		return invalid("Refresh", "refresh-ahead %s", why)
	case o.RefreshConcurrency != 0:
		return invalid("RefreshConcurrency", "refresh-ahead %s", why)
	case o.RefreshTimeout != 0:
		return invalid("RefreshTimeout", "refresh-ahead %s", why)
	case o.SoftTimeout != 0:
		return invalid("SoftTimeout", "serving the value at hand %s", why)
	case o.FailSafe:
		return invalid("FailSafe", "serving the value at hand %s", why)
	case o.FailSafeThrottle != 0:
		return invalid("FailSafeThrottle", "throttling refreshes %s", why)
	case o.FailSafeMaxAge != 0:
		return invalid("FailSafeMaxAge", "the age of a value past its soft TTL %s", why)
	}
	return nil
}
