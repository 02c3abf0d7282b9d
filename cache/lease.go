package cache

import (
	"crypto/rand"
	"time"

	"github.com/redis/rueidis"

	"github.com/aside-go/aside/internal/envelope"
)

// The Redis side of the read and write paths. A read's visit is three plain
// commands; every write of a value that may leave a copy in process memory
// is a script, because a script does in one atomic step what separate
// commands cannot: read (which makes Redis track the key for this connection
// — aside connects in OPTOUT mode, so every read is tracked, inside scripts
// too), compare the lease, write, and read again after the write. See the
// package documentation, "How it works".

// writeScript writes ARGV[2] to KEYS[1] for ARGV[3] milliseconds (or deletes
// it when ARGV[3] is 0). With a non-empty ARGV[1] (a lease token never is
// empty) it writes only if the key holds exactly ARGV[1]; with an empty one,
// whatever the key holds. Either way it reads the key before writing it (GET,
// or PTTL), so that Redis tracks the key for this very connection when the
// write happens and pushes the write's invalidation back on it after the
// reply — whatever became of the connection an earlier visit tracked the key
// on: that push is the echo the client expects (see Client.expectEcho). It
// reads PTTL after the write, so that the key stays tracked for the next
// change. It returns the key's PTTL after the write (-2 after a deletion),
// or nil if it did not write: one integer, which Redis and the client read
// without building an array. A KEYS[2], in plain mode the key's lease key
// (see plain.go), is deleted before the write: a Set ends the lease of any
// load of the key under way, which then writes nothing.
var (
	writeScript = rueidis.NewLuaScript(writeSrc)
	writeSHA    = scriptSHA(writeSrc)
)

const writeSrc = `
if ARGV[1] == '' then
	redis.call('PTTL', KEYS[1])
elseif redis.call('GET', KEYS[1]) ~= ARGV[1] then
	return nil
end
if KEYS[2] then
	redis.call('DEL', KEYS[2])
end
if ARGV[3] == '0' then
	redis.call('DEL', KEYS[1])
	return -2
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return redis.call('PTTL', KEYS[1])`

// Leases: one load per key across every process.
//
// A read that finds nothing in Redis takes the key's lease in the same visit:
// the lease is an envelope of kind Lease holding a token drawn for this load
// alone (a token per client would let two loads of one process each believe
// they hold the other's lease). The holder loads, then writes with
// writeScript, which replaces the key only if it still holds the holder's own
// lease. Every invalidation deletes the key — lease included — so a load that
// read the source before an update (and therefore before the update's
// invalidation) can never write its value after it: the stale-set race of
// cache-aside is closed. A holder that dies leaves a lease that expires after
// LeaseTTL, and the next reader takes over.
//
// A reader that finds another's lease waits for the key's invalidation, which
// Redis pushes when the holder writes (or the lease expires, or anyone
// deletes the key): the visit that saw the lease tracked the key. It then
// visits again. Finding the lease of one of this process's own loads, it
// waits for that load instead: Redis still holding the lease proves that no
// invalidation came between that load's lease and this read.

// newLease returns a lease envelope with a fresh 128-bit random token.
func newLease() []byte {
	var token [16]byte
	_, _ = rand.Read(token[:]) // never fails (crypto/rand, Go 1.24+)
	return envelope.Encode(envelope.Lease, false, time.Time{}, token[:])
}

// leaseSize is the size of a lease envelope.
const leaseSize = envelope.HeaderSize + envelope.LeaseTokenSize

// newLeases returns n leases as newLease does, drawn with one read of
// crypto/rand into one array (a batch's leases live and go together).
func newLeases(n int) func() []byte {
	if n == 1 {
		return newLease
	}
	buf := make([]byte, n*leaseSize)
	tokens := make([]byte, n*envelope.LeaseTokenSize)
	_, _ = rand.Read(tokens) // never fails (crypto/rand, Go 1.24+)
	next := 0
	return func() []byte {
		lease := envelope.Append(buf[next*leaseSize:next*leaseSize:(next+1)*leaseSize], envelope.Lease, false, time.Time{},
			tokens[next*envelope.LeaseTokenSize:(next+1)*envelope.LeaseTokenSize])
		next++
		return lease
	}
}

// writeExec is writeScript's execution: data for ttl in place of old (any
// bytes when old is nil), or a deletion when data is nil. Its slices come
// from a (see execArena).
func writeExec(a *execArena, key string, old, data []byte, ttl time.Duration) rueidis.LuaExec {
	return rueidis.LuaExec{Keys: a.strings(key), Args: writeArgs(a, old, data, ttl)}
}

// writeArgs are the arguments of writeScript and plainWriteScript: old (a
// lease, or empty), the data, and its TTL in milliseconds, or "0" to delete.
func writeArgs(a *execArena, old, data []byte, ttl time.Duration) []string {
	ttlArg := "0"
	if data != nil {
		ttlArg = a.int(ms(ttl))
	}
	return a.strings(rueidis.BinaryString(old), rueidis.BinaryString(data), ttlArg)
}

// writeReply is writeScript's (or plainWriteScript's) answer: whether it
// wrote, and the key's PTTL after the write.
func writeReply(res rueidis.RedisResult) (wrote bool, pttl int64, err error) {
	pttl, err = res.AsInt64()
	switch {
	case rueidis.IsRedisNil(err):
		return false, 0, nil
	case err != nil:
		return false, 0, err
	}
	return true, pttl, nil
}
