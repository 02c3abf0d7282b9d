package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/rueidis"

	"github.com/aside-go/aside/internal/envelope"
)

// Set writes v under k in one atomic step, with the expiry the TTL policy
// gives it or the one [WithTTL] sets (millisecond precision, as SET with PX),
// and the tags [WithTags] attaches. Every other process caching k drops its
// copy when Redis pushes the invalidation; in this process, every cache of
// the client reads v from the moment Set returns, and this cache keeps v in
// process memory for its next Get.
//
// A Set that fails with [ErrUnavailable] may still have been applied: its
// command may have reached Redis before the connection or the time budget
// gave out. Whoever writes after the source of truth changed should retry
// until a Set or an Invalidate succeeds (the one that succeeds last wins).
func (c *Cache[K, V]) Set(ctx context.Context, k K, v V, opts ...Option) error {
	return c.set(ctx, "set", []K{k}, []V{v}, opts)
}

// SetMany writes every value of m in one pipeline, each key with the TTL the
// policy gives it (MSET could not carry them) or the one [WithTTL] sets, and
// the tags [WithTags] attaches, as Set does for one. Keys that failed are
// named in the returned error; the others were written.
func (c *Cache[K, V]) SetMany(ctx context.Context, m map[K]V, opts ...Option) error {
	ks := make([]K, 0, len(m))
	vs := make([]V, 0, len(m))
	for k, v := range m {
		ks = append(ks, k)
		vs = append(vs, v)
	}
	return c.set(ctx, "set many", ks, vs, opts)
}

