package ttlpolicy_test

import (
	"testing"
	"time"

	"github.com/aside-go/aside/ttlpolicy"
)

// FuzzTierInvariants checks, for every tier that validates and every draw,
// the promises of TTLs: whole milliseconds, a hard TTL of at least 1ms within
// the jitter bounds, a soft TTL of 0 or in [1ms, hard).
func FuzzTierInvariants(f *testing.F) {
	f.Add(int64(5*time.Minute), 0.1, 0.8, int64(30*time.Second), 0.5)
	f.Add(int64(2*time.Millisecond), 0.0, 0.5, int64(0), 0.0)
	f.Add(int64(time.Second), 0.5, 0.999999, int64(time.Millisecond*2), 0.999999)
	f.Add(int64(1<<62), 0.9, 0.1, int64(-1), 0.25)
	f.Fuzz(func(t *testing.T, ttl int64, jitter, soft float64, negative int64, r float64) {
		tier := ttlpolicy.Fixed(time.Duration(ttl)).WithJitter(jitter).WithSoft(soft).WithRand(constant(r))
		if negative >= 0 {
			tier = tier.WithNegativeTTL(time.Duration(negative))
		}
		if tier.Validate() != nil {
			return
		}
		ttls := tier.TTL("k")
		if ttls.Hard < time.Millisecond || ttls.Hard%time.Millisecond != 0 {
			t.Fatalf("hard %v", ttls.Hard)
		}
		lo := time.Duration(float64(ttl) * (1 - jitter))
		hi := time.Duration(float64(ttl) * (1 + jitter))
		if ttls.Hard < lo-time.Millisecond || ttls.Hard > hi {
			t.Fatalf("hard %v out of [%v, %v]", ttls.Hard, lo, hi)
		}
		if ttls.Soft%time.Millisecond != 0 || ttls.Soft >= ttls.Hard || (soft > 0) != (ttls.Soft > 0) {
			t.Fatalf("soft %v, hard %v, fraction %v", ttls.Soft, ttls.Hard, soft)
		}
		if n := tier.NegativeTTL("k"); n < 0 || n%time.Millisecond != 0 || (negative == 0) != (n == 0) {
			t.Fatalf("negative %v from %v", n, negative)
		}
	})
}
