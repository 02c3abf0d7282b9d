// Package invalidation removes Redis keys by pattern and escapes the parts of
// a pattern that come from users.
//
// [Pattern] runs SCAN with MATCH and COUNT on every primary (on a Redis
// Cluster each node returns only its own keys, so scanning one node would
// miss the rest), and removes what it finds with UNLINK in pipelined batches
// of single-key commands, so no batch can be a cross-slot command. It never
// uses KEYS, which blocks the server for the whole keyspace.
//
// [Escape] makes a user-supplied string match only itself inside a pattern:
//
//	pattern := "user:" + invalidation.Escape(id) + ":*"
//	n, err := invalidation.Pattern(ctx, client, pattern, invalidation.Options{})
//
// With id = "1*" that pattern removes the keys of user "1*" and nothing of
// user "10"; "user:1001:*" never touches "user:10010:...".
//
// What SCAN guarantees, and so what Pattern does: every key that matches and
// exists for the whole scan is found and removed; a key created or removed
// while the scan runs may or may not be found. So once Pattern returns, every
// matching key that existed when it started is gone (unless it was written
// again meanwhile), and keys written during the scan may survive it.
package invalidation
