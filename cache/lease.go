package cache

import (
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

// Leases: one load per key across every process.
//
// A fill that finds nothing in Redis takes the key's lease before it loads:
// SET key <lease> NX GET PX <LeaseTTL>, where <lease> is an envelope of kind
// Lease holding a token drawn for this fill alone (a token per client would
// let two fills of one process each believe they hold the other's lease).
// GET makes the same command return what the key holds when the SET did not
// happen: a value another process wrote meanwhile, or its lease.
//
// The holder loads, then writes with replaceScript, which replaces the key
// only if it still holds the holder's own lease. Every invalidation deletes
// the key — lease included — so a fill that read the source before an update
// (and therefore before the update's invalidation) can never write its value
// after it: the stale-set race of cache-aside is closed. A holder that dies
// leaves a lease that expires after LeaseTTL, and the next reader takes over.
//
// A reader that finds a lease waits for the key's invalidation, which Redis
// pushes when the holder writes (or the lease expires, or anyone deletes the
// key), then reads again. It registers its wait before the read that
// observes the lease, so no invalidation can fall between that read and the
// wait. Redis tracks a key once per read: the read that observes the lease is
// a client-side cached GET, which tracks the key again for the next push.

// replaceScript replaces KEYS[1] with ARGV[2] for ARGV[3] milliseconds (or
// deletes it when ARGV[3] is 0) if it holds exactly ARGV[1]. It returns 1 when
// it did.
var (
	replaceScript = rueidis.NewLuaScript(replaceSrc)
	replaceSHA    = scriptSHA(replaceSrc)
)

const replaceSrc = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
	if ARGV[3] == '0' then
		redis.call('DEL', KEYS[1])
	else
		redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
	end
	return 1
end
return 0`

// evalMany runs script once per exec in one pipeline of EVALSHA commands.
// rueidis' Lua.ExecMulti would first send SCRIPT LOAD to every node, a round
// trip per call; here the SHA-1 is computed locally, and only the executions
// that meet NOSCRIPT (a server that restarted, or never saw the script) are
// sent again through Lua.Exec, which loads it.
func evalMany(ctx context.Context, rc rueidis.Client, script *rueidis.Lua, sha string, execs []rueidis.LuaExec) []rueidis.RedisResult {
	cmds := make(rueidis.Commands, len(execs))
	for i, e := range execs {
		cmds[i] = rc.B().Evalsha().Sha1(sha).Numkeys(int64(len(e.Keys))).Key(e.Keys...).Arg(e.Args...).Build()
	}
	out := rc.DoMulti(ctx, cmds...)
	for i, res := range out {
		if re, ok := rueidis.IsRedisErr(res.Error()); ok && re.IsNoScript() {
			out[i] = script.Exec(ctx, rc, execs[i].Keys, execs[i].Args)
		}
	}
	return out
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

// acquireCmd is the command that takes key's lease or returns what it holds.
func (c *Cache[K, V]) acquireCmd(key string, lease []byte) rueidis.Completed {
	return c.rc.B().Set().Key(key).Value(rueidis.BinaryString(lease)).Nx().Get().PxMilliseconds(ms(c.leaseTTL)).Build()
}

// replace runs replaceScript: if key still holds old, it becomes data for
// ttl (or is deleted when ttl is 0). It reports whether the key was replaced.
// It runs with its own deadline, detached from ctx's cancellation: a lease
// must be released even when every caller has gone.
func (c *Cache[K, V]) replace(ctx context.Context, key string, old, data []byte, ttl time.Duration) (bool, error) {
	ctx, cancel := c.detached(ctx, writeTimeout)
	defer cancel()
	ttlArg := "0"
	if ttl > 0 {
		ttlArg = strconv.FormatInt(ms(ttl), 10)
	}
	n, err := replaceScript.Exec(ctx, c.rc, []string{key}, []string{string(old), string(data), ttlArg}).AsInt64()
	c.wrote(key)
	return n == 1, classify(err)
}

// writeTimeout bounds the writes a fill makes after its load.
const writeTimeout = 5 * time.Second

// waits lets fills of this process wait for the invalidation of a key.
type waits struct {
	mu sync.Mutex
	m  map[string]*wait // guarded by mu
}

type wait struct {
	ch   chan struct{} // closed by the key's invalidation
	refs int
}

// register returns a channel closed by the next invalidation of key. Call
// unregister with it when done waiting.
func (w *waits) register(key string) *wait {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = make(map[string]*wait)
	}
	wt, ok := w.m[key]
	if !ok {
		wt = &wait{ch: make(chan struct{})}
		w.m[key] = wt
	}
	wt.refs++
	return wt
}

func (w *waits) unregister(key string, wt *wait) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wt.refs--
	if wt.refs == 0 && w.m[key] == wt {
		delete(w.m, key)
	}
}

// wake closes the wait of key, if any. A fill that registers after it gets a
// new channel.
func (w *waits) wake(key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if wt, ok := w.m[key]; ok {
		close(wt.ch)
		delete(w.m, key)
	}
}

func (w *waits) wakeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for key, wt := range w.m {
		close(wt.ch)
		delete(w.m, key)
	}
}