// set writes vs[i] under ks[i] with writeScript, which leaves the key tracked
// for this connection after the write, so that the value written can stay in
// process memory: see Client.expectEcho.
func (c *Cache[K, V]) set(ctx context.Context, op string, ks []K, vs []V, opts []Option) error {
	co := callOpts(opts)
	if err := co.check(); err != nil {
		return fmt.Errorf("cache: %s: %w", op, err)
	}
	if len(ks) == 0 {
		return nil
	}
	if !c.breaker.allow() {
		return fmt.Errorf("cache: %s: %w", op, errCircuitOpen)
	}
	rc, err := c.redis()
	if err != nil {
		c.breaker.record(err)
		return fmt.Errorf("cache: %s: %w", op, err)
	}
	keep := c.local.keeps() && c.tracks()
	if !c.plain && (!c.tracks() || !c.gen.isTracked()) {
		// The value is written with the generation the process knows:
		// read it unless a Clear would have pushed to this process (and a
		// Clear by another process must reach the copies kept).
		keep = c.trackGen(ctx, rc) && keep
	}
	// A Clear between the generation read here and the snapshots of the
	// keys would let the write keep a copy of an entry it clears.
	clears := c.gen.clears.Load()
	b := setBatch[K, V]{c: c, op: op, keep: keep, clears: clears, gen: c.gen.known.Load(), arena: newExecArena(len(ks), writeExecStrings)}
	for i, k := range ks {
		b.add(rc, k, vs[i], co)
	}
	// A copy's expiry counts from before the write was sent: the key's
	// PTTL, read after the write, ends no earlier than that.
	sent := c.now()
	b.budget = c.budgetForBytes(len(b.cmds), b.bytes)
	rctx, cancel := context.WithTimeout(ctx, b.budget)
	results := rc.DoMulti(rctx, b.cmds...)
	cancel()
	b.resendNoScript(ctx, rc, results)
	var firstErr error
	for j := range b.writes {
		if err := b.done(ctx, j, results, sent); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	c.breaker.record(firstErr)
	if errors.Is(firstErr, ErrUnavailable) {
		c.stats.redisErrors.Add(1)
	}
	c.maybePruneTags(ctx, co.tags)
	return errors.Join(b.errs...)
}

// setBatch is one Set or SetMany: its writes, sent in one pipeline.
type setBatch[K comparable, V any] struct {
	c      *Cache[K, V]
	op     string
	keep   bool   // the values written stay in process memory
	gen    uint64 // the namespace's generation the values are written in
	clears uint64 // the cache's count of Clears before gen was read
	writes []setWrite[K, V]
	cmds   rueidis.Commands
	execs  []rueidis.LuaExec // the writeScript execution of each write
	arena  *execArena
	own    ownMoves // of the counters of the keys kept, when there are several
	errs   []error
	bytes  int           // of the values sent
	budget time.Duration // of the round trip: budgetForBytes
}

// setWrite is one key of a setBatch.
type setWrite[K comparable, V any] struct {
	keyRef[K]
	e     *entry[V]
	first int // index in cmds of its writeScript; its tag commands follow
	snap  uint64
}

// add encodes v and adds its write, and its tags', to the batch.
func (b *setBatch[K, V]) add(rc rueidis.Client, k K, v V, co callOptions) {
	c := b.c
	key := c.Key(k)
	eb := co.apply(c.encodeValue(key, v, b.gen), c.plain)
	if eb.err != nil {
		b.errs = append(b.errs, eb.err)
		return
	}
	w := setWrite[K, V]{keyRef: keyRef[K]{k, key}, e: &entry[V]{v: v, key: key, softAt: eb.softAt, size: uint32(len(eb.data))}, first: len(b.cmds)}
	if b.keep {
		c.client.expectEcho(key)
		w.snap = c.local.snapshot(key)
	}
	b.bytes += len(eb.data)
	ex := c.setExec(b.arena, key, eb.data, eb.ttl)
	b.execs = append(b.execs, ex)
	b.cmds = append(b.cmds, evalCmd(rc, writeSHA, ex))
	b.cmds = append(b.cmds, c.tagCmds(rc, key, eb.ttl, co.tags)...)
	b.writes = append(b.writes, w)
	if b.keep && len(b.writes) == 2 {
		b.own = make(ownMoves)
	}
}

// redisErr is Cache.redisErr for the batch's round trip, whose budget grew
// with the bytes it sent: an error past it says so.
func (b *setBatch[K, V]) redisErr(ctx context.Context, err error) error {
	if b.bytes < budgetBytesPerMs || ctx.Err() != nil || !(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
		return b.c.redisErr(ctx, err)
	}
	return fmt.Errorf("%w: no answer within %v: Options.RedisTimeout (%v), plus 1ms per 64 KiB of the %d bytes sent", ErrUnavailable, b.budget, b.c.redisTimeout, b.bytes)
}

// resendNoScript sends again the writes that met NOSCRIPT (Redis restarted,
// failed over, or flushed its scripts), and puts their results in results.
func (b *setBatch[K, V]) resendNoScript(ctx context.Context, rc rueidis.Client, results []rueidis.RedisResult) {
	var resent []int
	for j, w := range b.writes {
		if noScript(results[w.first]) {
			resent = append(resent, j)
		}
	}
	if len(resent) == 0 {
		return
	}
	// Redis applies them after every other write of the pipeline, but
	// they are stored in the pipeline's order: when two writes of the
	// batch are of one Redis key (two typed keys of a Key function that
	// is not one-to-one), the one stored last may not be the one Redis
	// applied last, and must not discount the other's move of their
	// counter, or it would keep the value Redis does not hold.
	seen := make(map[string]bool, len(b.writes))
	for _, w := range b.writes {
		if seen[w.key] {
			b.own = nil
			break
		}
		seen[w.key] = true
	}
	again := make([]rueidis.RedisResult, len(b.execs))
	rctx, cancel := b.c.budget(ctx, len(resent))
	resend(rctx, rc, writeScript, writeSHA, b.execs, again, resent)
	cancel()
	for _, j := range resent {
		results[b.writes[j].first] = again[j]
	}
}

// done handles the results of write j, sent at sent, and returns its error.
func (b *setBatch[K, V]) done(ctx context.Context, j int, results []rueidis.RedisResult, sent time.Time) error {
	c, w := b.c, &b.writes[j]
	_, pttl, err := writeReply(results[w.first])
	end := len(results)
	if j+1 < len(b.writes) {
		end = b.writes[j+1].first
	}
	for _, r := range results[w.first+1 : end] {
		if err == nil {
			err = r.Error()
		}
	}
	if err != nil {
		err = b.redisErr(ctx, err)
		b.errs = append(b.errs, fmt.Errorf("cache: %s %s: %w", b.op, w.key, err))
		if b.keep {
			c.client.cancelEcho(w.key)
		}
		if unknownOutcome(err) {
			// It may have been applied, or not: pending until a
			// deletion sent again is confirmed (see pending.go).
			c.client.unconfirmed(w.key, c)
		} else {
			c.client.wrote(w.key)
		}
		return err
	}
	c.client.pending.confirmed(w.key, 0)
	if b.keep && c.gen.clears.Load() != b.clears {
		// A Clear came since the generation was read: the entry written
		// may be cleared, and no copy of it is kept.
		c.client.cancelEcho(w.key)
		c.client.wrote(w.key)
		return nil
	}
	if !b.keep {
		c.client.wrote(w.key)
		return nil
	}
	c.client.changed(w.key, c)
	w.e.expireAt = c.expiryFrom(sent, pttl)
	c.local.storeWritten(w.k, w.e, w.snap, b.own)
	c.forget(w.key)
	return nil
}

// unknownOutcome reports whether a write that failed with err may have
// been applied: Redis did not answer it (a Redis error is an answer: the
// write was refused).
func unknownOutcome(err error) bool {
	var re *rueidis.RedisError
	return !errors.As(err, &re) || re.IsNil()
}

// setExec is the execution of writeScript that writes data under key for
// ttl whatever the key holds and, in plain mode, deletes its lease key.
func (c *Cache[K, V]) setExec(a *execArena, key string, data []byte, ttl time.Duration) rueidis.LuaExec {
	keys := a.strings(key)
	if c.plain {
		keys = a.strings(key, leaseKey(c.ns, key))
	}
	return rueidis.LuaExec{Keys: keys, Args: writeArgs(a, nil, data, ttl)}
}

func callOpts(opts []Option) callOptions {
	var co callOptions
	for _, o := range opts {
		o(&co)
	}
	return co
}

func (co callOptions) check() error { return co.err }

// apply puts a per-call TTL in place of the policy's, and with it drops the
// soft expiry: a caller that sets the TTL decides the entry's life. Plain
// bytes have no soft expiry to drop.
func (co callOptions) apply(eb entryBytes, plain bool) entryBytes {
	if co.ttl == 0 || eb.err != nil {
		return eb
	}
	if plain {
		eb.ttl = co.ttl
		return eb
	}
	env, err := envelope.Decode(eb.data)
	if err != nil {
		return entryBytes{err: err}
	}
	return entryBytes{data: envelope.EncodeGen(envelope.Value, false, time.Time{}, env.Gen, env.Payload), ttl: co.ttl}
}
