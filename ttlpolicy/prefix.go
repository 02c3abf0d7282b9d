package ttlpolicy

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Rule gives the keys that start with Prefix their own Policy.
type Rule struct {
	// Prefix is compared with the cache key without its namespace.
	Prefix string
	// Policy decides the TTLs of the keys that match.
	Policy Policy
}

// prefixes is the Policy of ByPrefix.
type prefixes struct {
	def   Policy
	rules []Rule
}

// ByPrefix returns a Policy that gives each key the Policy of the first rule
// whose Prefix the key starts with, and def when none matches. Rules are
// tried in order, so a more specific prefix goes before a shorter one that
// it starts with; Validate reports a rule that can never match for that
// reason. The rules are copied.
func ByPrefix(def Policy, rules ...Rule) Policy {
	return &prefixes{def: def, rules: append([]Rule(nil), rules...)}
}

func (p *prefixes) policy(key string) Policy {
	for i := range p.rules {
		if strings.HasPrefix(key, p.rules[i].Prefix) {
			return p.rules[i].Policy
		}
	}
	return p.def
}

// TTL returns the TTLs of the Policy that key matches.
func (p *prefixes) TTL(key string) TTLs {
	return p.policy(key).TTL(key)
}

// NegativeTTL returns the negative TTL of the Policy that key matches.
func (p *prefixes) NegativeTTL(key string) time.Duration {
	return p.policy(key).NegativeTTL(key)
}

// Validate validates the default and every rule, and reports every problem
// (joined), each naming its rule by number (from 1) and prefix.
func (p *prefixes) Validate() error {
	var errs []error
	if p.def == nil {
		errs = append(errs, fmt.Errorf("default policy: %w: policy is nil", ErrInvalid))
	} else if err := p.def.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("default policy: %w", err))
	}
	for i, r := range p.rules {
		name := fmt.Sprintf("rule %d (prefix %q)", i+1, r.Prefix)
		if r.Policy == nil {
			errs = append(errs, fmt.Errorf("%s: %w: policy is nil", name, ErrInvalid))
		} else if err := r.Policy.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		for j, earlier := range p.rules[:i] {
			if strings.HasPrefix(r.Prefix, earlier.Prefix) {
				errs = append(errs, fmt.Errorf("%s: %w: never matches, rule %d (prefix %q) matches its keys first",
					name, ErrInvalid, j+1, earlier.Prefix))
				break
			}
		}
	}
	return errors.Join(errs...)
}

// HasSoft reports whether p decides a soft TTL (refresh-ahead) for some key,
// as far as it can be told without the values: for a [ByPrefix] policy,
// whether its default or the policy of any rule does (each asked for a key
// of its own prefix); for any other policy, whether TTL("") has one. A
// [ValuePolicy] may still decide one from a value.
func HasSoft(p Policy) bool {
	if p == nil {
		return false
	}
	if bp, ok := p.(*prefixes); ok {
		if HasSoft(bp.def) {
			return true
		}
		for _, r := range bp.rules {
			if r.Policy != nil && (r.Policy.TTL(r.Prefix).Soft > 0 || HasSoft(r.Policy)) {
				return true
			}
		}
		return false
	}
	return p.TTL("").Soft > 0
}
