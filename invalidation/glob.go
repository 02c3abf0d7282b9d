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

// Match reports whether key matches pattern as Redis' glob matcher
// (stringmatchlen, case-sensitive) decides, for a pattern that CheckPattern
// accepts. Where Redis compares bytes as signed chars (a range whose ends or
// key byte are 0x80 or above), Match answers true: a caller that asks which
// keys a pattern could have removed may count too many, never too few.
func Match(pattern, key string) bool {
	p, s := pattern, key
	for len(p) > 0 && len(s) > 0 {
		switch p[0] {
		case '*':
			for len(p) > 1 && p[1] == '*' {
				p = p[1:]
			}
			if len(p) == 1 {
				return true
			}
			for ; len(s) > 0; s = s[1:] {
				if Match(p[1:], s) {
					return true
				}
			}
			return false
		case '?':
			s = s[1:]
		case '[':
			n, ok := matchClass(p[1:], s[0])
			if !ok {
				return false
			}
			p, s = p[n:], s[1:]
		case '\\':
			if len(p) >= 2 {
				p = p[1:]
			}
			fallthrough
		default:
			if p[0] != s[0] {
				return false
			}
			s = s[1:]
		}
		p = p[1:]
		if len(s) == 0 {
			for len(p) > 0 && p[0] == '*' {
				p = p[1:]
			}
			break
		}
	}
	return len(p) == 0 && len(s) == 0
}

// matchClass matches b against the bracket expression that begins at p
// (after its '['), and returns the bytes of p it spans up to and including
// its ']' (or the last byte of p, when it is not closed).
func matchClass(p string, b byte) (int, bool) {
	i, not, match := 0, false, false
	if i < len(p) && p[i] == '^' {
		not = true
		i++
	}
	for {
		switch {
		case i < len(p) && p[i] == '\\' && len(p)-i >= 2:
			i++
			match = match || p[i] == b
		case i < len(p) && p[i] == ']':
			return i + 1, match != not
		case i >= len(p):
			return i, match != not
		case len(p)-i >= 3 && p[i+1] == '-':
			lo, hi := p[i], p[i+2]
			if lo > hi {
				lo, hi = hi, lo
			}
			if lo >= 0x80 || hi >= 0x80 || b >= 0x80 {
				return rangeSkip(p, i+2), true // signed in Redis: count it as a match
			}
			match = match || (b >= lo && b <= hi)
			i += 2
		default:
			match = match || p[i] == b
		}
		i++
	}
}

// rangeSkip returns the bytes of p spanned from i up to and including the
// ']' that closes the bracket expression i is in.
func rangeSkip(p string, i int) int {
	for i++; i < len(p); i++ {
		switch {
		case p[i] == '\\' && len(p)-i >= 2:
			i++
		case p[i] == ']':
			return i + 1
		case len(p)-i >= 3 && p[i+1] == '-':
			i += 2
		}
	}
	return i
}
