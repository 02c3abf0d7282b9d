// Package ttlpolicy decides how long cached values live: the Redis expiry of
// each write (hard TTL), the age at which a value is refreshed ahead of that
// expiry (soft TTL), and the lifetime of not-found markers (negative TTL).
//
// A [Policy] is consulted on every write. [Tier] implements the TTL tiers of
// the Redis caching guide — [Minutes] for frequently or moderately changing
// data, [Hours] for relatively stable data, [Static] for reference data —
// with jitter, so that entries written together do not expire together.
// [ByPrefix] gives groups of keys their own policy, and [ByValue] lets the
// value being written decide.
//
// Every TTL is a whole number of milliseconds, at least 1ms, because Redis
// receives it as PX. Policies never panic on bad settings; Validate reports
// them, wrapped around [ErrInvalid].
//
// A policy for a cache of users, sessions and countries:
//
//	policy := ttlpolicy.ByPrefix(
//		ttlpolicy.Minutes(15).WithSoft(0.8), // users: moderately changing
//		ttlpolicy.Rule{Prefix: "session:", Policy: ttlpolicy.Minutes(5)}, // frequently changing
//		ttlpolicy.Rule{Prefix: "country:", Policy: ttlpolicy.Static()},   // reference data
//	)
//	if err := policy.Validate(); err != nil {
//		return err
//	}
//	ttls := policy.TTL("session:42") // Hard from 4m30s to 5m30s, Soft 0
package ttlpolicy
