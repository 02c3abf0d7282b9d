package invalidation

import "strings"

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
