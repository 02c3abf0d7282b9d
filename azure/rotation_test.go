package azure_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aside-go/aside/azure"
	"github.com/aside-go/aside/internal/redistest"
)

// Token lifetimes in the rotation tests: short enough that every connection
// must re-authenticate several times within a run (at 70-80% of 4 s), and
// long enough that a correct client has about a second to spare, even on a
// loaded machine, before the harness closes connections on expired tokens.
const (
	tokenLife      = 4 * time.Second
	rotateInterval = time.Second
)

// idp plays both Microsoft Entra ID and the server's side of token
// validation. Every rotateInterval it mints a token (a JWT with an oid and an
// exp claim) that lives tokenLife, makes the server accept it (ACL SETUSER
// <oid> >token) and hands it out from then on; once a token has expired it
// closes the connections still authenticated with it (CLIENT KILL USER) and
// removes it (ACL DELUSER), as Azure closes a connection whose token expires
// unless the connection has sent AUTH with a fresher one.
//
// Each token is minted for its own oid, whereas a real identity keeps one oid
// for life. That is what lets the server tell which connections still run on
// an old token: AUTH moves a connection to the new token's user, visible as
// user= in CLIENT LIST, while one user whose password changes would look the
// same before and after. It also checks that the user name is read from every
// token rather than remembered from the first.
type idp struct {
	nodes  []*redistest.Server
	prefix string

	mu        sync.Mutex
	gen       int
	current   azcore.AccessToken
	live      []minted // tokens not yet expired, oldest first
	mintedAt  map[string]time.Time
	requests  int
	badScopes [][]string
	// admin counts the harness's own commands per node: each opens a
	// connection that sends AUTH, which INFO commandstats counts too.
	admin map[*redistest.Server]int
}

type minted struct {
	oid string
	exp time.Time
}

func newIdP(nodes []*redistest.Server, prefix string) *idp {
	return &idp{nodes: nodes, prefix: prefix, mintedAt: make(map[string]time.Time), admin: make(map[*redistest.Server]int)}
}

// do runs an administration command on node n.
func (p *idp) do(ctx context.Context, n *redistest.Server, args ...string) (string, error) {
	p.mu.Lock()
	p.admin[n]++
	p.mu.Unlock()
	return n.Do(ctx, args...)
}

// GetToken returns the current token, as a real credential returns a cached
// token until it is due for renewal.
func (p *idp) GetToken(_ context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests++
	if !slices.Equal(opts.Scopes, []string{azure.Scope}) {
		p.badScopes = append(p.badScopes, opts.Scopes)
	}
	return p.current, nil
}

// rotate mints the next token and makes every node accept it before it is
// handed out.
func (p *idp) rotate(ctx context.Context) error {
	p.mu.Lock()
	p.gen++
	oid := fmt.Sprintf("%s-%d", p.prefix, p.gen)
	p.mu.Unlock()
	now := time.Now()
	exp := now.Add(tokenLife)
	tok := newJWT(map[string]any{"oid": oid, "exp": exp.Unix()})
	for _, n := range p.nodes {
		if _, err := p.do(ctx, n, "ACL", "SETUSER", oid, "on", ">"+tok, "~*", "&*", "+@all"); err != nil {
			return err
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.current = azcore.AccessToken{Token: tok, ExpiresOn: exp}
	p.live = append(p.live, minted{oid, exp})
	p.mintedAt[oid] = now
	return nil
}

// expire ends every token past its expiry and returns how many connections
// were still authenticated with one: each is a connection that failed to
// re-authenticate in time.
func (p *idp) expire(ctx context.Context) (killed int, err error) {
	now := time.Now()
	p.mu.Lock()
	var due []minted
	for len(p.live) > 0 && !p.live[0].exp.After(now) {
		due = append(due, p.live[0])
		p.live = p.live[1:]
	}
	p.mu.Unlock()
	for _, m := range due {
		for _, n := range p.nodes {
			out, err := p.do(ctx, n, "CLIENT", "KILL", "USER", m.oid)
			if err != nil {
				return killed, err
			}
			k, err := strconv.Atoi(out)
			if err != nil {
				return killed, fmt.Errorf("CLIENT KILL answered %q", out)
			}
			killed += k
			if _, err := p.do(ctx, n, "ACL", "DELUSER", m.oid); err != nil {
				return killed, err
			}
		}
	}
	return killed, nil
}

// load runs commands from several goroutines and counts the failures.
type load struct {
	ops, failures, incrs atomic.Int64
	mu                   sync.Mutex
	errs                 []error // the first few failures
}

func (l *load) fail(err error) {
	l.failures.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) < 5 {
		l.errs = append(l.errs, err)
	}
}

// run keeps workers busy until stop is closed: writes and reads through the
// auto-pipelined connections, cached reads (client-side caching is on), and
// blocking commands, which use pooled connections of their own.
func (l *load) run(client rueidis.Client, prefix string, workers int, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			key := fmt.Sprintf("%s:w%d", prefix, w)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				l.step(client, prefix, key, w, i)
			}
		})
	}
	return &wg
}

