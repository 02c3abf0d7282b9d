package cache

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"strconv"
	"sync"
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
}

// visit visits keys[i], i in todo, in one round trip, each with a lease to
// take (st[i].lease) or as a plain read, after taking the snapshot of its
// invalidation counter (st[i].snap), and returns what it found of each.
func (c *Cache[K, V]) visit(ctx context.Context, rc rueidis.Client, keys []string, todo []int, st []keyState) []visited {
	for _, i := range todo {
		if c.local != nil {
			st[i].snap = c.local.snapshot(keys[i])
		}
		st[i].lease = nil
		if c.load != nil && !st[i].readOnly {
			st[i].lease = newLease()
		}
	}
	out := make([]visited, len(todo))
	// scripted runs the visits as one script execution per key.
	scripted := func(script *rueidis.Lua, sha string, exec func(string, []byte) rueidis.LuaExec, reply func(rueidis.RedisResult) visited) []visited {
		execs := make([]rueidis.LuaExec, len(todo))
		for j, i := range todo {
			execs[j] = exec(keys[i], st[i].lease)
		}
		for j, res := range evalMany(ctx, rc, script, sha, execs) {
			out[j] = reply(res)
		}
		return out
	}
	if c.plain {
		return scripted(plainVisitScript, plainVisitSHA, c.plainVisitExec, plainVisitReply)
	}
	if rc.Mode() == rueidis.ClientModeCluster {
		return scripted(visitScript, visitSHA, c.visitExec, scriptVisitReply)
	}
	if !c.tracks() {
		return c.visitUntracked(ctx, rc, keys, todo, st, out)
	}
	cmds := make(rueidis.Commands, 0, visitCommands*len(todo))
	for _, i := range todo {
		cmds = c.appendVisit(rc, cmds, keys[i], st[i].lease)
	}
	results := rc.DoMulti(ctx, cmds...)
	for j := range out {
		out[j] = visitReply(results[visitCommands*j : visitCommands*(j+1)])
	}
	return out
}

// visitUntracked is the visit on a standalone connection that does not
// track: one command per key, SET NX GET PX (GET without a lease), since
// both PTTLs are there for tracking — but for the PTTL of a lease found,
// which bounds the wait for it and tells a lease aside took (they all
// expire) from bytes shaped like one: those are read in a second round trip,
// which only a read that meets another's load makes. A client's connection,
// and so whether it tracks, is set once: the reads that store what a visit
// found ask tracks() again and get the same answer.
func (c *Cache[K, V]) visitUntracked(ctx context.Context, rc rueidis.Client, keys []string, todo []int, st []keyState, out []visited) []visited {
	cmds := make(rueidis.Commands, len(todo))
	for j, i := range todo {
		cmds[j] = c.readCmd(rc, keys[i], st[i].lease)
	}
	var leased []int
	for j, res := range rc.DoMulti(ctx, cmds...) {
		if err := res.NonRedisError(); err != nil {
			out[j] = visited{err: err}
			continue
		}
		raw, err := res.AsBytes()
		out[j] = fromBytes(raw, err, pttlUnknown)
		if out[j].found && envelope.IsLease(raw) {
			leased = append(leased, j)
		}
	}
	if len(leased) == 0 {
		return out
	}
	cmds = make(rueidis.Commands, 0, 2*len(leased))
	for _, j := range leased {
		key := keys[todo[j]]
		cmds = append(cmds, rc.B().Get().Key(key).Build(), rc.B().Pttl().Key(key).Build())
	}
	results := rc.DoMulti(ctx, cmds...)
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
	return out
}

// pttlUnknown stands for the PTTL of a key a visit did not read it of.
const pttlUnknown = -3

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

// evalMany runs script once per exec in one pipeline of EVALSHA commands.
// rueidis' Lua.ExecMulti would first send SCRIPT LOAD to every node, a round
// trip per call; here the SHA-1 is computed locally, and only the executions
// that meet NOSCRIPT (a server that restarted or failed over, or never saw
// the script) are sent again: the first of them through Lua.Exec, which
// loads the script on its node, the others in one pipeline after it — and
// so on while some meet NOSCRIPT still (on a cluster, those of other nodes),
// each round loading the script on one more node. Sent one by one, the
// writes of a batch after a restart took a round trip each.
func evalMany(ctx context.Context, rc rueidis.Client, script *rueidis.Lua, sha string, execs []rueidis.LuaExec) []rueidis.RedisResult {
	cmds := make(rueidis.Commands, len(execs))
	for i, e := range execs {
		cmds[i] = evalCmd(rc, sha, e)
	}
	var out []rueidis.RedisResult
	if len(cmds) == 1 {
		out = []rueidis.RedisResult{rc.Do(ctx, cmds[0])}
	} else {
		out = rc.DoMulti(ctx, cmds...)
	}
	var again []int
	for i, res := range out {
		if noScript(res) {
			again = append(again, i)
		}
	}
	resend(ctx, rc, script, sha, execs, out, again)
	return out
}

