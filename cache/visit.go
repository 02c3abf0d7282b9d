package cache

import (
	"bytes"
	"context"

	"github.com/aside-go/aside/internal/envelope"
	"github.com/redis/rueidis"
)

// A read's one Redis visit is, on a standalone server, three plain commands
// pipelined on one connection: PTTL key; SET key <lease> NX GET PX LeaseTTL
// (GET key when the read takes no lease); PTTL key again.
//
//   - The first PTTL reads the key, so Redis tracks it for this connection
//     before the SET or GET returns its bytes: a change by anyone in between
//     pushes an invalidation that arrives before those bytes, and they are
//     not kept (local.store refuses what an invalidation touched since the
//     visit began).
//   - SET with NX GET returns what the key holds and writes nothing, or takes
//     the lease when the key holds nothing. Taking it changes a key this
//     connection tracks: Redis pushes that change back here, after the SET's
//     reply and before the next command's.
//   - The last PTTL therefore answers after that push has been handed to
//     aside (so it can never be taken for the echo of a write that follows),
//     gives the key's expiry after the SET, and tracks the key again.
//
// A connection that does not track needs neither PTTL: its visit is the SET
// or GET alone (visitUntracked).
//
// Three plain commands cost Redis less than one EVALSHA of a script doing the
// same (BenchmarkVisitAlternatives). On a cluster the visit stays the script
// (visitScript): a slot that moves between the commands of a pipeline would
// send some of them to one node and the rest to another, and a change made
// between them on the new node would not be pushed; a script runs whole on
// one node.
const visitCommands = 3

// visitScript is the visit on a cluster. With a lease in ARGV[1] it is
// SET KEYS[1] ARGV[1] NX GET PX ARGV[2]: it returns what the key holds, or
// takes the key's lease when it holds nothing; with an empty ARGV[1] it is a
// GET. Either way it then reads PTTL, which tracks the key for this
// connection after the SET: a later change by anyone pushes an invalidation
// here. It returns {the key's bytes or nil, PTTL}.
var (
	visitScript = rueidis.NewLuaScript(visitSrc)
	visitSHA    = scriptSHA(visitSrc)
)

const visitSrc = `
local v
if ARGV[1] == '' then
	v = redis.call('GET', KEYS[1])
else
	v = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'GET', 'PX', ARGV[2])
end
return {v, redis.call('PTTL', KEYS[1])}`

// visited is what a visit found of one key: its bytes (nil when it held
// nothing: the lease, if one was offered, is now the caller's) and its PTTL.
type visited struct {
	raw   []byte
	found bool
	pttl  int64 // of the lease key when lease is set
	// lease is, in plain mode, the lease another load holds in the lease
	// key of a missing value.
	lease []byte
	// changed: what the visit found changed before it was read whole;
	// visit again.
	changed bool
	err     error
	// refused: err is Redis refusing the command, not Redis unavailable.
	refused bool
}

// failedVisit is the visit that met err.
func failedVisit(err error) visited { return visited{err: err, refused: refusal(err)} }

// visit visits the keys of fs in one round trip, each with a lease to take
// (f.lease, drawn here unless the cache has no loader or Redis refused the
// key's lease) or as a plain read, after taking the snapshot of its
// invalidation counter (f.snap), and returns what it found of each and the
// namespace's generation (see clear.go), read first in the same round trip
// (in envelope mode).
func (c *Cache[K, V]) visit(ctx context.Context, rc rueidis.Client, fs []*fetch[K, V]) ([]visited, uint64) {
	clears := c.gen.clears.Load()
	var lease func() []byte
	if c.load != nil {
		lease = newLeases(len(fs))
	}
	for _, f := range fs {
		f.clears = clears
		f.snap = c.local.snapshot(f.key)
		f.lease = nil
		if lease != nil && !f.readOnly {
			f.lease = lease()
		}
	}
	out := make([]visited, len(fs))
	if c.plain {
		execs := make([]rueidis.LuaExec, len(fs))
		for j, f := range fs {
			execs[j] = c.plainVisitExec(f.key, f.lease)
		}
		for j, res := range evalMany(ctx, rc, plainVisitScript, plainVisitSHA, execs) {
			out[j] = plainVisitReply(res)
		}
		return out, 0
	}
	genCmd, epoch := c.gen.read(rc)
	if rc.Mode() == rueidis.ClientModeCluster {
		execs := make([]rueidis.LuaExec, len(fs))
		for j, f := range fs {
			execs[j] = c.visitExec(f.key, f.lease)
		}
		genRes, results := evalManyAfter(ctx, rc, genCmd, visitScript, visitSHA, execs)
		for j, res := range results {
			out[j] = scriptVisitReply(res)
		}
		return out, c.learnGen(genRes, epoch)
	}
	if !c.tracks() {
		return c.visitUntracked(ctx, rc, fs, out, genCmd, epoch)
	}
	cmds := make(rueidis.Commands, 0, 1+visitCommands*len(fs))
	cmds = append(cmds, genCmd)
	for _, f := range fs {
		cmds = c.appendVisit(rc, cmds, f.key, f.lease)
	}
	results := rc.DoMulti(ctx, cmds...)
	gen := c.learnGen(results[0], epoch)
	results = results[1:]
	for j := range out {
		out[j] = visitReply(results[visitCommands*j : visitCommands*(j+1)])
	}
	return out, gen
}

