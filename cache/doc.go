// Package cache is aside's typed cache-aside cache on Redis.
//
// A [Client] is a rueidis client that aside connected itself, so that it
// receives Redis' client-side caching invalidations; a [Cache] is a typed view
// of one namespace of keys on it. Get serves a value from process memory when
// a fresh decoded copy is there (a map lookup: no decoding, no allocation),
// else from Redis, else from the loader — one load per key at a time in the
// process — and writes the loaded value back with the TTL policy's expiry.
// Redis pushes an invalidation to every process holding a copy whenever a key
// changes, so no copy outlives a write.
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
// Errors are classified for errors.Is: [ErrNotFound] (the source has no such
// record, possibly remembered as a not-found marker), [ErrUnavailable] (Redis
// unreachable or timing out), and context errors as they are.
package cache
