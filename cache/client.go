package cache

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/rueidis"

	"github.com/aside-go/aside/internal/keyname"
)

// Client is a rueidis client that aside connected itself, so that it owns the
// client's invalidation stream: rueidis hands every client-side caching
// invalidation (and a nil "flush everything" whenever a connection drops) to
// the ClientOption.OnInvalidations hook, which is fixed when the client is
// built. Client fans that stream out to every [Cache] built on it, which is how
// the decoded copies a Cache keeps in process memory learn that Redis changed.
//
// Many caches (of different types and namespaces) share one Client. A Client is
// safe for concurrent use; Close it when the application stops.
type Client struct {
	// conn is the rueidis client once connected; nil while Redis has not
	// been reached yet (see Connect).
	conn   atomic.Pointer[connection]
	connMu sync.Mutex // orders storing conn with Close
	// shutMu and inflight let Close wait for the commands of the caches
	// under way (see guarded); shut, set by Close, admits no more.
	shutMu   sync.RWMutex
	shut     bool // guarded by shutMu
	inflight sync.WaitGroup
	clock    *clock
	// userHook is the application's ClientOption.OnInvalidations, which
	// the client's own hook calls after its dispatch.
	userHook func([]rueidis.RedisMessage)
	// heard is when the last heartbeat round that every node answered
	// began (Unix nanoseconds); beat waits for the heartbeat goroutine.
	heard    atomic.Int64
	beat     sync.WaitGroup
	closed   sync.Once
	isClosed atomic.Bool // Close was called
	// closing is cancelled by Close: background work of the caches stops.
	closing context.Context
	cancel  context.CancelFunc

	mu sync.RWMutex // guards subs
	// subs maps a namespace to the caches that serve it. Invalidations are
	// dispatched by the namespace part of the key (up to the first ':').
	subs map[string][]invalidator
	// all receives every invalidation, whatever its key (a flush-all reaches
	// every cache through it too).
	all []invalidator

	echoMu sync.Mutex
	// echoes counts, per Redis key, the invalidations Redis will push back
	// for this process's own writes in flight or just done (see expectEcho).
	// Guarded by echoMu.
	echoes map[string]int

	// pending holds the keys whose invalidation Redis has not confirmed
	// (see pending.go).
	pending pendingSet

	// build makes the rueidis clients (WithClientBuilder).
	build ClientBuilder
	// log tells what happens off the callers' paths (WithLogger).
	log *slog.Logger
}

// invalidator is the part of a Cache the client talks to (see change.go).
type invalidator interface {
	// changed handles a change of key; pushed: Redis pushed it.
	changed(key string, pushed bool)
	// echoed handles the push that answers this process's own write of
	// key (or, in plain mode, of its lease key).
	echoed(key string)
	// changedWhere handles a change of every key match reports true of.
	changedWhere(match func(key string) bool)
	// changedAll handles a flush, or a connection that dropped.
	changedAll()
	// cleared handles a Clear of the namespace of generation gen (0:
	// unknown).
	cleared(gen uint64)
	// leaseChanged handles a push of the lease key of valueKey (plain
	// mode).
	leaseChanged(valueKey string)
	// verified tells the cache that Redis answered a heartbeat round that
	// began at start (Unix nanoseconds).
	verified(start int64)
	// waitBackground waits for the cache's background work, which the
	// client's closing context has told to stop.
	waitBackground()
}

// connection is a connected rueidis client and what Connect learned of it.
type connection struct {
	rc       rueidis.Client // raw: for Rueidis and Close
	guarded  rueidis.Client // rc through the client's in-flight guard
	tracking bool
	// cas is the compare-and-set commands the server has (a casForm; see
	// cas.go): found at Connect, dropped when the server refuses one.
	cas atomic.Uint32
	// blockingPipeline is the ClientOption's BlockingPipeline: rueidis
	// sends a pipeline of that many commands or more on a connection of
	// its own, not the one the keys were tracked on (0: no such limit).
	blockingPipeline int
}

// cas returns the compare-and-set commands the caches may use for a
// pipeline of n transactions of up to perTx commands each: none when rueidis
// would send it on another connection than the one that tracks the keys,
// where the echoes of its writes would come back as changes.
func (c *Client) cas(n, perTx int) casForm {
	conn := c.conn.Load()
	if conn == nil || conn.blockingPipeline > 0 && n*perTx >= conn.blockingPipeline {
		return 0
	}
	return casForm(conn.cas.Load())
}

// noCAS stops the use of the compare-and-set commands of form (and of all
// of them when that is SET IFEQ): the server refused one.
func (c *Client) noCAS(form casForm) {
	conn := c.conn.Load()
	if conn == nil {
		return
	}
	if form&casSetIfEq != 0 {
		form = casSetIfEq | casDel
	}
	if old := casForm(conn.cas.And(^uint32(form))); old&form != 0 {
		c.log.Info("cache: the server refused a compare-and-set command (SET IFEQ, DELIFEQ or DELEX); those writes under a lease are scripts from now on")
	}
}

// guarded is the rueidis client the caches use: every command passes the
// client's in-flight guard, so that Close closes rueidis only once no command
// of aside's is under way. (rueidis leaves a connection open for good when a
// command makes it dial while Close runs: the dialled connection is stored
// over the closed one.)
type guarded struct {
	rueidis.Client
	c *Client
}