// visitUntracked is the visit on a standalone connection that does not
// track: one command per key, SET NX GET PX (GET without a lease), since
// both PTTLs are there for tracking — but for the PTTL of a lease found,
// which bounds the wait for it and tells a lease aside took (they all
// expire) from bytes shaped like one: those are read in a second round trip,
// which only a read that meets another's load makes. A client's connection,
// and so whether it tracks, is set once: the reads that store what a visit
// found ask tracks() again and get the same answer.
func (c *Cache[K, V]) visitUntracked(ctx context.Context, rc rueidis.Client, fs []*fetch[K, V], out []visited, genCmd rueidis.Completed, epoch uint64) ([]visited, uint64) {
	cmds := make(rueidis.Commands, 1+len(fs))
	cmds[0] = genCmd
	for j, f := range fs {
		cmds[1+j] = c.readCmd(rc, f.key, f.lease)
	}
	var leased []int // positions in fs
	results := rc.DoMulti(ctx, cmds...)
	gen := c.learnGen(results[0], epoch)
	for j, res := range results[1:] {
		if err := res.NonRedisError(); err != nil {
			out[j] = failedVisit(err)
			continue
		}
		raw, err := res.AsBytes()
		out[j] = fromBytes(raw, err, pttlUnknown)
		if out[j].found && envelope.IsLease(raw) {
			leased = append(leased, j)
		}
	}
	if len(leased) == 0 {
		return out, gen
	}
	cmds = make(rueidis.Commands, 0, 2*len(leased))
	for _, j := range leased {
		key := fs[j].key
		cmds = append(cmds, rc.B().Get().Key(key).Build(), rc.B().Pttl().Key(key).Build())
	}
	results = rc.DoMulti(ctx, cmds...)
	for n, j := range leased {
		again := visitReply(results[2*n : 2*n+2])
		switch {
		case again.err != nil:
			out[j] = again
		case !again.found || !bytes.Equal(again.raw, out[j].raw):
			// The lease went, or another took its place, between the two
			// round trips: its PTTL says nothing of the lease seen.
			out[j] = visited{changed: true}
		default:
			out[j].pttl = again.pttl
		}
	}
	return out, gen
}

// pttlUnknown stands for the PTTL of a key a visit did not read it of.
const pttlUnknown = -3

// visitExec is visitScript's execution for key: with a lease to take, or a
// plain read.
func (c *Cache[K, V]) visitExec(key string, lease []byte) rueidis.LuaExec {
	if lease == nil {
		return rueidis.LuaExec{Keys: []string{key}, Args: []string{"", ""}}
	}
	return rueidis.LuaExec{Keys: []string{key}, Args: []string{rueidis.BinaryString(lease), c.leasePX}}
}

// appendVisit appends the commands of the tracked visit of key to cmds:
// PTTL, the read (readCmd), PTTL.
func (c *Cache[K, V]) appendVisit(rc rueidis.Client, cmds rueidis.Commands, key string, lease []byte) rueidis.Commands {
	return append(cmds, rc.B().Pttl().Key(key).Build(), c.readCmd(rc, key, lease), rc.B().Pttl().Key(key).Build())
}

// readCmd reads key, taking lease when it holds nothing (SET NX GET PX), or
// only reads it (GET) without a lease.
func (c *Cache[K, V]) readCmd(rc rueidis.Client, key string, lease []byte) rueidis.Completed {
	if lease == nil {
		return rc.B().Get().Key(key).Build()
	}
	return rc.B().Set().Key(key).Value(rueidis.BinaryString(lease)).Nx().Get().PxMilliseconds(ms(c.leaseTTL)).Build()
}

// visitReply reads the replies of a visit's commands: the key's bytes are
// the next to last, its PTTL the last.
func visitReply(res []rueidis.RedisResult) visited {
	for _, r := range res {
		if err := r.NonRedisError(); err != nil {
			return failedVisit(err)
		}
	}
	pttl, err := res[len(res)-1].AsInt64()
	if err != nil {
		return failedVisit(err)
	}
	raw, err := res[len(res)-2].AsBytes()
	return fromBytes(raw, err, pttl)
}

// scriptVisitReply reads the reply of visitScript.
func scriptVisitReply(res rueidis.RedisResult) visited {
	arr, err := res.ToArray()
	if err != nil {
		return failedVisit(err)
	}
	if len(arr) != 2 {
		return failedVisit(errBadReply)
	}
	pttl, _ := arr[1].AsInt64()
	raw, err := arr[0].AsBytes()
	return fromBytes(raw, err, pttl)
}

// fromBytes is what a visit found from the reply of the key's bytes.
func fromBytes(raw []byte, err error, pttl int64) visited {
	switch {
	case rueidis.IsRedisNil(err):
		return visited{pttl: pttl}
	case err != nil:
		return failedVisit(err)
	}
	return visited{raw: raw, found: true, pttl: pttl}
}