// step is one round of the load. Its commands are pinned (never recycled by
// rueidis): with connections killed mid-load, the race detector once
// reported rueidis handing this goroutine a recycled command slice that the
// background writer of a killed connection had last read, without an
// ordering between the two that it could see (rueidis v1.0.79,
// TestRotationHarnessCatchesMissingRefresh in CI).
func (l *load) step(client rueidis.Client, prefix, key string, w, i int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l.ops.Add(1)
	val := strconv.Itoa(i)
	if err := client.Do(ctx, client.B().Set().Key(key).Value(val).Build().Pin()).Error(); err != nil {
		l.fail(fmt.Errorf("SET: %w", err))
		return
	}
	got, err := client.Do(ctx, client.B().Get().Key(key).Build().Pin()).ToString()
	switch {
	case err != nil:
		l.fail(fmt.Errorf("GET: %w", err))
	case got != val:
		l.fail(fmt.Errorf("GET %s = %q, want %q", key, got, val))
	}
	if err := client.DoCache(ctx, client.B().Get().Key(key).Cache().Pin(), time.Minute).Error(); err != nil {
		l.fail(fmt.Errorf("cached GET: %w", err))
	}
	if err := client.Do(ctx, client.B().Incr().Key(prefix+":counter").Build().Pin()).Error(); err != nil {
		l.fail(fmt.Errorf("INCR: %w", err))
	} else {
		l.incrs.Add(1)
	}
	if w%2 == 0 && i%10 == 0 {
		err := client.Do(ctx, client.B().Blpop().Key(key+":queue").Timeout(0.01).Build().Pin()).Error()
		if err != nil && !rueidis.IsRedisNil(err) {
			l.fail(fmt.Errorf("BLPOP: %w", err))
		}
	}
}

// rotationResult is what one run of the harness observed.
type rotationResult struct {
	killed    int   // connections still on an expired token at its expiry
	ops       int64 // load iterations
	failures  int64
	errs      []error
	requests  int // token requests the client made
	conns     int // the client's connections at the end
	longLived int // of which older than a token's life
	reauthed  int // of which authenticated as a user minted after they opened
	authCalls int // AUTH commands the client sent (re-authentications)
}

// runRotation mints a first token, connects with connect, runs the load while
// rotating tokens rotations times, then inspects the nodes.
func runRotation(t *testing.T, nodes []*redistest.Server, prefix string, rotations int,
	connect func(azcore.TokenCredential) (rueidis.Client, error),
) rotationResult {
	t.Helper()
	ctx := testCtx(t)
	p := newIdP(nodes, prefix)
	for _, n := range nodes {
		// Zero INFO commandstats, which counts the launcher's AUTH too.
		_, err := n.Do(ctx, "CONFIG", "RESETSTAT")
		require.NoError(t, err)
	}
	require.NoError(t, p.rotate(ctx))
	client, err := connect(p)
	require.NoError(t, err)
	defer client.Close()

	var l load
	stop := make(chan struct{})
	workers := l.run(client, prefix, 6, stop)
	var res rotationResult
	ticker := time.NewTicker(rotateInterval)
	for range rotations {
		<-ticker.C
		if !assert.NoError(t, p.rotate(ctx)) {
			break
		}
		killed, err := p.expire(ctx)
		res.killed += killed
		if !assert.NoError(t, err) {
			break
		}
	}
	ticker.Stop()
	close(stop)
	workers.Wait()

	res.ops, res.failures, res.errs = l.ops.Load(), l.failures.Load(), l.errs
	p.mu.Lock()
	res.requests = p.requests
	assert.Empty(t, p.badScopes, "every token request asks for scope %s", azure.Scope)
	mintedAt := p.mintedAt
	p.mu.Unlock()

	for _, n := range nodes {
		list, err := p.do(ctx, n, "CLIENT", "LIST")
		require.NoError(t, err)
		now := time.Now()
		for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
			f := clientFields(line)
			user := f["user"]
			if !strings.HasPrefix(user, prefix+"-") {
				continue // the harness's own connection
			}
			res.conns++
			age, err := strconv.Atoi(f["age"])
			require.NoError(t, err, line)
			if time.Duration(age)*time.Second <= tokenLife {
				continue
			}
			res.longLived++
			// age is whole seconds, rounded down: the connection opened
			// at or before now-age. A user minted after that instant can
			// only be the result of AUTH on the open connection.
			if at, ok := mintedAt[user]; ok && at.After(now.Add(-time.Duration(age)*time.Second)) {
				res.reauthed++
			}
		}
		stats, err := p.do(ctx, n, "INFO", "commandstats")
		require.NoError(t, err)
		p.mu.Lock()
		res.authCalls += commandCalls(stats, "auth") - p.admin[n]
		p.mu.Unlock()
	}
	if res.failures == 0 {
		total, err := client.Do(ctx, client.B().Get().Key(prefix+":counter").Build()).AsInt64()
		require.NoError(t, err)
		assert.Equal(t, l.incrs.Load(), total, "every INCR that succeeded was applied once")
	}
	return res
}