func (g guarded) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	if !g.c.enter() {
		return rueidis.NewErrorResult(errClientClosed)
	}
	defer g.c.inflight.Done()
	return g.Client.Do(ctx, cmd)
}

func (g guarded) DoMulti(ctx context.Context, cmds ...rueidis.Completed) []rueidis.RedisResult {
	if !g.c.enter() {
		out := make([]rueidis.RedisResult, len(cmds))
		for i := range out {
			out[i] = rueidis.NewErrorResult(errClientClosed)
		}
		return out
	}
	defer g.c.inflight.Done()
	return g.Client.DoMulti(ctx, cmds...)
}

// errClientClosed is the error of commands after Close.
var errClientClosed = ErrClosed

// enter admits one command unless the client is closing; the caller calls
// c.inflight.Done when it returns.
func (c *Client) enter() bool {
	c.shutMu.RLock()
	defer c.shutMu.RUnlock()
	if c.shut {
		return false
	}
	c.inflight.Add(1)
	return true
}

// withGuard wraps conn's client for the caches in the in-flight guard.
func (c *Client) withGuard(conn *connection) *connection {
	conn.guarded = guarded{Client: conn.rc, c: c}
	return conn
}

// redis returns the rueidis client, or false while not connected yet.
func (c *Client) redis() (rueidis.Client, bool) {
	if conn := c.conn.Load(); conn != nil {
		return conn.guarded, true
	}
	return nil, false
}

// Rueidis returns the underlying rueidis client, for commands aside does not
// wrap, or nil while Connect's background connection has not been made yet
// (see [Client.Connected]). Writes made through it are seen by every cache:
// Redis pushes their invalidations like any other.
func (c *Client) Rueidis() rueidis.Client {
	if conn := c.conn.Load(); conn != nil {
		return conn.rc
	}
	return nil
}

// Connected reports whether the client has reached Redis. A client made
// while Redis was unreachable connects in the background; until then every
// call of its caches finds Redis unavailable.
func (c *Client) Connected() bool {
	_, ok := c.redis()
	return ok
}

// Tracking reports whether client-side caching is on: connected, and the
// server granted tracking. When it is off, caches keep no in-process copies.
func (c *Client) Tracking() bool {
	conn := c.conn.Load()
	return conn != nil && conn.tracking
}

// Close closes the connections, once the background work of its caches
// (the writes behind loads, refreshes, invalidations sent again) has
// stopped: what was not done is abandoned, and the leases it held expire.
// From the moment Close is called, every call of its caches fails with an
// error wrapping [ErrClosed] — Get too, even of a key held in process
// memory: nothing keeps the copies fresh any more — and so do
// [Client.Invalidate], [Client.Ping] and [New]. It is safe to call more
// than once.
func (c *Client) Close() {
	c.closed.Do(func() {
		c.isClosed.Store(true)
		c.cancel()
		// Not under c.mu: background work takes it (to tell the other
		// caches of its writes), and a New waiting for it would block
		// that work behind it.
		c.mu.RLock()
		all := slices.Clone(c.all)
		c.mu.RUnlock()
		for _, inv := range all {
			inv.waitBackground()
		}
		c.beat.Wait()
		c.pending.stop()
		c.shutMu.Lock()
		c.shut = true
		c.shutMu.Unlock()
		c.inflight.Wait()
		c.connMu.Lock()
		if conn := c.conn.Load(); conn != nil {
			conn.rc.Close()
		}
		c.connMu.Unlock()
		c.clock.close()
	})
}

func (c *Client) subscribe(namespace string, inv invalidator) {
	c.mu.Lock()
	c.subs[namespace] = append(c.subs[namespace], inv)
	c.all = append(c.all, inv)
	c.mu.Unlock()
	if c.closing.Err() != nil {
		// Built during or after Close: it starts no background work,
		// which Close would not wait for.
		inv.waitBackground()
	}
}

// dispatch runs on a rueidis connection's reading goroutine: it must be quick
// and must not call Redis.
func (c *Client) dispatch(msgs []rueidis.RedisMessage) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if msgs == nil {
		// The echoes expected may never come (a connection dropped), and
		// every copy goes anyway. Under echoMu, as a push of one key is.
		c.echoMu.Lock()
		clear(c.echoes)
		for _, inv := range c.all {
			inv.changedAll()
		}
		c.echoMu.Unlock()
		return
	}
	for i := range msgs {
		key, err := msgs[i].ToString()
		if err != nil {
			continue
		}
		vk, ns, lease := valueKeyOf(key)
		if !lease {
			var ok bool
			if ns, _, ok = strings.Cut(key, ":"); !ok {
				if ns, ok := keyname.NamespaceCleared(key); ok {
					for _, inv := range c.subs[ns] {
						inv.cleared(0)
					}
				}
				continue
			}
		}
		subs := c.subs[ns]
		if len(subs) == 0 {
			continue
		}
		// echoMu is held while the caches handle the push, so that
		// echoes are taken in the order pushes are handled.
		c.echoMu.Lock()
		echo := c.takeEcho(key)
		for _, inv := range subs {
			switch {
			case echo && lease:
				inv.echoed(vk)
			case echo:
				inv.echoed(key)
			case lease:
				inv.leaseChanged(vk)
			default:
				inv.changed(key, true)
			}
		}
		c.echoMu.Unlock()
	}
}
