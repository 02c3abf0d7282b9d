package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/rueidis"
)

// Connect builds a rueidis client from opt and returns it wrapped as a Client.
//
// When Redis cannot be reached (refused, unresolvable, timing out), Connect
// still returns a Client, unless [RequireRedis] is given: its caches find
// Redis unavailable (FailOpen serves from the loader) while it connects in
// the background, and keep copies in process memory once connected with
// tracking. Invalid options, and a server that refuses the client (bad
// credentials, say), fail at once.
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
//
// [WithClientBuilder] makes Connect build its rueidis clients with a function
// of the application's (rueidishook, rueidisotel, a wrapper of its own),
// [WithLogger] gives it a logger.
func Connect(opt rueidis.ClientOption, opts ...ConnectOption) (*Client, error) {
	var co connectOptions
	for _, o := range opts {
		o(&co)
	}
	switch {
	case len(opt.ClientTrackingOptions) == 0:
		opt.ClientTrackingOptions = []string{"OPTOUT"}
	case len(opt.ClientTrackingOptions) == 1 && strings.EqualFold(opt.ClientTrackingOptions[0], "OPTOUT"):
	default:
		return nil, fmt.Errorf("cache: %w: ClientTrackingOptions: %q; aside tracks in OPTOUT mode, leave it empty", ErrInvalidOptions, opt.ClientTrackingOptions)
	}
	if len(opt.InitAddress) == 0 {
		return nil, fmt.Errorf("cache: %w: InitAddress: empty", ErrInvalidOptions)
	}
	c := &Client{subs: make(map[string][]invalidator), echoes: make(map[string]int)}
	userHook := opt.OnInvalidations
	c.userHook = userHook
	opt.OnInvalidations = func(msgs []rueidis.RedisMessage) {
		c.dispatch(msgs)
		if userHook != nil {
			userHook(msgs)
		}
	}
	if opt.PipelineMultiplex == 0 {
		// One connection per node: a load's visit and its write travel
		// on the same connection, so the write's echo is the one push the
		// client expects, and the copy it keeps survives it. (With several
		// connections the visit's connection may be another tracker of the
		// key: a second push, which drops the copy — safe, but the next
		// Get goes to Redis.)
		opt.PipelineMultiplex = -1
	}
	if opt.RetryDelay == nil {
		opt.RetryDelay = func(attempts int, _ rueidis.Completed, _ error) time.Duration {
			if attempts > DefaultMaxRetries {
				return -1
			}
			return time.Duration(attempts) * 10 * time.Millisecond
		}
	}
	c.clock = startClock()
	c.closing, c.cancel = context.WithCancel(context.Background())
	c.build = co.build
	if c.build == nil {
		c.build = rueidis.NewClient
	}
	c.log = co.logger()
	conn, err := c.dial(opt)
	switch {
	case err == nil:
		c.conn.Store(c.withGuard(conn))
	case co.requireRedis || !unreachable(err):
		c.cancel()
		c.clock.close()
		return nil, fmt.Errorf("cache: connect: %w", classifyErr(err))
	default:
		// Redis cannot be reached now: the caches work without it
		// (FailOpen) until the connection is made in the background.
		c.log.Warn("cache: Redis unreachable; connecting in the background", slog.String("error", err.Error()))
		c.beat.Go(func() { c.connectLater(opt) })
	}
	c.startHeartbeat()
	return c, nil
}

// ConnectOption varies [Connect].
type ConnectOption func(*connectOptions)

type connectOptions struct {
	requireRedis bool
	build        ClientBuilder
	log          *slog.Logger
}

// WithLogger makes the client and every cache built on it log, to l, what
// happens off the callers' paths, where no error reaches a caller: a load's
// write to Redis that failed, a background refresh that failed, the Redis-down
// breaker opening and closing, the server refusing client tracking (and the
// client without client-side caching taken instead), a lease taken over from a
// load that went silent, Redis unreachable at Connect and the background
// connection made. Nothing is logged on the hit path. Records at Info and above
// carry the namespace, never a key; the key of an event is logged at Debug
// only. Without WithLogger (or with a nil l) nothing is logged.
func WithLogger(l *slog.Logger) ConnectOption {
	return func(o *connectOptions) { o.log = l }
}

