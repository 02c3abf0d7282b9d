package cache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
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
	rc       rueidis.Client
	tracking bool
	clock    *clock
	// heard is when the last heartbeat round that every node answered
	// began (Unix nanoseconds); beat waits for the heartbeat goroutine.
	heard  atomic.Int64
	beat   sync.WaitGroup
	closed sync.Once
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
}

// invalidator is the part of a Cache the client talks to.
type invalidator interface {
	// invalidateKey handles a change of key: copies dropped, flights
	// forgotten, waits woken.
	invalidateKey(key string)
	// echoKey handles the push that answers this process's own write of
	// key: flights forgotten and waits woken, copies kept (the writer
	// stored the value it wrote).
	echoKey(key string)
	// dropKey handles a write of key by this process: copies dropped and
	// flights forgotten at once, before Redis' push arrives.
	dropKey(key string)
	// invalidateAll handles a flush, or a connection that dropped.
	invalidateAll()
	// waitBackground waits for the cache's background work, which the
	// client's closing context has told to stop.
	waitBackground()
}

// Connect builds a rueidis client from opt and returns it wrapped as a Client.
//
// Connect installs its own OnInvalidations hook (calling opt.OnInvalidations
// too, after its own, when set), and turns client tracking on in OPTOUT mode
// (opt.ClientTrackingOptions must be empty or exactly OPTOUT): every read on
// the client's connections is tracked, including the reads inside aside's
// scripts, so that Redis pushes an invalidation for every key this process
// read once that key changes. When opt.RetryDelay is nil it caps the retries rueidis makes
// of read commands on network errors at [DefaultMaxRetries], because rueidis
// otherwise retries them until the context ends, and a Get without a deadline
// against a dead Redis would never return.
//
// When the server refuses RESP3 or CLIENT TRACKING (some managed services and
// proxies do), Connect falls back to a client without client-side caching
// (rueidis DisableCache) instead of failing; [Client.Tracking] then reports
// false and every cache built on it reads through Redis on each Get, never from
// an in-process copy that nothing would keep fresh.
func Connect(opt rueidis.ClientOption) (*Client, error) {
	switch {
	case len(opt.ClientTrackingOptions) == 0:
		opt.ClientTrackingOptions = []string{"OPTOUT"}
	case len(opt.ClientTrackingOptions) == 1 && strings.EqualFold(opt.ClientTrackingOptions[0], "OPTOUT"):
	default:
		return nil, fmt.Errorf("%w: ClientTrackingOptions: %q; aside tracks in OPTOUT mode, leave it empty", ErrInvalidOptions, opt.ClientTrackingOptions)
	}
	c := &Client{subs: make(map[string][]invalidator), echoes: make(map[string]int)}
	userHook := opt.OnInvalidations
	opt.OnInvalidations = func(msgs []rueidis.RedisMessage) {
		c.dispatch(msgs)
		if userHook != nil {
			userHook(msgs)
		}
	}
	if opt.RetryDelay == nil {
		opt.RetryDelay = func(attempts int, _ rueidis.Completed, _ error) time.Duration {
			if attempts > DefaultMaxRetries {
				return -1
			}
			return time.Duration(attempts) * 10 * time.Millisecond
		}
	}
	if !opt.DisableCache {
		ok, err := trackingAllowed(opt)
		if err != nil {
			return nil, fmt.Errorf("cache: connect: %w", classify(err))
		}
		opt.DisableCache = !ok
	}
	rc, err := rueidis.NewClient(opt)
	if err != nil && errors.Is(err, rueidis.ErrNoCache) && !opt.DisableCache {
		opt.DisableCache = true
		rc, err = rueidis.NewClient(opt)
	}
	if err != nil {
		return nil, fmt.Errorf("cache: connect: %w", classify(err))
	}
	dialAll(rc)
	c.rc = rc
	c.tracking = !opt.DisableCache
	c.clock = startClock()
	c.closing, c.cancel = context.WithCancel(context.Background())
	c.startHeartbeat()
	return c, nil
}

// trackingAllowed asks the server, over one connection of a client without
// tracking, whether it grants client tracking (RESP3 and CLIENT TRACKING ON).
// Asking first, rather than letting rueidis.NewClient fail with ErrNoCache and
// building again, matters: a client that fails so leaves a cluster-topology
// refresh behind, which later dials a connection that nothing ever closes.
func trackingAllowed(opt rueidis.ClientOption) (bool, error) {
	probe := opt
	probe.DisableCache = true
	probe.ForceSingleClient = true
	probe.OnInvalidations = nil
	probe.ClientTrackingOptions = nil
	rc, err := rueidis.NewClient(probe)
	if err != nil {
		return false, err
	}
	defer rc.Close()
	ctx := context.Background()
	if opt.Dialer.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opt.Dialer.Timeout)
		defer cancel()
	}
	err = rc.Do(ctx, rc.B().Arbitrary("CLIENT", "TRACKING", "ON").Args(opt.ClientTrackingOptions...).Build()).Error()
	if _, refused := rueidis.IsRedisErr(err); refused {
		return false, nil
	}
	return err == nil, err
}

// dialAll makes rueidis dial every multiplexed connection of rc now. rueidis
// dials each on its first use, at random (a keyed command goes to a random
// one), and a Close that races with such a dial leaves the new connection
// open for good (mux._pipe stores the dialled wire over the one Close
// closed). Dialled here, none is left to race with the application's Close.
// Errors are left to the commands that follow.
func dialAll(rc rueidis.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range dialProbes {
		wg.Go(func() {
			_ = rc.Do(ctx, rc.B().Exists().Key("aside-connect:"+strconv.Itoa(i)).Build()).Error()
		})
	}
	wg.Wait()
}

