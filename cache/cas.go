package cache

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// Compare-and-set. A write under a lease (a load's write, a refresh's write
// in place of the value it claimed, a lease's release, the deletion of
// bytes nobody can read) only compares the key with what it expects and
// then writes or deletes it: on a server that can do that itself (SET ...
// IFEQ, DELIFEQ, DELEX) it needs no script. The write is then a transaction:
//
//	MULTI, PTTL key, SET key data IFEQ old PX ttl, PTTL key, EXEC
//	MULTI, PTTL key, DELIFEQ key old, EXEC      (Valkey 9)
//	MULTI, PTTL key, DELEX key IFEQ old, EXEC   (Redis 8.4)
//
// which does what writeScript does, in one atomic step: the PTTL before the
// write makes Redis track the key for this very connection, so that the
// write's invalidation is pushed back on it (the echo: see
// Client.expectEcho); the PTTL after it tracks the key again for the next
// change. Without the MULTI another client's write could land between the
// SET and the second PTTL and reach nobody (the SET took the key out of
// this connection's tracking). Measured on Valkey 9.1.2 with 100 writes per
// pipeline, Redis spent 4.1 µs of CPU per write on the transaction and 5.0
// on the script; aside spends 5 allocations more per write.
//
// Only standalone and Sentinel clients use it (see Client.dial: not on a
// cluster). A server that does not know a command, or a user the ACL does
// not let run it, answers it with an error (before the transaction runs,
// and EXEC with EXECABORT; Redis 7 and 8.0 fail SET ... IFEQ when it runs):
// nothing was written, the client stops using that command (a node of an
// older version after a failover, an ACL without DELIFEQ) and sends the
// write again as the script. A MULTI refused (the ACL changed since
// Connect) leaves its commands to run one by one: what they did is the
// result, but the key may not be tracked for the next change, and no copy
// of what was written is kept.

// casCommands is the most commands of one transaction of appendCAS.
const casCommands = 5

// casForm says which compare-and-set commands the server has.
type casForm uint32

const (
	casSetIfEq casForm = 1 << iota // SET key value IFEQ old (Valkey 8.1, Redis 8.4)
	casDelIfEq                     // DELIFEQ key old (Valkey 9.0)
	casDelEx                       // DELEX key IFEQ old (Redis 8.4)

	casDel = casDelIfEq | casDelEx // either deletion
)

// serverCAS returns the compare-and-set commands every node of rc has, from
// the server name and version their HELLO gives, and only if each lets this
// user run a transaction (MULTI and EXEC are allowed by its ACL): a MULTI
// refused would leave the commands after it to run one by one. A node that
// does not answer, or a server not known to have the commands, leaves them
// unused.
func serverCAS(rc rueidis.Client) casForm {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nodes := rc.Nodes()
	if len(nodes) == 0 {
		return 0
	}
	form := casSetIfEq | casDel
	for _, n := range nodes {
		hello, err := n.Do(ctx, n.B().Hello().Build()).AsMap()
		if err != nil {
			return 0
		}
		server, version := hello["server"], hello["version"]
		name, _ := server.ToString()
		v, _ := version.ToString()
		form &= casOf(name, v)
		if form == 0 {
			return 0
		}
		for _, res := range n.DoMulti(ctx, n.B().Multi().Build(), n.B().Exec().Build()) {
			if res.Error() != nil {
				return 0
			}
		}
	}
	return form
}

// casOf is the compare-and-set commands of the server of that name and
// version.
func casOf(name, version string) casForm {
	major, minor, ok := majorMinor(version)
	switch {
	case !ok:
		return 0
	case name == "valkey" && major >= 9:
		return casSetIfEq | casDelIfEq
	case name == "valkey" && major == 8 && minor >= 1:
		return casSetIfEq
	case name == "redis" && (major > 8 || major == 8 && minor >= 4):
		return casSetIfEq | casDelEx
	}
	return 0
}

// majorMinor parses the first two numbers of a version "8.1.2".
func majorMinor(v string) (major, minor int, ok bool) {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	return major, minor, err1 == nil && err2 == nil
}

