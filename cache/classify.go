package cache

import (
	"errors"

	"github.com/redis/rueidis"

	"github.com/aside-go/aside/internal/envelope"
)

// verdict is what one key's visit came to, before anything is done about
// it: classify sorts a reply into one, and resolve acts on each.
type verdict uint8

const (
	// changedMeanwhile: what the visit found changed before it was read
	// whole (a lease gone between the two round trips of an untracked
	// visit): visit again.
	changedMeanwhile verdict = iota
	// unavailable: Redis did not answer (a dropped connection, the time
	// budget) or said it cannot serve now (LOADING, TRYAGAIN, ...). If the
	// visit offered a lease, it may hold it.
	unavailable
	// refusedLease: Redis refused the visit that offered a lease (out of
	// memory, an ACL that forbids writes): visit again without one.
	refusedLease
	// refusedRead: Redis refused a visit without a lease (an ACL that
	// forbids reads, a key of another type).
	refusedRead
	// leasedToUs: the key held nothing, and the visit took its lease: load.
	leasedToUs
	// missing: the key held nothing, and the visit offered no lease.
	missing
	// leased: a load holds the key's lease (in the key, or in plain mode in
	// its lease key): this process's own, or another's to wait for.
	leased
	// notALease: bytes shaped like a lease in a plain-mode lease key, with
	// no expiry (every lease aside takes expires): someone else's. Load,
	// write nothing.
	notALease
	// found: a value or a not-found marker of aside's, or bytes another
	// program wrote: the codec decides.
	found
	// newerFormat: an entry of a newer aside: load around it, leave it.
	newerFormat
	// unreadable: bytes that claim to be an entry and are not a valid one
	// (a lease in the key without an expiry included).
	unreadable
	// cleared: a value or a not-found marker written before the last Clear
	// of the namespace (of a generation below the one the visit read):
	// missing, to be deleted and loaded.
	cleared
)

// classify sorts what a visit found of one key; offered says whether the
// visit offered a lease, gen is the namespace's generation it read. It
// looks at the reply alone: the same reply always gets the same verdict.
func classify(v visited, offered bool, gen uint64) verdict {
	switch {
	case v.err != nil:
		if v.refused {
			if offered {
				return refusedLease
			}
			return refusedRead
		}
		return unavailable
	case v.changed:
		return changedMeanwhile
	case v.lease != nil:
		if v.pttl < 0 {
			return notALease
		}
		return leased
	case !v.found:
		if offered {
			return leasedToUs
		}
		return missing
	case !envelope.IsEntry(v.raw):
		return found
	}
	env, err := envelope.Decode(v.raw)
	switch {
	case errors.Is(err, envelope.ErrVersion):
		return newerFormat
	case err != nil, env.Kind == envelope.Lease && v.pttl < 0:
		return unreadable
	case env.Kind == envelope.Lease:
		return leased
	case env.Gen < gen:
		return cleared
	}
	return found
}

// refusal reports whether err is Redis refusing a command (an error reply
// that does not mean it cannot serve now).
func refusal(err error) bool {
	_, ok := rueidis.IsRedisErr(err)
	return ok && !errors.Is(classifyErr(err), ErrUnavailable)
}
