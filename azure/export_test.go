package azure

import "time"

// SetClock makes the options judge token lifetimes by now instead of
// time.Now, so that tests can step through a token's life without waiting.
// Only the schedule reads it: rueidis still fires RefreshAfter on the real
// clock, so a client connected with a fake clock must not outlive the test.
func SetClock(o *Options, now func() time.Time) { o.now = now }

// ParseClaims exposes the JWT reader to the fuzz test.
func ParseClaims(token string) (oid string, exp time.Time, err error) {
	c, err := parseClaims(token)
	return c.oid, c.exp, err
}