// writeResult is the outcome of a write under a lease, whichever form it
// took: whether it wrote (or deleted), the key's PTTL after it (-2 after a
// deletion), or the error.
type writeResult struct {
	wrote bool
	pttl  int64
	err   error
	// untracked: the value was written, but the key may not be tracked for
	// the next change: no copy of it may be kept (see looseResult).
	untracked bool
}

// writeUnder runs the writes made by underLease in one pipeline: in plain
// mode as plainWriteScript, as casWrites does otherwise.
func (c *Cache[K, V]) writeUnder(ctx context.Context, rc rueidis.Client, execs []rueidis.LuaExec) []writeResult {
	if c.plain {
		return scriptResults(evalMany(ctx, rc, plainWriteScript, plainWriteSHA, execs))
	}
	return c.casWrites(ctx, rc, execs)
}

// casWrites runs execs of writeScript, made by writeExec (each a write or a
// deletion of its key if the key holds the bytes given), in one pipeline:
// as compare-and-set transactions where the server has the commands, as
// the script elsewhere.
func (c *Cache[K, V]) casWrites(ctx context.Context, rc rueidis.Client, execs []rueidis.LuaExec) []writeResult {
	form := c.client.cas(len(execs), casCommands)
	if form == 0 {
		return scriptResults(evalMany(ctx, rc, writeScript, writeSHA, execs))
	}
	cmds := make(rueidis.Commands, 0, casCommands*len(execs))
	at := make([]int, len(execs)) // the index in cmds of each exec's first command
	for i, e := range execs {
		at[i] = len(cmds)
		cmds = appendCAS(rc, cmds, e, form)
	}
	out := rc.DoMulti(ctx, cmds...)
	res := make([]writeResult, len(execs))
	var script []int // the executions to send (again) as scripts
	for i := range execs {
		end := len(cmds)
		if i+1 < len(execs) {
			end = at[i+1]
		}
		if end-at[i] == 1 { // the script: its reply, unless the server lacks it
			if noScript(out[at[i]]) {
				script = append(script, i)
			} else {
				res[i].wrote, res[i].pttl, res[i].err = writeReply(out[at[i]])
			}
			continue
		}
		r, refused, noMulti := casResult(out[at[i]:end])
		switch {
		case noMulti:
			// MULTI refused (an ACL changed since Connect): its commands
			// ran one by one, and none go as transactions again.
			c.client.noCAS(casSetIfEq)
			res[i] = r
		case refused:
			c.client.noCAS(casNeeded(execs[i]))
			script = append(script, i)
		default:
			res[i] = r
		}
	}
	if len(script) == 0 {
		return res
	}
	again := make([]rueidis.LuaExec, len(script))
	for j, i := range script {
		again[j] = execs[i]
	}
	for j, r := range scriptResults(evalMany(ctx, rc, writeScript, writeSHA, again)) {
		res[script[j]] = r
	}
	return res
}

// appendCAS appends e to cmds: as a transaction when it compares the key
// with bytes (a lease or a claimed value) and form has the command it
// needs, as writeScript otherwise.
func appendCAS(rc rueidis.Client, cmds rueidis.Commands, e rueidis.LuaExec, form casForm) rueidis.Commands {
	if len(e.Keys) != 1 || e.Args[0] == "" {
		return append(cmds, evalCmd(rc, writeSHA, e)) // no compare: a Set's
	}
	key, old, data, ttlArg := e.Keys[0], e.Args[0], e.Args[1], e.Args[2]
	deletes := ttlArg == "0"
	ttl, err := strconv.ParseInt(ttlArg, 10, 64) // writeArgs' decimal
	if err != nil || deletes && form&casDel == 0 || !deletes && form&casSetIfEq == 0 {
		return append(cmds, evalCmd(rc, writeSHA, e))
	}
	cmds = append(cmds, rc.B().Multi().Build(), rc.B().Pttl().Key(key).Build())
	switch {
	case deletes && form&casDelIfEq != 0:
		cmds = append(cmds, rc.B().Delifeq().Key(key).Value(old).Build())
	case deletes:
		cmds = append(cmds, rc.B().Delex().Key(key).Ifeq(old).Build())
	default:
		cmds = append(cmds, rc.B().Set().Key(key).Value(data).Ifeq(old).PxMilliseconds(ttl).Build(),
			rc.B().Pttl().Key(key).Build())
	}
	return append(cmds, rc.B().Exec().Build())
}

