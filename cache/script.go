package cache

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"strconv"

	"github.com/redis/rueidis"
)

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
	return resendAll(ctx, rc, script, sha, execs, out)
}

// evalManyAfter is evalMany with the command head sent first in the same
// pipeline; it returns head's result apart.
func evalManyAfter(ctx context.Context, rc rueidis.Client, head rueidis.Completed, script *rueidis.Lua, sha string, execs []rueidis.LuaExec) (rueidis.RedisResult, []rueidis.RedisResult) {
	cmds := make(rueidis.Commands, 1+len(execs))
	cmds[0] = head
	for i, e := range execs {
		cmds[1+i] = evalCmd(rc, sha, e)
	}
	out := rc.DoMulti(ctx, cmds...)
	return out[0], resendAll(ctx, rc, script, sha, execs, out[1:])
}

// resendAll sends again, as evalMany says, the executions whose results
// out met NOSCRIPT, and returns out.
func resendAll(ctx context.Context, rc rueidis.Client, script *rueidis.Lua, sha string, execs []rueidis.LuaExec, out []rueidis.RedisResult) []rueidis.RedisResult {
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
	if n == 1 && strsPerExec <= writeExecStrings {
		// One write, as a single miss makes: one allocation.
		a := &oneExecArena{}
		a.strs, a.nums = a.s[:0], a.b[:0]
		return &a.execArena
	}
	return &execArena{strs: make([]string, 0, n*strsPerExec), nums: make([]byte, 0, n*20)}
}

// oneExecArena is an execArena for one execution, with its arrays.
type oneExecArena struct {
	execArena
	s [writeExecStrings]string
	b [20]byte
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