// resend sends execs[i], i in again, whose EVALSHA met NOSCRIPT, again, as
// evalMany says, and sets out[i] to their results.
func resend(ctx context.Context, rc rueidis.Client, script *rueidis.Lua, sha string, execs []rueidis.LuaExec, out []rueidis.RedisResult, again []int) {
	for len(again) > 0 {
		first := again[0]
		out[first] = script.Exec(ctx, rc, execs[first].Keys, execs[first].Args)
		rest := again[1:]
		if len(rest) == 0 {
			break
		}
		cmds := make(rueidis.Commands, len(rest))
		for k, i := range rest {
			cmds[k] = evalCmd(rc, sha, execs[i])
		}
		var next []int
		for k, res := range rc.DoMulti(ctx, cmds...) {
			if out[rest[k]] = res; noScript(res) {
				next = append(next, rest[k])
			}
		}
		again = next
	}
}

// noScript reports whether res is Redis's NOSCRIPT: it does not have the
// script.
func noScript(res rueidis.RedisResult) bool {
	re, ok := rueidis.IsRedisErr(res.Error())
	return ok && re.IsNoScript()
}

func evalCmd(rc rueidis.Client, sha string, e rueidis.LuaExec) rueidis.Completed {
	return rc.B().Evalsha().Sha1(sha).Numkeys(int64(len(e.Keys))).Key(e.Keys...).Arg(e.Args...).Build()
}

// scriptSHA is the SHA-1 Redis names a script by.
func scriptSHA(src string) string {
	sum := sha1.Sum([]byte(src))
	return hex.EncodeToString(sum[:])
}

// newLease returns a lease envelope with a fresh 128-bit random token.
func newLease() []byte {
	var token [16]byte
	_, _ = rand.Read(token[:]) // never fails (crypto/rand, Go 1.24+)
	return envelope.Encode(envelope.Lease, false, time.Time{}, token[:])
}

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

// execArena hands out the key and argument slices of the script executions
// of one pipeline from arrays they share: a few allocations for the
// pipeline instead of three for each execution. What it handed out is never
// written again (a slice is capped at its length, an append that outgrows
// an array moves to a new one), so it stays valid as long as it is used.
type execArena struct {
	strs []string
	nums []byte
}

// writeExecStrings is the most keys and arguments an execution of
// writeScript or plainWriteScript takes from its arena.
const writeExecStrings = 5

// newExecArena returns an arena sized for n executions of up to
// strsPerExec keys and arguments each, and one number.
func newExecArena(n, strsPerExec int) *execArena {
	return &execArena{strs: make([]string, 0, n*strsPerExec), nums: make([]byte, 0, n*20)}
}

// strings returns a slice holding s.
func (a *execArena) strings(s ...string) []string {
	n := len(a.strs)
	a.strs = append(a.strs, s...)
	return a.strs[n:len(a.strs):len(a.strs)]
}

// int returns v in decimal.
func (a *execArena) int(v int64) string {
	n := len(a.nums)
	a.nums = strconv.AppendInt(a.nums, v, 10)
	return rueidis.BinaryString(a.nums[n:len(a.nums):len(a.nums)])
}

// visitReply reads the replies of a visit's commands: the key's bytes are
// the next to last, its PTTL the last.
func visitReply(res []rueidis.RedisResult) visited {
	for _, r := range res {
		if err := r.NonRedisError(); err != nil {
			return visited{err: err}
		}
	}
	pttl, err := res[len(res)-1].AsInt64()
	if err != nil {
		return visited{err: err}
	}
	raw, err := res[len(res)-2].AsBytes()
	return fromBytes(raw, err, pttl)
}

// scriptVisitReply reads the reply of visitScript.
func scriptVisitReply(res rueidis.RedisResult) visited {
	arr, err := res.ToArray()
	if err != nil {
		return visited{err: err}
	}
	if len(arr) != 2 {
		return visited{err: errBadReply}
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
		return visited{pttl: pttl, err: err}
	}
	return visited{raw: raw, found: true, pttl: pttl}
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

// waits lets reads of this process wait for the invalidation of keys.
type waits struct {
	mu sync.Mutex
	m  map[string][]chan struct{} // guarded by mu
}

// register makes the next invalidation of key send on ch (without blocking:
// give ch a buffer of one). Call unregister when done waiting.
func (w *waits) register(key string, ch chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = make(map[string][]chan struct{})
	}
	w.m[key] = append(w.m[key], ch)
}

func (w *waits) unregister(key string, ch chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	chs := w.m[key]
	for i, have := range chs {
		if have == ch {
			chs[i] = chs[len(chs)-1]
			chs = chs[:len(chs)-1]
			break
		}
	}
	if len(chs) == 0 {
		delete(w.m, key)
	} else {
		w.m[key] = chs
	}
}

// wake signals the waits of key, which stay registered.
func (w *waits) wake(key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ch := range w.m[key] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (w *waits) wakeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, chs := range w.m {
		for _, ch := range chs {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}
