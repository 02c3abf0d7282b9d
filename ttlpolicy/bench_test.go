package ttlpolicy_test

import (
	"testing"

	"github.com/aside-go/aside/ttlpolicy"
)

var sink ttlpolicy.TTLs

func BenchmarkTTL(b *testing.B) {
	benchmarks := []struct {
		name   string
		policy ttlpolicy.Policy
	}{
		{"Fixed", ttlpolicy.Fixed(5 * 60e9)},
		{"Minutes", ttlpolicy.Minutes(5)},
		{"MinutesSoft", ttlpolicy.Minutes(5).WithSoft(0.8)},
		{"ByPrefix4Rules", ttlpolicy.ByPrefix(ttlpolicy.Minutes(30),
			ttlpolicy.Rule{Prefix: "session:", Policy: ttlpolicy.Minutes(5)},
			ttlpolicy.Rule{Prefix: "country:", Policy: ttlpolicy.Static()},
			ttlpolicy.Rule{Prefix: "product:", Policy: ttlpolicy.Hours(6)},
			ttlpolicy.Rule{Prefix: "user:", Policy: ttlpolicy.Minutes(15).WithSoft(0.8)},
		)},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sink = bm.policy.TTL("user:42")
			}
		})
	}
}

func BenchmarkTTLParallel(b *testing.B) {
	policy := ttlpolicy.Minutes(5).WithSoft(0.8)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var t ttlpolicy.TTLs
		for pb.Next() {
			t = policy.TTL("user:42")
		}
		_ = t
	})
}
