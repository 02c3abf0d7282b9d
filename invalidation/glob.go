package invalidation

import (
	"fmt"
	"strings"
)

// globSpecial are the bytes Redis' glob matcher (stringmatchlen) gives a
// meaning to outside a bracket expression: '*', '?', '[' and the escape '\'.
// ']' and '^' and '-' only mean something inside brackets, which an escaped
// '[' never opens; ']' is escaped anyway so a pattern never holds a stray one.
const globSpecial = `*?[]\`

// Escape returns s with every glob metacharacter preceded by a backslash, so
// that it matches exactly s inside a Redis MATCH pattern.
func Escape(s string) string {
	if !strings.ContainsAny(s, globSpecial) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(globSpecial, s[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// CheckPattern reports whether Redis' glob matcher (stringmatchlen) reads
// pattern as it is written: an error wrapping [ErrPattern] when a '[' is
// never closed, or the pattern ends in a lone '\'. Redis itself accepts
// both without a word and reads them in ways nobody means (an unclosed
// bracket runs to the end of the pattern, "[a-]" is a range from 'a' to ']'
// that is never closed, a trailing '\' matches a backslash), so a pattern
// with either matches other keys than its author thought. The empty pattern
// is refused too. Inside brackets, as in Redis, '\' escapes the next byte,
// a ']' right after '[' or "[^" closes an empty set, and "x-y" is a range.
func CheckPattern(pattern string) error {
	if pattern == "" {
		return fmt.Errorf("%w: empty", ErrPattern)
	}
	p := pattern
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			if i+1 == len(p) {
				return fmt.Errorf("%w: ends in a lone backslash at offset %d (escape it as \\\\)", ErrPattern, i)
			}
			i++
		case '[':
			open := i
			i++
			if i < len(p) && p[i] == '^' {
				i++
			}
		class:
			for {
				switch {
				case i >= len(p):
					return fmt.Errorf("%w: the [ at offset %d is never closed (escape it as \\[ to match a bracket)", ErrPattern, open)
				case p[i] == '\\' && len(p)-i >= 2:
					i += 2
				case p[i] == ']':
					break class
				case len(p)-i >= 3 && p[i+1] == '-':
					i += 3 // a range; its end may be ']', as in Redis
				default:
					i++
				}
			}
		}
	}
	return nil
}
