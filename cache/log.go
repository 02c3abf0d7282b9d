package cache

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// Logging (WithLogger): what happens off the callers' paths. Records at Info
// and above carry the namespace, an error class, and an error's text only
// when it is Redis' or the network's and names none of the keys; the keys and
// the whole error go in a Debug record of their own.

var discardLogger = slog.New(slog.DiscardHandler)

// logger returns the client's logger (WithLogger), or one that discards.
func (c *Client) logger() *slog.Logger {
	if c == nil || c.log == nil {
		return discardLogger
	}
	return c.log
}

// logEvent logs msg at level for namespace ns, about the Redis keys keys and
// err (either may be empty).
func logEvent(l *slog.Logger, level slog.Level, msg, ns string, err error, keys []string, attrs ...slog.Attr) {
	if l == nil {
		return
	}
	ctx := context.Background()
	if level <= slog.LevelDebug {
		if l.Enabled(ctx, level) {
			l.LogAttrs(ctx, level, msg, debugAttrs(ns, err, keys, attrs)...)
		}
		return
	}
	redacted := false
	if l.Enabled(ctx, level) {
		a := make([]slog.Attr, 0, len(attrs)+4)
		a = append(a, slog.String("namespace", ns))
		a = append(a, attrs...)
		if len(keys) > 1 {
			a = append(a, slog.Int("keys", len(keys)))
		}
		if err != nil {
			class := errClass(err)
			a = append(a, slog.String("error_class", class))
			if text := err.Error(); class != "error" && !mentionsKey(text, ns, keys) {
				a = append(a, slog.String("error", text))
			} else {
				redacted = true
			}
		}
		l.LogAttrs(ctx, level, msg, a...)
	}
	if (len(keys) > 0 || redacted) && l.Enabled(ctx, slog.LevelDebug) {
		l.LogAttrs(ctx, slog.LevelDebug, msg, debugAttrs(ns, err, keys, attrs)...)
	}
}

func debugAttrs(ns string, err error, keys []string, attrs []slog.Attr) []slog.Attr {
	a := make([]slog.Attr, 0, len(attrs)+3)
	a = append(a, slog.String("namespace", ns))
	a = append(a, attrs...)
	if len(keys) > 0 {
		a = append(a, slog.Any("keys", keys))
	}
	if err != nil {
		a = append(a, slog.String("error", err.Error()))
	}
	return a
}

// errClass names the kind of err without its text: "canceled", "timeout",
// "unavailable" (Redis down, or saying it cannot serve now), "redis" (a reply
// of Redis'), or "error" (anything else, a loader's error say, whose text
// may name a key).
func errClass(err error) string {
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	}
	if _, ok := rueidis.IsRedisErr(err); ok {
		return "redis"
	}
	return "error"
}

// mentionsKey reports whether text holds one of the Redis keys keys, or the
// part of one after its namespace.
func mentionsKey(text, ns string, keys []string) bool {
	for _, k := range keys {
		if strings.Contains(text, k) {
			return true
		}
		if rest, ok := strings.CutPrefix(k, ns+":"); ok && rest != "" && strings.Contains(text, rest) {
			return true
		}
	}
	return false
}

// logEvent logs msg for the cache's namespace (see the function logEvent).
func (c *Cache[K, V]) logEvent(level slog.Level, msg string, err error, keys []string, attrs ...slog.Attr) {
	logEvent(c.client.logger(), level, msg, strings.TrimSuffix(c.ns, ":"), err, keys, attrs...)
}

// logLeaseTimeouts logs the keys of fs whose LeaseWait ran out: another
// process's load held their leases, and this one loads them without
// writing.
func (c *Cache[K, V]) logLeaseTimeouts(fs []*fetch[K, V]) {
	ks := make([]string, len(fs))
	for j, f := range fs {
		ks[j] = f.key
	}
	c.logEvent(slog.LevelInfo, "cache: another process's load held the lease past LeaseWait: loading without writing", nil, ks)
}

// logLeaseExpired logs a lease that expired before its load wrote a value
// (the process holding it stalled or died): the waiters visit again, and one
// takes the load over.
func (c *Cache[K, V]) logLeaseExpired(key string) {
	c.logEvent(slog.LevelInfo, "cache: a lease expired before its load wrote a value: taking the load over", nil, []string{key})
}

// refusedLease counts a lease Redis refused for key, and logs it at most once a
// second (out of memory, every read of a missing key meets it).
func (c *Cache[K, V]) refusedLease(key string, err error) {
	c.stats.refusals.Add(1)
	now := time.Now().UnixNano()
	last := c.refusalLogged.Load()
	if now-last < int64(time.Second) || !c.refusalLogged.CompareAndSwap(last, now) {
		return
	}
	c.logEvent(slog.LevelWarn, "cache: Redis refused a lease (out of memory, or an ACL that forbids writes): reads of missing keys load without writing", err, []string{key})
}