// casNeeded is the commands the transaction of e may need.
func casNeeded(e rueidis.LuaExec) casForm {
	if e.Args[2] == "0" {
		return casDel
	}
	return casSetIfEq
}

// casResult reads the replies of one transaction of appendCAS: MULTI's,
// those of the commands queued, and EXEC's. refused reports that nothing
// was written because the server refused a command as one it does not know
// (or its syntax), or one this user may not run (an ACL without DELIFEQ),
// or refused EXEC: the write may be sent as the script. noMulti reports
// that the server refused MULTI itself, and so ran the commands one by one:
// r is then what they did, and a value written is untracked (another
// client's write between the SET and the PTTL after it would reach nobody).
func casResult(out []rueidis.RedisResult) (r writeResult, refused, noMulti bool) {
	if err := out[0].Error(); err != nil {
		return looseResult(out), false, true
	}
	for _, q := range out[1 : len(out)-1] {
		if err := q.Error(); err != nil {
			if notQueued(err) {
				return writeResult{}, true, false
			}
			return writeResult{err: err}, false, false // EXEC discards the rest
		}
	}
	arr, err := out[len(out)-1].ToArray()
	if err != nil {
		// EXECABORT: the transaction was discarded, nothing ran.
		if re, ok := rueidis.IsRedisErr(err); ok && (strings.HasPrefix(re.Error(), "EXECABORT") || notQueued(err)) {
			return writeResult{}, true, false
		}
		return writeResult{err: err}, false, false
	}
	if len(arr) != len(out)-2 {
		return writeResult{err: errBadReply}, false, false
	}
	for _, m := range arr {
		if err := m.Error(); err != nil && !rueidis.IsRedisNil(err) {
			// Redis 7 and 8.0 parse SET's options when it runs: an
			// IFEQ they do not know fails it then.
			if notQueued(err) {
				return writeResult{}, true, false
			}
			return writeResult{err: err}, false, false
		}
	}
	if len(arr) == 2 { // PTTL, DELIFEQ or DELEX
		n, err := arr[1].AsInt64()
		if err != nil {
			return writeResult{err: err}, false, false
		}
		return writeResult{wrote: n == 1, pttl: -2}, false, false
	}
	if arr[1].IsNil() { // the key did not hold old
		return writeResult{}, false, false
	}
	pttl, err := arr[2].AsInt64()
	if err != nil {
		return writeResult{err: err}, false, false
	}
	return writeResult{wrote: true, pttl: pttl}, false, false
}

// looseResult reads the replies of a transaction whose MULTI was refused:
// PTTL's, the write's and, after a SET, PTTL's, each run alone.
func looseResult(out []rueidis.RedisResult) writeResult {
	w := out[2]
	err := w.Error()
	switch {
	case rueidis.IsRedisNil(err): // the key did not hold old
		return writeResult{}
	case err != nil:
		return writeResult{err: err}
	case len(out) == 4: // MULTI, PTTL, DELIFEQ or DELEX, EXEC
		n, err := w.AsInt64()
		return writeResult{wrote: err == nil && n == 1, pttl: -2, err: err}
	}
	pttl, _ := out[3].AsInt64()
	return writeResult{wrote: true, pttl: pttl, untracked: true}
}

// notQueued reports whether err is the server saying it does not know a
// command or its syntax, or that the user may not run the command (not: may
// not touch the key, which the script would meet too).
func notQueued(err error) bool {
	re, ok := rueidis.IsRedisErr(err)
	if !ok {
		return false
	}
	msg := strings.TrimPrefix(re.Error(), "ERR ") // rueidis takes it off
	return strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "syntax error") ||
		strings.HasPrefix(msg, "NOPERM") && strings.Contains(msg, "command")
}

// scriptResults reads the replies of writeScript or plainWriteScript.
func scriptResults(out []rueidis.RedisResult) []writeResult {
	res := make([]writeResult, len(out))
	for i, o := range out {
		res[i].wrote, res[i].pttl, res[i].err = writeReply(o)
	}
	return res
}
