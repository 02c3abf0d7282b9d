package cache

import (
	"context"
	"errors"
	"time"

	"github.com/aside-go/aside/internal/flight"
)

// The read path below process memory. A Get or GetMany that process memory
// could not answer makes one fetch per key, and goes through:
//
//	fetchAll  claims each key's flight: the reads of the process share one
//	          resolution of a key; a read that joins waits for it
//	resolve   visits Redis for every key the call leads, in one round trip
//	          (visit.go), sorts each reply (classify.go), and acts:
//	            found          decoded, kept in process memory, answered
//	            leasedToUs     loaded under the lease (load.go), answered as
//	                           soon as the loader returns, written behind
//	            leased         another's load: wait for the key's push, then
//	                           visit again (waits.go); this process's own:
//	                           its result
//	            unavailable    as OnRedisDown says (fallback.go)
//	            ...            see the verdicts
//
// A key's state between its visits, and its answer, are in its fetch.

// keyRef is a typed key and its Redis key.
type keyRef[K comparable] struct {
	k   K
	key string
}

// fetch is one key of a read, from its flight to its answer.
type fetch[K comparable, V any] struct {
	keyRef[K]
	// fl is the flight of the key this read leads or joined; nil when
	// flights are not shared (no tracking).
	fl     *flight.Flight[*entry[V]]
	out    outcome[V]
	answer bool // out is set

	snap      uint64    // local's counter before the last visit
	lease     []byte    // offered in the last visit; nil for a plain read
	readOnly  bool      // Redis refused the lease: visit without one
	refused   error     // that refusal
	pttl      int64     // of the lease another process holds
	waitUntil time.Time // when LeaseWait ends, once the key was seen leased
	raw       []byte    // unreadable bytes found, to delete if unchanged
	gen       uint64    // the namespace's generation the last visit read
	clears    uint64    // the cache's count of Clears before the last visit
	// handed: a load of this read's own runs in the background, and
	// finishes the flight itself.
	handed bool
	// load is a load of this process the read waits for: its own
	// (handed), or another flight's, whose result it then passes on.
	load *heldLoad[V]
	// hard is the read's hard timeout, and loadBy when it ends: the
	// waits for a load end there (see failsafe.go). Zero: none.
	hard   time.Duration
	loadBy time.Time
}

// outcome is what resolving one key came to: an entry (a value or a
// not-found marker) or an error.
type outcome[V any] struct {
	e   *entry[V]
	err error
}

// errAbandoned is the result of a flight whose leader's context ended before
// it had an answer: the callers that joined it try again.
var errAbandoned = errors.New("read abandoned by the caller that led it")

// newFetches makes the fetches of ks, none of them repeated.
func (c *Cache[K, V]) newFetches(ks []K) []*fetch[K, V] {
	fs := make([]fetch[K, V], len(ks))
	out := make([]*fetch[K, V], len(ks))
	for i, k := range ks {
		fs[i].k, fs[i].key = k, c.Key(k)
		out[i] = &fs[i]
	}
	return out
}

// fetchAll answers every fetch of fs (f.out).
//
// With tracking, each key's resolution is a flight that the process's other
// reads of the key join (one Redis visit, one load); a change of the key
// forgets the flight, so that reads after it start their own. Without
// tracking no push would ever forget a flight: every read visits Redis, and
// waits for another read's load only when Redis still holds that load's
// lease.
func (c *Cache[K, V]) fetchAll(ctx context.Context, fs []*fetch[K, V]) {
	if c.client.isClosed.Load() {
		for _, f := range fs {
			f.out.err = ErrClosed
		}
		return
	}
	share := c.tracks()
	pending := fs
	for len(pending) > 0 {
		if err := ctx.Err(); err != nil {
			for _, f := range pending {
				f.out.err = err
			}
			return
		}
		lead, joined := pending, []*fetch[K, V](nil)
		if share {
			lead = c.claimAll(pending, &joined)
		}
		if len(lead) > 0 {
			c.resolve(ctx, lead)
		}
		var again []*fetch[K, V]
		for _, f := range joined {
			e, err := c.waitJoined(ctx, f)
			if errors.Is(err, errAbandoned) {
				again = append(again, f)
				continue
			}
			f.out = outcome[V]{e, err}
		}
		pending = again
	}
}

// claimAll claims the flight of each key of fs (f.fl; see
// flight.Group.Claim), and returns those it leads; it appends the others to
// *joined.
func (c *Cache[K, V]) claimAll(fs []*fetch[K, V], joined *[]*fetch[K, V]) (lead []*fetch[K, V]) {
	if len(fs) == 1 {
		var leader bool
		if fs[0].fl, leader = c.flights.Claim(fs[0].key); leader {
			return fs
		}
		*joined = append(*joined, fs[0])
		return nil
	}
	keys := make([]string, len(fs))
	for i, f := range fs {
		keys[i] = f.key
	}
	fls, leads := make([]*flight.Flight[*entry[V]], len(fs)), make([]bool, len(fs))
	c.flights.ClaimAll(keys, fls, leads)
	for i, f := range fs {
		f.fl = fls[i]
		if leads[i] {
			lead = append(lead, f)
		} else {
			*joined = append(*joined, f)
		}
	}
	return lead
}

// finish answers f, and the reads that joined its flight.
func (c *Cache[K, V]) finish(ctx context.Context, f *fetch[K, V], e *entry[V], err error) {
	f.out, f.answer = outcome[V]{e, err}, true
	if f.fl != nil {
		if err != nil && (ctx.Err() != nil && errors.Is(err, ctx.Err()) || errors.Is(err, ErrLoadTimeout)) {
			// The reads that joined try again, under their own timeouts.
			err = errAbandoned
		}
		f.fl.Finish(e, err)
	}
}

// finishAll is finish of every fetch of fs with err.
func (c *Cache[K, V]) finishAll(ctx context.Context, fs []*fetch[K, V], err error) {
	for _, f := range fs {
		c.finish(ctx, f, nil, err)
	}
}

// detach takes f's flight out of the table: reads from now on start their
// own (see fallback.go).
func (f *fetch[K, V]) detach() {
	if f.fl != nil {
		f.fl.Detach()
	}
}
