package cache

import (
	"time"

	"github.com/aside-go/aside/internal/keyname"
	"github.com/redis/rueidis"
)

// Plain mode ([Options].Plain): the value's key holds exactly the codec's
// bytes, so the lease of a load cannot live there — another program would
// read it as a value. It lives in a sibling key, the lease key, in the value
// key's cluster slot so that one script can compare the lease and write the
// value atomically on one node:
//
//	value key <ns>:<part>            lease key
//	user:42                          user#lease{user:42}
//	user:{42}:profile                user#lease{42}{42}:profile
//	user:a}b (braces, no hash tag)   user#lease{<t>}a}b, <t> a short tag of the slot of user:a}b
//
// How the lease key is named, and why no value key can be one: package
// keyname.
//
// The visit (plainVisitSrc) reads the value key, and only when it is missing
// takes the lease key (SET NX GET PX LeaseTTL); either way — its own lease
// or another's — it then reads the lease key's PTTL, which makes Redis track
// the lease key for this connection: its release, expiry or deletion is
// pushed here (Cache.leaseChanged), which wakes a wait for another's lease,
// and ends the claim of this process's own load (its flight is forgotten).
// The load's write (plainWriteSrc) deletes the lease if it is still the
// holder's, and only then writes the value, and only if the value key is
// still missing: a value written meanwhile, by another program, stands.
// Delete, Invalidate, InvalidateTag and the pattern invalidations delete the
// lease key with the value key, and Set deletes it as it writes, so that a
// load under way does not write a value it read before them.

// leaseKey returns the lease key of value key key, whose namespace is ns
// (with its ':'): see package keyname.
func leaseKey(ns, key string) string { return keyname.Lease(ns[:len(ns)-1], key) }

// valueKeyOf returns the value key whose lease key is key, when key is a
// lease key.
func valueKeyOf(key string) (valueKey, ns string, ok bool) { return keyname.ValueOf(key) }

// plainVisitScript is the visit in plain mode. Taking the lease, it reads
// the lease key's PTTL after the SET (a write, which tracks nothing), so
// that the connection tracks the lease key: an invalidation by anyone
// deletes it, which Redis then pushes here (Cache.leaseChanged), and the
// load's flight is forgotten even when the value key, missing, pushed
// nothing. KEYS[1] the value key,
// KEYS[2] its lease key, ARGV[1] the lease to take (” for a plain read),
// ARGV[2] LeaseTTL in milliseconds. It returns {the value's bytes or nil,
// the value key's PTTL} — the lease is the caller's when it offered one and
// the value is missing — or, when another holds the lease, {nil, the lease
// key's PTTL, the lease}.
var (
	plainVisitScript = rueidis.NewLuaScript(plainVisitSrc)
	plainVisitSHA    = scriptSHA(plainVisitSrc)
)

const plainVisitSrc = `
local v = redis.call('GET', KEYS[1])
if v or ARGV[1] == '' then
	return {v, redis.call('PTTL', KEYS[1])}
end
local held = redis.call('SET', KEYS[2], ARGV[1], 'NX', 'GET', 'PX', ARGV[2])
if not held then
	redis.call('PTTL', KEYS[2])
	return {false, redis.call('PTTL', KEYS[1])}
end
return {false, redis.call('PTTL', KEYS[2]), held}`

// plainWriteScript is a load's write in plain mode: KEYS[1] the value key,
// KEYS[2] its lease key, ARGV[1] the lease, ARGV[2] the value's bytes,
// ARGV[3] its TTL in milliseconds, or '0' to release the lease only. If the
// lease key still holds the lease it deletes it, then writes the value if
// the value key is still missing. GET reads the lease, which makes Redis
// track the lease key for this very connection, so that deleting it is
// pushed back here — whatever became of the connection the visit tracked
// it on (a dropped one): that push is the lease key's echo a load that
// keeps its copy expects (Cache.expectEchoes). EXISTS reads the value key,
// so that its write is pushed back as the value key's echo. It returns, as writeScript does, the value key's PTTL after the
// write (-2 after a release), or nil if it did not write.
var (
	plainWriteScript = rueidis.NewLuaScript(plainWriteSrc)
	plainWriteSHA    = scriptSHA(plainWriteSrc)
)

const plainWriteSrc = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
	return nil
end
redis.call('DEL', KEYS[2])
if ARGV[3] == '0' then
	return -2
end
if redis.call('EXISTS', KEYS[1]) == 1 then
	return nil
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return redis.call('PTTL', KEYS[1])`

// plainVisitExec is plainVisitScript's execution for key: with a lease to
// take, or a plain read.
func (c *Cache[K, V]) plainVisitExec(key string, lease []byte) rueidis.LuaExec {
	keys := []string{key, leaseKey(c.ns, key)}
	if lease == nil {
		return rueidis.LuaExec{Keys: keys, Args: []string{"", ""}}
	}
	return rueidis.LuaExec{Keys: keys, Args: []string{rueidis.BinaryString(lease), c.leasePX}}
}

// plainWriteExec is plainWriteScript's execution: data for ttl in place of
// lease, or the lease's release when data is nil; its slices come from a
// (see execArena).
func (c *Cache[K, V]) plainWriteExec(a *execArena, key string, lease, data []byte, ttl time.Duration) rueidis.LuaExec {
	return rueidis.LuaExec{Keys: a.strings(key, leaseKey(c.ns, key)), Args: writeArgs(a, lease, data, ttl)}
}

// plainVisitReply reads the reply of plainVisitScript.
func plainVisitReply(res rueidis.RedisResult) visited {
	arr, err := res.ToArray()
	if err != nil {
		return failedVisit(err)
	}
	switch len(arr) {
	case 2:
		pttl, _ := arr[1].AsInt64()
		raw, err := arr[0].AsBytes()
		return fromBytes(raw, err, pttl)
	case 3:
		pttl, _ := arr[1].AsInt64()
		lease, err := arr[2].AsBytes()
		if err != nil {
			return failedVisit(err)
		}
		return visited{lease: lease, pttl: pttl}
	}
	return failedVisit(errBadReply)
}

// leaseDels are the deletions of the lease keys of keys in plain mode (none
// otherwise): an invalidation deletes a load's lease with the value key, so
// that the load does not write what it read before.
func (c *Cache[K, V]) leaseDels(rc rueidis.Client, keys []string) rueidis.Commands {
	if !c.plain {
		return nil
	}
	cmds := make(rueidis.Commands, len(keys))
	for i, key := range keys {
		cmds[i] = rc.B().Del().Key(leaseKey(c.ns, key)).Build()
	}
	return cmds
}

// underLease is the execution and script of a write in place of lease (or
// its release, data nil): in the value key itself, or in plain mode in its
// lease key. Its slices come from a (see execArena).
func (c *Cache[K, V]) underLease(a *execArena, key string, lease, data []byte, ttl time.Duration) rueidis.LuaExec {
	if c.plain {
		return c.plainWriteExec(a, key, lease, data, ttl)
	}
	return writeExec(a, key, lease, data, ttl)
}
