package cache

// keepWritten is storeWritten for the write of a load whose early copy
// (kept by keepLoaded before the write) is early: in the same one step it
// leaves early in place when it is still the only copy of its Redis key and
// expires no later than expireAt, the expiry of what was written — saving
// the replacement's copy and its two changes of the store — and otherwise
// stores a copy of early that expires at expireAt, as storeWritten would.
func (l *local[K, V]) keepWritten(k K, early *entry[V], expireAt int64, snap uint64, own ownMoves) bool {
	st, ok := l.lockWritten(early.key, snap, own)
	if ok && early.expireAt != 0 && early.expireAt <= expireAt {
		if cur, found := l.items.GetEntryQuietly(k); found && cur.Value == early {
			if ks := st.rev[early.key]; len(ks) == 1 && ks[0] == k {
				st.mu.Unlock()
				return true
			}
		}
	}
	e := early // only its key, when nothing is stored
	if ok {
		e = early.copied()
		e.expireAt = expireAt
	}
	return l.replaceWritten(st, k, e, ok)
}

// storeWritten is store for a value this process has just written: in one
// step under the stripe's mutex it drops every copy of the Redis key (as
// invalidate does, so that reads in flight do not store what they read
// before the write), then keeps e as the copy of k — unless an invalidation
// touched the key's counter since snap, taken before the write was sent.
func (l *local[K, V]) storeWritten(k K, e *entry[V], snap uint64, own ownMoves) bool {
	st, ok := l.lockWritten(e.key, snap, own)
	return l.replaceWritten(st, k, e, ok)
}

// lockWritten begins storeWritten and keepWritten: it locks key's stripe,
// reports whether no invalidation touched the key's counter since snap (and
// copies are kept at all), and moves the counter, so that reads in flight
// since before the write do not store what they read. own, when not nil,
// holds the moves of the writes of the same batch before this one, whose
// snapshots were all taken before the first of them (see ownMoves).
func (l *local[K, V]) lockWritten(key string, snap uint64, own ownMoves) (*stripe[K], bool) {
	h := l.hash(key)
	st, gen := &l.stripes[h%stripeCount], &l.gens[h]
	st.mu.Lock()
	cur := gen.Load()
	ok := cur == snap
	if run, moved := own[h]; moved && run.last == cur {
		ok = ok || snap == run.first
		own[h] = ownRun{run.first, cur + 1}
	} else if own != nil {
		own[h] = ownRun{cur, cur + 1}
	}
	gen.Add(1)
	return st, ok && l.items != nil
}

// ownMoves are the invalidation counters that the writes of one batch have
// moved so far, each with the run of values those moves alone took it
// through (no other move came between them). A write of the batch whose
// snapshot is the first value of its counter's run saw no invalidation but
// the moves of the batch's other writes, which concern other keys that
// share the counter: it keeps its copy. Without them, a batch of 100
// writes would drop a copy for every two of its keys that share a counter.
// Use one for the writes of one pipeline, from one goroutine, with the
// snapshots taken before the first write is stored.
type ownMoves map[uint32]ownRun

type ownRun struct{ first, last uint64 }

// replaceWritten ends them: it drops every copy of e's Redis key, keeps e as
// the copy of k when ok, and unlocks st.
func (l *local[K, V]) replaceWritten(st *stripe[K], k K, e *entry[V], ok bool) bool {
	l.drop(st, e.key)
	if ok {
		l.put(st, k, e)
	}
	st.mu.Unlock()
	l.reap()
	return ok
}
