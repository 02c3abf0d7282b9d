// Package cache is aside's typed cache-aside cache on Redis.
//
// A [Client] is a rueidis client that aside connected itself, so that it
// receives Redis' client-side caching invalidations; a [Cache] is a typed view
// of one namespace of keys on it. Get serves a value from process memory when
// a fresh decoded copy is there (a map lookup: no decoding, no allocation),
// else from Redis, else from the loader — one load per key at a time across
// every process — and writes the loaded value back with the TTL policy's
// expiry. Redis pushes an invalidation to every process holding a copy
// whenever a key changes, and the copy is dropped.
//
//	client, err := cache.Connect(rueidis.ClientOption{InitAddress: []string{"localhost:6379"}})
//	if err != nil { ... }
//	defer client.Close()
//
//	users, err := cache.New(client, cache.Options[int64, User]{
//		Namespace: "user",
//		TTL:       ttlpolicy.Minutes(5),
//		Loader: func(ctx context.Context, id int64) (User, error) {
//			return db.LoadUser(ctx, id) // loader.ErrNotFound when there is none
//		},
//	})
//	if err != nil { ... }
//
//	u, err := users.Get(ctx, 42)              // cache-aside
//	err = users.Set(ctx, 42, u, cache.WithTTL(30*time.Second))
//	err = users.Invalidate(ctx, 42)           // after the source changed
//
// Every operation of the Redis guide has a typed form: Set/Get, Exists and
// Delete over many keys with Redis' counts, Expire, ExpireAt, Persist and TTL
// ([NoExpiry] and [ErrKeyMissing] instead of -1 and -2).
//
// A remembered not-found is not a value. A key holding a not-found marker
// (the loader said the record does not exist) or a lease (a load under way)
// is a key that does not exist for every operation: Exists does not count
// it, TTL returns [ErrKeyMissing], Expire, ExpireAt and Persist return false
// and leave it as it is, and Delete removes it (the next Get loads again)
// but does not count it. Each reads the key and acts in one atomic step, so a
// write racing with it falls wholly before or after it. Invalidations
// (Invalidate, InvalidatePattern, InvalidateTag, [Client.Invalidate]) remove
// whatever the keys hold and count what Redis removed.
//
// Related keys of several caches go in one call: [Client.Invalidate] takes
// [Keys] and [Tags] of any caches of the client,
//
//	n, err := client.Invalidate(ctx, cache.Keys(profiles, id), cache.Keys(summaries, id),
//		cache.Tags(dashboards, "user:42"))
//
// and removes them in one pipeline of single-key commands (cluster-safe),
// with Redis' count and read-your-writes (G3) for every cache named.
//
// Errors are classified for errors.Is: [ErrNotFound] (the source has no such
// record, possibly remembered as a not-found marker), [ErrUnavailable] (Redis
// unreachable or timing out, or refusing the lease of a read under
// [FailFast]: out of memory, an ACL that forbids writes), [ErrCorrupt]
// (bytes in Redis that cannot be read), [ErrInvalidOptions] (an option of
// [New] or [Connect], or of one call such as WithTTL(0), named in the text),
// invalidation.ErrPattern (a pattern Redis would misread), and context errors
// as they are. A Get or GetMany fails for a key only with ErrNotFound, or
// with a [*loader.KeyError] naming the key and wrapping one of:
// ErrUnavailable (FailFast, or no loader), ErrCorrupt, the loader's own
// error (loader.ErrPanic for a panic), [ErrLoadTimeout] (the wait for a load
// reached [Options].HardTimeout), a context error, or ErrInvalidOptions for
// an invalid per-call option. Every error text names the package once,
// and the key once: "cache: get user:42: load: <the loader's error>",
// "cache: get user:42: context canceled", "cache: get user:42: loader: not
// found (a cached not-found marker)", "cache: ttl user:42: no such key",
// "cache: connect: redis unavailable: dial tcp ...", "cache: set: invalid
// options: WithTTL(0s): the TTL must be at least 1ms".
//
// # Slow and failing sources
//
// After FusionCache, a cache can bound what a slow or failing source costs
// its readers, all off by default:
//
//   - Load timeouts ([Options].SoftTimeout and HardTimeout, or
//     [LoadTimeouts] for one read). With a value of the key at hand — past
//     its soft TTL under RefreshSync — a read waits for its refresh at most
//     the soft timeout, then returns that value, reported as [SourceStale].
//     With none, a read waits for the load at most the hard timeout, then
//     fails with [ErrLoadTimeout]. Either way the load goes on in the
//     background under its lease or claim, and writes for every process.
//   - Fail-safe ([Options].FailSafe): under RefreshSync, a refresh whose
//     loader fails serves the value at hand instead of failing the Get, as
//     RefreshBackground does (stale-if-error).
//   - A throttle ([Options].FailSafeThrottle): after a refresh failed, no
//     process calls the loader for the key for that long; kept in Redis, in
//     the value's soft expiry.
//   - A maximum age ([Options].FailSafeMaxAge): a value past its soft expiry
//     by more than that is never served stale; its refresh is synchronous
//     and a failure fails the Get. A refresh that claims a value cuts its
//     TTL in Redis to the end of its maximum age, for every process.
//   - Conditional refresh: inside a loader called by a refresh, [Previous]
//     returns the value being refreshed (with whatever validator, such as
//     an ETag, the application keeps in it), and the loader returns an error
//     wrapping [ErrNotModified] to keep it: its bytes are written again under
//     the refresh's claim with a fresh soft expiry and TTL, not re-encoded.
//
// Stats counts each: StaleServed, FailSafeServed, NotModified, LoadTimeouts.
//
// # What Redis holds
//
// By default each value is stored in aside's envelope: 11 bytes in front of
// the codec's bytes — the magic byte 0xC1, a format version, a kind (value,
// not-found marker, or lease) with flags, and the soft expiry as 8 bytes of
// Unix milliseconds — so that a not-found marker and a load's lease live in
// the key itself, where no value can be mistaken for them. A value of
// codec.String "hello" is 16 bytes in Redis: the header, then "hello". Once
// a namespace has been cleared ([Cache.Clear]), its entries carry 8 more
// bytes, the generation of the Clear they were written under (format
// version 2), and the key "<namespace>#clear" holds the generation.
//
// With [Options].Plain the key holds exactly the codec's bytes ("hello"),
// for other programs to read as they are; a load's lease then lives in a
// sibling key of the same cluster slot, "<namespace>#lease{...}", and there
// are no not-found markers and no soft TTL (see Plain for what it gives up).
//
// Reads are the same in both modes, whoever wrote the key: bytes that begin
// with 0xC1 are aside's entries; any other bytes are a value another program
// wrote, decoded by the cache's codec alone (no soft TTL, no marker) and kept
// in process memory until the key's own expiry or its invalidation, like any
// value. 0xC1 begins no valid UTF-8, so no text and no JSON document, and
// MessagePack never uses it; only raw bytes (codec.Bytes, or codec.String
// holding invalid UTF-8) can begin with it, and such a value read from Redis
// is taken for an entry: one that is not a valid entry fails Get with
// [ErrCorrupt], one of a newer format version is loaded around. Bytes that
// the codec cannot decode either fail Get with [ErrCorrupt] and stay in Redis
// untouched — no load writes over another program's value — unless
// [Options].ReplaceUnreadable lets the read delete them and load.
//
// # Guarantees
//
// Each holds for every Cache of a Client, standalone or on a cluster, and is
// tested by forcing the interleaving that would break it:
//
//   - G1, no stale set: a load that read the source before an invalidation of
//     its key never writes its value to Redis; a load that read it before a
//     [Cache.Clear] writes an entry that every read takes for missing. (In plain mode, an invalidation
//     by another program must delete the key's lease key too; a value another
//     program writes during a load always stands.)
//   - G2: a read that reaches Redis after an invalidation, a write, a Clear
//     or a flush has returned never returns a value whose load started before it, in
//     this process or another. (A read that joins a load of its own process
//     does not reach Redis; such a load is forgotten by the invalidation's
//     push, so that reads after the push start their own. A load that no
//     push would reach — Redis unavailable, or the key's invalidation
//     pending — is not joined by reads that begin after it began.)
//   - G3, read-your-writes: a process's own write (Set, Delete, Invalidate,
//     Client.Invalidate, InvalidateTag, InvalidatePattern, InvalidatePrefix,
//     Expire and the others) through any Cache of a Client is visible to its
//     next read of that key through any Cache of that Client. A pattern or
//     prefix invalidation changes, in the process, every key the pattern
//     could match, whether or not its SCAN met it (a key being loaded may be
//     absent from Redis). When an invalidation's outcome is unknown (an
//     error, a lost reply) the key is pending: reads of it load without
//     Redis until a deletion sent again is confirmed (see
//     [Client.Invalidate]).
//   - G4: another process's write drops every copy of the key in this
//     process within the push delay, whatever the Key function: when two
//     typed keys map to one Redis key, both copies are dropped. When Redis
//     falls silent without closing the connection, copies stop being served
//     within [Options].MaxSilence (1s by default; see heartbeat.go). A copy
//     does not outlive its key's expiry in Redis: its expiry counts from
//     before the command that read the key's PTTL was sent, however late
//     the reply came (the hit path reads a clock of 1ms resolution, so a
//     copy may be served up to about a millisecond past it; see clock.go).
//   - G5: one load per key at a time across every process (a lease in
//     Redis, in the key or, in plain mode, in its lease key), with a dead
//     holder taken over after LeaseTTL.
//   - G6: Redis in trouble costs a bounded time: every Redis call of a read
//     or write has the budget [Options].RedisTimeout (250ms by default)
//     whatever the caller's context allows, past which it is
//     [ErrUnavailable] and FailOpen reads answer from the loader; with the
//     breaker open, reads do not ask Redis at all. Redis refusing a read's
//     lease (out of memory, an ACL that forbids writes) is handled the same
//     way: FailOpen loads without writing (counted in Stats.Refusals).
//     [Connect] succeeds while Redis is unreachable and connects in the
//     background.
//
// Two options trade G2 and G4 for a stated bound, and are tested against it:
// [Options].OutageStaleness serves copies through an outage of Redis for at
// most that long after Redis was last heard from; [Options].StaleWhileReloading
// serves, after another process changed a key, the copy of its previous
// value for at most that long after the change's push reached this process,
// while one load reloads the key (a read may then return a value older than
// a change that returned up to the bound plus the push delay before it
// began). Both keep G1, G3 and G5.
//
// When the server refuses client tracking ([Client.Tracking] is false) no
// copies are kept and no push comes: every Get visits Redis, and G2 and G3
// hold the same way.
//
// # How it works
//
// The read path. A Get that misses process memory makes one Redis visit:
// three commands pipelined on one connection, PTTL key, SET key <lease> NX
// GET PX <LeaseTTL>, PTTL key (without tracking, the SET alone: a lease it
// finds is read again with its PTTL). The first PTTL, a read, makes Redis
// track the
// key for the connection (Connect turns tracking on in OPTOUT mode) before the
// SET returns what the key holds, so a change in between is pushed before its
// reply and the bytes are not kept; the SET takes the key's lease when it
// holds nothing, which Redis pushes back to the connection, and the last PTTL
// is answered after that push and gives the expiry. On a cluster, where a
// slot may move between the commands of a pipeline, the visit is a script
// doing the SET and then the PTTL in one step on one node. A value found is
// decoded and kept in process memory until its expiry or its invalidation.
// GetMany sends one such visit per key in one pipeline; Get is GetMany of one
// key.
//
// Flights. Concurrent reads of a key in the process share one resolution (the
// visit, and the load when the key is missing). Every change of the key
// forgets it — a push, a write or invalidation of the process, a pattern
// that could match it; a flush or a dropped connection forgets them all:
// a read after any of them starts its own (change.go lists every piece of
// per-key state and the one event that clears it). Taking a
// lease therefore never joins an older load; finding the lease of one of the
// process's own loads still in Redis proves no invalidation came since it
// began, and the read waits for that load.
//
// Loads. The holder of a lease loads detached from its caller's
// cancellation: on a goroutine of its own when the caller's context can end
// (the callers may leave; the load writes for everyone), on the caller's
// goroutine when it never can (the caller could not leave earlier anyway).
// It writes, on a goroutine of its own, with a script that
// replaces the key only if it still holds the holder's lease: an invalidation
// deletes the key, lease and all, which is what keeps G1. The script reads the
// key before it writes (which makes Redis push the write's invalidation back
// on the writing connection) and after (which tracks the key again). The
// load's callers do not wait for that write: they are answered as soon as
// the loader returns, so a miss costs the caller one round trip and the
// loader. The loaded value is kept in process memory at once, as a read
// keeps what it read (only if no invalidation of the key came since before
// the loader read the source); the write replaces that copy with its own, or
// drops it when it does not write. Until the write ends, a read of the
// process that meets the load's lease in Redis gets the load's result (a
// failed load's lease is awaited and the key read again), and the
// operations that read a key's state in Redis (TTL, Exists, Expire,
// ExpireAt, Persist, Delete, a refresh's claim) first wait for the write, at
// most RedisTimeout. The write goes on, bounded by LeaseTTL, so that a slow
// Redis never leaves a lease behind for the other processes to wait out.
//
// Copies after a write. A write of this process (Set, or a load's write)
// reaches the process again as Redis' invalidation of that very write, the
// echo, which must not drop the copy of the value just written. The writer
// announces it before sending (Client.expectEcho); the next push of the key
// is taken for it. Every announced echo is matched by a push Redis sends after
// the announcement, so a push of a later change that is taken for the echo is
// followed by the echo itself, which then drops the copy: copies still go
// within the push delay. A change this process makes itself is never left
// to a push: every write and invalidation handles the change in the process
// when its reply comes (change.go), so an echo taken for it cannot keep a
// copy the change must drop.
//
// The order that keeps a stale copy out: a read takes the key's invalidation
// counter (one of 4096, shared by the keys that hash to it) before its visit
// and stores its copy only if no invalidation changed the counter since (see
// local.go).
//
// Waits. A read that finds another process's lease waits for the key's
// push (the visit tracked the key; the holder's write, the lease's expiry or
// anyone's deletion pushes), bounded by the lease's remaining TTL and
// [Options].LeaseWait, then visits again.
//
// # Where each guarantee is kept
//
//   - G1: the write scripts replace a key only if it holds the load's own
//     lease (lease.go writeScript, plain.go plainWriteScript), and so does
//     the compare-and-set transaction that takes writeScript's place on
//     Valkey 8.1+ and Redis 8.4+ (cas.go); every
//     invalidation deletes the lease (related.go, keys.go, pattern.go), and
//     in plain mode a Set too (write.go setExec).
//   - G2: the visit tracks the key before it reads it (visit.go); a change
//     forgets the key's flight (change.go); finding this process's own lease
//     proves no change came (resolve.go leased); blind loads are detached
//     when they begin (fallback.go).
//   - G3: every write and invalidation of the process calls the change event
//     for every cache of the key's namespace when its reply comes (change.go
//     Client.changed, changedWhere); an unconfirmed one leaves the key
//     pending (pending.go).
//   - Clear: every visit reads the namespace's generation in its round trip,
//     and classify takes an entry of an older one for missing; a load writes
//     with the generation its visit read, a refresh with the claimed
//     entry's (clear.go, classify.go, resolve.go clearedEntry).
//   - G4: pushes reach changed (client.go dispatch); a copy is stored only if
//     its key's counter did not move since before its command was sent, and
//     expires counting from then (local.go, cache.go expiryFrom); silence
//     stops copies being served (heartbeat.go).
//   - G5: the lease (visit.go, plain.go), waits (waits.go), one load per key
//     in the process (fetch.go fetchAll).
//   - G6: the budget of every Redis call (errors.go), the breaker
//     (breaker.go), FailOpen and FailFast (fallback.go redisDown, resolve.go
//     missing).
package cache