// logger is the logger of WithLogger, or one that discards everything.
func (o *connectOptions) logger() *slog.Logger {
	if o.log != nil {
		return o.log
	}
	return slog.New(slog.DiscardHandler)
}

// ClientBuilder builds a rueidis client from the ClientOption that [Connect]
// prepared; [rueidis.NewClient] is the one Connect uses by default.
type ClientBuilder func(rueidis.ClientOption) (rueidis.Client, error)

// WithClientBuilder makes Connect build its rueidis clients with build, so
// that the caches run on a client of the application's own: one wrapped by
// rueidishook or rueidisotel, say.
//
// aside still owns the invalidation stream: build receives the ClientOption
// Connect prepared (its OnInvalidations hook, client tracking in OPTOUT
// mode, PipelineMultiplex, RetryDelay, DisableCache) and must pass it on to
// rueidis unchanged in those fields; a client built without that hook never
// learns that Redis changed, and its caches would keep stale copies. Other
// fields may be added to. build is called for every client Connect dials:
// once for a short-lived probe (DisableCache, ForceSingleClient, no
// OnInvalidations) that asks whether the server grants client tracking, then
// for the client the caches use, and again for each attempt of a background
// connection. An error of build fails Connect (wrapped; [errors.Is] finds it),
// unless it is a network error while Redis is unreachable, which Connect
// handles as it handles its own.
func WithClientBuilder(build ClientBuilder) ConnectOption {
	return func(o *connectOptions) { o.build = build }
}

// RequireRedis makes Connect fail when Redis cannot be reached, instead of
// returning a client that connects in the background.
func RequireRedis() ConnectOption {
	return func(o *connectOptions) { o.requireRedis = true }
}

// dial connects a rueidis client: with tracking when the server grants it,
// without it otherwise.
func (c *Client) dial(opt rueidis.ClientOption) (*connection, error) {
	if !opt.DisableCache {
		ok, err := c.trackingAllowed(opt)
		if err != nil {
			return nil, err
		}
		if !ok {
			c.log.Warn("cache: the server refused client tracking (RESP3 or CLIENT TRACKING); connecting without client-side caching: no copies in process memory, every Get reads Redis")
		}
		opt.DisableCache = !ok
	}
	if opt.DisableCache {
		// Without tracking no invalidation is ever pushed, and no copy
		// is kept to drop. A connection with a hook runs all its commands
		// through rueidis' writer and reader goroutines, where one without
		// answers a lone caller on the caller's goroutine (as a
		// hand-written client does), a hand-off less per round trip.
		opt.OnInvalidations = c.userHook
	}
	rc, err := c.newClient(opt)
	if err != nil && errors.Is(err, rueidis.ErrNoCache) && !opt.DisableCache {
		c.log.Warn("cache: the server refused client tracking (RESP3 or CLIENT TRACKING); connecting without client-side caching: no copies in process memory, every Get reads Redis",
			slog.String("error", err.Error()))
		opt.DisableCache = true
		opt.OnInvalidations = c.userHook
		rc, err = c.newClient(opt)
	}
	if err != nil {
		return nil, err
	}
	dialAll(rc, opt.PipelineMultiplex)
	conn := &connection{rc: rc, tracking: !opt.DisableCache, blockingPipeline: opt.BlockingPipeline}
	if conn.blockingPipeline == 0 {
		conn.blockingPipeline = rueidis.DefaultBlockingPipeline
	}
	if rc.Mode() != rueidis.ClientModeCluster {
		// Not on a cluster: rueidis sends a pipeline that holds a
		// transaction to one node only (every key of one slot), and while
		// a slot moves, Valkey answers -ASK to the EXEC of a key already
		// moved, which rueidis then sends alone to the target ("EXEC
		// without MULTI"): the write would fail and leave its lease, where
		// the script is redirected whole.
		conn.cas.Store(uint32(serverCAS(rc)))
	}
	return conn, nil
}

// newClient builds a rueidis client with the application's builder.
func (c *Client) newClient(opt rueidis.ClientOption) (rueidis.Client, error) {
	rc, err := c.build(opt)
	if err == nil && rc == nil {
		err = errors.New("the client builder returned neither a client nor an error")
	}
	return rc, err
}

// unreachable reports whether a failed dial means Redis cannot be reached
// (as opposed to refusing the client: bad credentials, say).
func unreachable(err error) bool {
	var re *rueidis.RedisError
	if errors.As(err, &re) {
		return false // Redis answered
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, context.DeadlineExceeded)
}