// dialProbes is how many keyed commands dialAll sends: with 4 connections
// per node (rueidis' most on one node) the chance that one is never picked is
// below 1e-7.
const dialProbes = 64

// DefaultMaxRetries is how many times a read command is retried on a network
// error when the ClientOption given to [Connect] sets no RetryDelay.
const DefaultMaxRetries = 3

// Rueidis returns the underlying rueidis client, for commands aside does not
// wrap. Writes made through it are seen by every cache: Redis pushes their
// invalidations like any other.
func (c *Client) Rueidis() rueidis.Client { return c.rc }

// Tracking reports whether client-side caching is on. When it is off, caches
// keep no in-process copies.
func (c *Client) Tracking() bool { return c.tracking }

// Close closes the connections. Caches built on the client stop working.
// It is safe to call more than once.
func (c *Client) Close() {
	c.closed.Do(func() {
		c.cancel()
		c.mu.RLock()
		for _, inv := range c.all {
			inv.waitBackground()
		}
		c.mu.RUnlock()
		c.beat.Wait()
		c.rc.Close()
		c.clock.close()
	})
}

func (c *Client) subscribe(namespace string, inv invalidator) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.subs[namespace] = append(c.subs[namespace], inv)
	c.all = append(c.all, inv)
}

// dispatch runs on a rueidis connection's reading goroutine: it must be quick
// and must not call Redis.
func (c *Client) dispatch(msgs []rueidis.RedisMessage) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if msgs == nil {
		// The echoes expected may never come (a connection dropped), and
		// every copy goes anyway.
		c.echoMu.Lock()
		clear(c.echoes)
		c.echoMu.Unlock()
		for _, inv := range c.all {
			inv.invalidateAll()
		}
		return
	}
	for i := range msgs {
		key, err := msgs[i].ToString()
		if err != nil {
			continue
		}
		ns, _, ok := strings.Cut(key, ":")
		if !ok {
			continue
		}
		subs := c.subs[ns]
		if len(subs) == 0 {
			continue
		}
		// echoMu is held while the caches handle the push: a writer
		// deciding under it whether to expect an echo (expectEchoIf)
		// sees the push either not at all or fully handled.
		c.echoMu.Lock()
		echo := c.takeEcho(key)
		for _, inv := range subs {
			if echo {
				inv.echoKey(key)
			} else {
				inv.invalidateKey(key)
			}
		}
		c.echoMu.Unlock()
	}
}

// Echoes: the invalidations of this process's own writes.
//
// A write that leaves a copy of what it wrote in process memory (Set, and a
// load's write under its lease) runs writeScript, which reads the key before
// writing it: Redis therefore tracks the key for the writing connection when
// the write happens, and pushes its invalidation back to this process after
// the reply — always, and at most a push delay later. That push, the echo,
// must not drop the copy just stored. The writer calls expectEcho before it
// sends the write; the next push of the key that arrives is handled as an
// echo (flights forgotten, waits woken, copies kept) instead of as a change.
//
// Why that is safe: every expectEcho is matched by at least one push of the
// key that Redis sends after the call: for Set, writeScript's first read
// makes the writing connection track the key; for a load, the visit that took
// the lease left it tracked, and no push has come since (the load's flight is
// still current, checked under the lock pushes are handled under). If a push of a later change arrives first and is taken for
// the echo, the real echo arrives after it — within a push delay — and is
// handled as a change, dropping the copy. The writer stores its copy only if
// no change was handled for the key between expectEcho and the store (the
// snapshot rule of local), and drops every other copy of the key when it
// stores. A write that fails, or does not write (its lease was gone), has no
// echo: the writer calls cancelEcho, and handles the key as changed.

// expectEcho announces a write of key whose invalidation Redis will push back.
func (c *Client) expectEcho(key string) { c.expectEchoIf(key, nil) }

// expectEchoIf is expectEcho when cond, called under the same lock as the
// handling of pushes, reports true; it returns cond's answer. A load writing
// under its lease expects the echo only while its flight is current: a push
// that forgot the flight may also have ended the tracking the echo needs.
func (c *Client) expectEchoIf(key string, cond func() bool) bool {
	c.echoMu.Lock()
	defer c.echoMu.Unlock()
	if cond != nil && !cond() {
		return false
	}
	c.echoes[key]++
	return true
}

// cancelEcho withdraws an expectEcho whose write did not happen, unless a
// push already took it.
func (c *Client) cancelEcho(key string) {
	c.echoMu.Lock()
	if n := c.echoes[key]; n > 1 {
		c.echoes[key] = n - 1
	} else {
		delete(c.echoes, key)
	}
	c.echoMu.Unlock()
}

// takeEcho reports whether a push of key is an expected echo, and counts it.
// c.echoMu is held.
func (c *Client) takeEcho(key string) bool {
	n, ok := c.echoes[key]
	if !ok {
		return false
	}
	if n > 1 {
		c.echoes[key] = n - 1
	} else {
		delete(c.echoes, key)
	}
	return true
}

// wrote is called after every write of key by this process, through any
// cache (whether Redis acknowledged it or not: it may have applied it). Redis
// pushes the write's invalidation to this process too, but after the reply
// and maybe on another connection: every cache of key's namespace on this
// client drops its copies of key and forgets its flights now, which gives
// read-your-writes across the caches of the client.
func (c *Client) wrote(key string) { c.wroteBy(key, nil) }

// wroteBy is wrote for every cache but self, which handles its own write.
func (c *Client) wroteBy(key string, self invalidator) {
	ns, _, ok := strings.Cut(key, ":")
	if !ok {
		return
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, inv := range c.subs[ns] {
		if inv != self {
			inv.dropKey(key)
		}
	}
}
