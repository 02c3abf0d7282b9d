package ttlpolicy_test

import (
	"fmt"
	"time"

	"github.com/aside-go/aside/ttlpolicy"
)

// middle is a random source that always draws the middle of the jitter
// range, so that the examples print the tier's own TTL.
func middle() float64 { return 0.5 }

func ExampleFixed() {
	policy := ttlpolicy.Fixed(90 * time.Second)
	fmt.Println(policy.TTL("user:42").Hard)
	fmt.Println(policy.NegativeTTL("user:42"))
	// Output:
	// 1m30s
	// 9s
}

func ExampleMinutes() {
	// Frequently changing data: 5 minutes ±10%.
	policy := ttlpolicy.Minutes(5)
	fmt.Println(policy)
	hard := policy.TTL("stock:ACME").Hard
	fmt.Println(hard >= 4*time.Minute+30*time.Second && hard <= 5*time.Minute+30*time.Second)
	// Output:
	// 5m0s ±10% negative 30s
	// true
}

func ExampleHours() {
	// Relatively stable data, refreshed ahead of expiry after 80% of its TTL.
	policy := ttlpolicy.Hours(6).WithSoft(0.8).WithRand(middle)
	fmt.Printf("%+v\n", policy.TTL("product:7"))
	fmt.Println(policy.NegativeTTL("product:7"))
	// Output:
	// {Hard:6h0m0s Soft:4h48m0s}
	// 5m0s
}

func ExampleStatic() {
	policy := ttlpolicy.Static()
	fmt.Println(policy)
	// Output:
	// 24h0m0s ±10% negative 5m0s
}

func ExampleTier_WithJitter() {
	low := func() float64 { return 0 } // the smallest draw
	policy := ttlpolicy.Minutes(5).WithJitter(0.2).WithRand(low)
	fmt.Println(policy.TTL("k").Hard)
	// Output:
	// 4m0s
}

func ExampleTier_WithSoft() {
	policy := ttlpolicy.Fixed(10 * time.Minute).WithSoft(0.9)
	fmt.Printf("%+v\n", policy.TTL("k"))
	// Output:
	// {Hard:10m0s Soft:9m0s}
}

func ExampleTier_WithNegativeTTL() {
	policy := ttlpolicy.Minutes(15).WithNegativeTTL(20 * time.Second).WithRand(middle)
	fmt.Println(policy.NegativeTTL("user:404"))
	fmt.Println(ttlpolicy.Minutes(15).WithNegativeTTL(0).NegativeTTL("user:404"))
	// Output:
	// 20s
	// 0s
}

func ExampleTier_Validate() {
	err := ttlpolicy.Minutes(5).WithJitter(1.5).Validate()
	fmt.Println(err)
	// Output:
	// ttlpolicy: invalid policy: jitter 1.5: want 0 <= jitter < 1
}

func ExampleByPrefix() {
	policy := ttlpolicy.ByPrefix(
		ttlpolicy.Minutes(30).WithRand(middle),
		ttlpolicy.Rule{Prefix: "session:", Policy: ttlpolicy.Minutes(5).WithRand(middle)},
		ttlpolicy.Rule{Prefix: "country:", Policy: ttlpolicy.Static().WithRand(middle)},
	)
	if err := policy.Validate(); err != nil {
		panic(err)
	}
	for _, key := range []string{"session:9f2c", "country:FR", "user:42"} {
		fmt.Println(key, policy.TTL(key).Hard)
	}
	// Output:
	// session:9f2c 5m0s
	// country:FR 24h0m0s
	// user:42 30m0s
}

func ExampleByValue() {
	type Token struct {
		Value     string
		ExpiresIn time.Duration
	}
	// A token is cached until it expires, other values by the base policy.
	policy := ttlpolicy.ByValue(ttlpolicy.Minutes(10).WithSoft(0.5).WithRand(middle),
		func(_ string, tok Token) (time.Duration, bool) {
			return tok.ExpiresIn, tok.ExpiresIn > 0
		})
	fmt.Printf("%+v\n", policy.TTLOf("token:svc", Token{Value: "t0k3n", ExpiresIn: time.Hour}))
	fmt.Printf("%+v\n", policy.TTLOf("token:svc", Token{Value: "t0k3n"}))
	// Output:
	// {Hard:1h0m0s Soft:30m0s}
	// {Hard:10m0s Soft:5m0s}
}