// connectLater dials until it connects or the client closes, backing off
// from connectRetryMin to connectRetryMax.
func (c *Client) connectLater(opt rueidis.ClientOption) {
	retry := backoff{next: connectRetryMin, max: connectRetryMax}
	for retry.wait(c.closing) {
		conn, err := c.dial(opt)
		if err != nil {
			c.log.Debug("cache: background connection to Redis failed; retrying", slog.String("error", err.Error()))
		}
		if err == nil {
			c.connMu.Lock()
			if c.closing.Err() != nil {
				c.connMu.Unlock()
				conn.rc.Close()
				return
			}
			c.conn.Store(c.withGuard(conn))
			c.connMu.Unlock()
			c.log.Info("cache: connected to Redis in the background", slog.Bool("tracking", conn.tracking))
			// Nothing was tracked before: no copy exists to drop.
			c.heartbeat()
			return
		}
	}
}

const (
	connectRetryMin = 50 * time.Millisecond
	connectRetryMax = 2 * time.Second
)

// trackingAllowed asks the server, over one connection of a client without
// tracking, whether it grants client tracking (RESP3 and CLIENT TRACKING ON).
// Asking first, rather than letting rueidis.NewClient fail with ErrNoCache and
// building again, matters: a client that fails so leaves a cluster-topology
// refresh behind, which later dials a connection that nothing ever closes.
func (c *Client) trackingAllowed(opt rueidis.ClientOption) (bool, error) {
	probe := opt
	probe.DisableCache = true
	probe.ForceSingleClient = true
	probe.OnInvalidations = nil
	probe.ClientTrackingOptions = nil
	rc, err := c.newClient(probe)
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
// With one connection per node (multiplex < 0, aside's default) a PING to
// each node, one after the other, dials them all: probes sent at once would
// move every connection's rueidis pipe to its background goroutines for good,
// where one used by a lone caller answers on the caller's goroutine. Errors
// are left to the commands that follow.
func dialAll(rc rueidis.Client, multiplex int) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if multiplex < 0 {
		for _, n := range rc.Nodes() {
			_ = n.Do(ctx, n.B().Ping().Build()).Error()
		}
		return
	}
	var wg sync.WaitGroup
	for i := range dialProbes {
		wg.Go(func() {
			_ = rc.Do(ctx, rc.B().Exists().Key("aside-connect:"+strconv.Itoa(i)).Build()).Error()
		})
	}
	wg.Wait()
}

// dialProbes is how many keyed commands dialAll sends: with 4 connections
// per node (the most rueidis opens when PipelineMultiplex is left to it; aside
// asks for one) the chance that one is never picked is below 1e-7. An
// application that sets PipelineMultiplex higher may leave some undialled.
const dialProbes = 64

// DefaultMaxRetries is how many times a read command is retried on a network
// error when the ClientOption given to [Connect] sets no RetryDelay.
const DefaultMaxRetries = 3

// ConnectURL is [Connect] for a Redis URL, so that the common case needs no
// rueidis.ClientOption:
//
//	redis://[user:password@]host:port[/db]
//	rediss://...                                   (TLS)
//	redis://host1:port1?addr=host2:port2&addr=...  (a cluster's seeds)
//	unix://[user:password@]/path/to/redis.sock[?db=N]
//
// (rueidis.ParseURL reads it; see its doc for the other query parameters).
// A URL that asks to skip TLS verification (skip_verify) is refused: build
// the ClientOption yourself if you mean it. An unreadable URL fails with an
// error wrapping [ErrInvalidOptions] that does not repeat the URL, which
// may hold a password.
func ConnectURL(url string, opts ...ConnectOption) (*Client, error) {
	opt, err := rueidis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("cache: %w: URL: %s", ErrInvalidOptions, redactURLError(err, url))
	}
	if opt.TLSConfig != nil && opt.TLSConfig.InsecureSkipVerify {
		return nil, fmt.Errorf("cache: %w: URL: skip_verify turns off TLS verification; build the rueidis.ClientOption yourself if you mean it", ErrInvalidOptions)
	}
	return Connect(opt, opts...)
}

// redactURLError is err's text without url, whose password it may hold.
func redactURLError(err error, url string) string {
	return strings.ReplaceAll(err.Error(), url, "<url>")
}