// clientFields parses a line of CLIENT LIST: "id=7 addr=... user=x ...".
func clientFields(line string) map[string]string {
	f := make(map[string]string)
	for _, kv := range strings.Fields(line) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			f[k] = v
		}
	}
	return f
}

// commandCalls reads calls=N of one command from INFO commandstats.
func commandCalls(stats, cmd string) int {
	for _, line := range strings.Split(stats, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":calls=")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
		return n
	}
	return 0
}

// TestEntraIDTokenRotation rotates the token every second for 12 seconds
// while goroutines run commands, and closes every connection that is still on
// an expired token. With every connection re-authenticating before its token
// expires, no command fails and no connection is closed.
func TestEntraIDTokenRotation(t *testing.T) {
	t.Parallel()
	const rotations = 12

	check := func(t *testing.T, res rotationResult) {
		t.Logf("%d load iterations, %d failures, %d connections killed on an expired token, "+
			"%d token requests, %d connections at the end (%d older than a token, %d of them re-authenticated), %d AUTH commands",
			res.ops, res.failures, res.killed, res.requests, res.conns, res.longLived, res.reauthed, res.authCalls)
		assert.Zero(t, res.failures, "commands failed, the first: %v", res.errs)
		assert.Zero(t, res.killed, "connections were still on an expired token")
		assert.Positive(t, res.ops)
		require.Positive(t, res.longLived, "connections lived through several tokens")
		assert.Equal(t, res.longLived, res.reauthed, "every connection older than a token re-authenticated on the open connection")
		// A connection re-authenticates at least once per 80% of a token's
		// life: about 4 times in the run for those that lived through it.
		assert.GreaterOrEqual(t, res.authCalls, 3*res.longLived)
		// Connections share tokens: a handful of requests per rotation at
		// most, not one per connection per refresh.
		assert.GreaterOrEqual(t, res.requests, rotations/3)
		assert.LessOrEqual(t, res.requests, 2*rotations+2)
	}

	t.Run("standalone", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, redistest.Config{Password: "admin"})
		res := runRotation(t, []*redistest.Server{srv}, "standalone", rotations, func(cred azcore.TokenCredential) (rueidis.Client, error) {
			o := serverOptions(t, srv)
			o.Credential = cred
			return azure.NewClient(testCtx(t), o)
		})
		check(t, res)
	})

	// Under the OSS policy the client reaches every shard, by the IP the
	// cluster reports, with the server name of the host; each shard needs
	// its own AUTH on each connection.
	t.Run("oss cluster", func(t *testing.T) {
		t.Parallel()
		cluster := redistest.StartCluster(t, redistest.ClusterConfig{
			Primaries: 3,
			Server:    redistest.Config{TLS: true, TLSHosts: []string{testHost}, Password: "admin"},
		})
		nodes := cluster.Nodes()
		res := runRotation(t, nodes, "cluster", rotations, func(cred azcore.TokenCredential) (rueidis.Client, error) {
			o := serverOptions(t, nodes[0])
			o.Credential = cred
			o.Clustering = azure.OSS
			return azure.NewClient(testCtx(t), o)
		})
		check(t, res)
		assert.GreaterOrEqual(t, res.conns, len(nodes), "a connection to every shard")
	})
}

// TestRotationHarnessCatchesMissingRefresh runs the harness against a client
// that drops RefreshAfter, so that its connections never re-authenticate:
// the harness must see them on an expired token. This is what makes the zero
// counts of TestEntraIDTokenRotation mean something.
func TestRotationHarnessCatchesMissingRefresh(t *testing.T) {
	t.Parallel()
	srv := startServer(t, redistest.Config{Password: "admin"})
	res := runRotation(t, []*redistest.Server{srv}, "norefresh", 5, func(cred azcore.TokenCredential) (rueidis.Client, error) {
		o := serverOptions(t, srv)
		o.Credential = cred
		opt, err := azure.ClientOption(testCtx(t), o)
		if err != nil {
			return nil, err
		}
		fn := opt.AuthCredentialsFn
		opt.AuthCredentialsFn = func(c rueidis.AuthCredentialsContext) (rueidis.AuthCredentials, error) {
			creds, err := fn(c)
			creds.RefreshAfter = time.Time{}
			return creds, err
		}
		return rueidis.NewClient(opt)
	})
	t.Logf("without RefreshAfter: %d connections killed on an expired token, %d failures (%v)", res.killed, res.failures, errors.Join(res.errs...))
	assert.Positive(t, res.killed, "connections that never re-authenticate are found on an expired token")
	assert.Zero(t, res.authCalls, "nothing re-authenticated")
}
