package redistest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

const (
	// sentinelTimeout bounds how long a new group may take until every
	// Sentinel knows the primary, its replicas and the other Sentinels. The
	// Sentinels meet through the primary's hello channel every 2s.
	sentinelTimeout = 30 * time.Second
	// defaultDownAfter is down-after-milliseconds when SentinelConfig leaves
	// DownAfter 0.
	defaultDownAfter = 2 * time.Second
	// defaultFailoverTimeout is failover-timeout when SentinelConfig leaves
	// FailoverTimeout 0.
	defaultFailoverTimeout = 5 * time.Second
)

// SentinelConfig describes a primary, its replicas and the Sentinels that
// watch them.
type SentinelConfig struct {
	// MasterSet is the name the Sentinels monitor the primary under. Empty
	// means "aside".
	MasterSet string
	// Replicas is the number of replicas of the primary. 0 means 1.
	Replicas int
	// Sentinels is the number of Sentinels. 0 means 3.
	Sentinels int
	// Quorum is how many Sentinels must agree that the primary is down. 0
	// means a majority of the Sentinels.
	Quorum int
	// DownAfter is down-after-milliseconds: how long the primary may not
	// answer before a Sentinel considers it down. 0 means 2s.
	DownAfter time.Duration
	// FailoverTimeout is failover-timeout. 0 means 5s.
	FailoverTimeout time.Duration
	// Server is applied to the primary and the replicas (Password included:
	// the replicas and the Sentinels authenticate with it). TLS is not
	// supported. The Sentinels run the same binary, with redis-server's
	// --sentinel, and no password.
	Server Config
}

// Sentinel is a primary, its replicas and the Sentinels that watch them, each
// a [Server] of its own on a free loopback port.
type Sentinel struct {
	cfg       SentinelConfig
	data      []*Server // the primary as created first, then the replicas
	sentinels []*Server
}

// sentinelOptions makes a server a Sentinel monitoring one primary.
type sentinelOptions struct {
	cfg        SentinelConfig
	masterPort int
}

// sentinelArgs puts the configuration file first (redis-server reads a file
// only as its first argument, and a Sentinel needs one it can rewrite) and
// asks for Sentinel mode. The file is written once: after a Restart the
// Sentinel goes on with what it rewrote there (the current primary, the
// replicas and Sentinels it learned).
func (s *Server) sentinelArgs(args []string) ([]string, error) {
	conf := filepath.Join(s.dir, "sentinel.conf")
	if _, err := os.Stat(conf); errors.Is(err, os.ErrNotExist) {
		o := s.sentinel
		set := o.cfg.MasterSet
		text := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d %d\n", set, o.masterPort, o.cfg.Quorum) +
			fmt.Sprintf("sentinel down-after-milliseconds %s %d\n", set, o.cfg.DownAfter.Milliseconds()) +
			fmt.Sprintf("sentinel failover-timeout %s %d\n", set, o.cfg.FailoverTimeout.Milliseconds()) +
			fmt.Sprintf("sentinel parallel-syncs %s 1\n", set)
		if o.cfg.Server.Password != "" {
			text += fmt.Sprintf("sentinel auth-pass %s %s\n", set, o.cfg.Server.Password)
		}
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			return nil, fmt.Errorf("redistest: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("redistest: %w", err)
	}
	return append([]string{conf, "--sentinel"}, args...), nil
}

// LaunchSentinel starts the primary and its replicas, waits until the
// replicas are in sync, starts the Sentinels and waits until every Sentinel
// knows the primary, every replica and every other Sentinel, so that a
// failover can begin at once. It is meant for examples and other code
// without a testing.TB; the caller must call [Sentinel.Close]. Tests use
// [StartSentinel].
func LaunchSentinel(cfg SentinelConfig) (*Sentinel, error) {
	if cfg.MasterSet == "" {
		cfg.MasterSet = "aside"
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.Sentinels == 0 {
		cfg.Sentinels = 3
	}
	if cfg.Quorum == 0 {
		cfg.Quorum = cfg.Sentinels/2 + 1
	}
	if cfg.DownAfter == 0 {
		cfg.DownAfter = defaultDownAfter
	}
	if cfg.FailoverTimeout == 0 {
		cfg.FailoverTimeout = defaultFailoverTimeout
	}
	switch {
	case cfg.Server.TLS:
		return nil, errors.New("redistest: SentinelConfig: TLS is not supported")
	case cfg.Replicas < 0 || cfg.Sentinels < 0:
		return nil, fmt.Errorf("redistest: SentinelConfig: %d replicas, %d sentinels", cfg.Replicas, cfg.Sentinels)
	case cfg.Quorum < 1 || cfg.Quorum > cfg.Sentinels:
		return nil, fmt.Errorf("redistest: SentinelConfig.Quorum %d out of range 1..%d", cfg.Quorum, cfg.Sentinels)
	case cfg.DownAfter < time.Millisecond || cfg.FailoverTimeout < time.Millisecond:
		return nil, fmt.Errorf("redistest: SentinelConfig: DownAfter %v, FailoverTimeout %v below 1ms", cfg.DownAfter, cfg.FailoverTimeout)
	}
	if _, err := cfg.Server.binary(); err != nil {
		return nil, err
	}
	g := &Sentinel{cfg: cfg}
	primary, err := launch(cfg.Server, nil, nil)
	if err != nil {
		return nil, err
	}
	g.data = append(g.data, primary)

	replicas := make([]*Server, cfg.Replicas)
	errs := make([]error, cfg.Replicas)
	rc := cfg.Server
	rc.Args = append(slices.Clone(cfg.Server.Args), "--replicaof", "127.0.0.1", strconv.Itoa(primary.Port()))
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() { replicas[i], errs[i] = launch(rc, nil, nil) })
	}
	wg.Wait()
	for _, r := range replicas {
		if r != nil {
			g.data = append(g.data, r)
		}
	}
	if err := errors.Join(errs...); err != nil {
		_ = g.Close()
		return nil, err
	}

	ctx, cancel := context.WithTimeout(context.Background(), sentinelTimeout)
	defer cancel()
	// A Sentinel learns the replicas from the primary's INFO, which it asks
	// for at once when it connects and then every 10s: the replicas must be
	// listed online before the Sentinels start.
	if err := pollUntil(ctx, g.replicasOnline); err != nil {
		_ = g.Close()
		return nil, fmt.Errorf("redistest: replicas did not sync: %w", err)
	}

	g.sentinels = make([]*Server, cfg.Sentinels)
	errs = make([]error, cfg.Sentinels)
	opts := &sentinelOptions{cfg: cfg, masterPort: primary.Port()}
	for i := range g.sentinels {
		wg.Go(func() {
			g.sentinels[i], errs[i] = launch(Config{Binary: cfg.Server.Binary}, nil, nil, func(s *Server) {
				s.sentinel = opts
			})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		_ = g.Close()
		return nil, err
	}
	if err := pollUntil(ctx, g.acquainted); err != nil {
		_ = g.Close()
		return nil, fmt.Errorf("redistest: sentinels not ready: %w", err)
	}
	return g, nil
}

// StartSentinel launches a Sentinel group for the test and closes it in
// tb.Cleanup. It fails the test at once when the group cannot start. If the
// test failed, every server's log is written to the test log at cleanup.
func StartSentinel(tb testing.TB, cfg SentinelConfig) *Sentinel {
	tb.Helper()
	g, err := LaunchSentinel(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			for _, s := range g.data {
				tb.Logf("redis-server %s log:\n%s", s.Addr(), s.Log())
			}
			for _, s := range g.sentinels {
				tb.Logf("sentinel %s log:\n%s", s.Addr(), s.Log())
			}
		}
		if err := g.Close(); err != nil {
			tb.Errorf("redistest: close sentinel group: %v", err)
		}
	})
	return g
}

// replicasOnline checks that the primary lists every replica online and
// that every replica's link to it is up.
func (g *Sentinel) replicasOnline(ctx context.Context) error {
	for _, s := range g.data[1:] {
		info, err := s.query(ctx, "INFO", "replication")
		if err != nil {
			return err
		}
		if f := fields(info); f["master_link_status"] != "up" {
			return fmt.Errorf("%s: replication link %s", s.Addr(), f["master_link_status"])
		}
	}
	info, err := g.data[0].query(ctx, "INFO", "replication")
	if err != nil {
		return err
	}
	f := fields(info)
	if f["connected_slaves"] != strconv.Itoa(len(g.data)-1) {
		return fmt.Errorf("%s: connected_slaves:%s", g.data[0].Addr(), f["connected_slaves"])
	}
	return nil
}

// acquainted checks that every Sentinel monitors a master that is not down,
// with every replica and every other Sentinel known.
func (g *Sentinel) acquainted(ctx context.Context) error {
	for _, s := range g.sentinels {
		m, err := g.masterState(ctx, s)
		if err != nil {
			return err
		}
		switch {
		case m["flags"] != "master":
			return fmt.Errorf("sentinel %s: master flags %q", s.Addr(), m["flags"])
		case m["num-slaves"] != strconv.Itoa(len(g.data)-1):
			return fmt.Errorf("sentinel %s: knows %s of %d replicas", s.Addr(), m["num-slaves"], len(g.data)-1)
		case m["num-other-sentinels"] != strconv.Itoa(len(g.sentinels)-1):
			return fmt.Errorf("sentinel %s: knows %s of %d other sentinels", s.Addr(), m["num-other-sentinels"], len(g.sentinels)-1)
		}
		v, err := s.query(ctx, "SENTINEL", "REPLICAS", g.cfg.MasterSet)
		if err != nil {
			return err
		}
		list, _ := v.([]any)
		for _, e := range list {
			r := pairs(e)
			if r["flags"] != "slave" || r["master-link-status"] != "ok" {
				return fmt.Errorf("sentinel %s: replica %s:%s flags %q, link %q", s.Addr(), r["ip"], r["port"], r["flags"], r["master-link-status"])
			}
		}
	}
	return nil
}

// masterState is SENTINEL MASTER of the group's master set, as a map.
func (g *Sentinel) masterState(ctx context.Context, s *Server) (map[string]string, error) {
	v, err := s.query(ctx, "SENTINEL", "MASTER", g.cfg.MasterSet)
	if err != nil {
		return nil, err
	}
	return pairs(v), nil
}

// pairs reads a flat array of field names and values (RESP2 maps).
func pairs(v any) map[string]string {
	list, _ := v.([]any)
	m := make(map[string]string, len(list)/2)
	for i := 0; i+1 < len(list); i += 2 {
		m[asString(list[i])] = asString(list[i+1])
	}
	return m
}

// Master returns the data server that every running Sentinel names as the
// master (SENTINEL GET-MASTER-ADDR-BY-NAME), or an error when they disagree
// or name no server of the group.
func (g *Sentinel) Master(ctx context.Context) (*Server, error) {
	var addr string
	for _, s := range g.sentinels {
		if !s.running() {
			continue
		}
		v, err := s.query(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", g.cfg.MasterSet)
		if err != nil {
			return nil, err
		}
		parts, _ := v.([]any)
		if len(parts) != 2 {
			return nil, fmt.Errorf("sentinel %s: GET-MASTER-ADDR-BY-NAME answered %v", s.Addr(), v)
		}
		a := asString(parts[0]) + ":" + asString(parts[1])
		if addr != "" && a != addr {
			return nil, fmt.Errorf("sentinels disagree on the master: %s and %s", addr, a)
		}
		addr = a
	}
	if addr == "" {
		return nil, errors.New("redistest: no sentinel is running")
	}
	for _, s := range g.data {
		if s.Addr() == addr {
			return s, nil
		}
	}
	return nil, fmt.Errorf("sentinels name %s, not a server of the group", addr)
}

// settled checks what Wait waits for and returns the master.
func (g *Sentinel) settled(ctx context.Context) (*Server, error) {
	m, err := g.Master(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range g.sentinels {
		if !s.running() {
			continue
		}
		st, err := g.masterState(ctx, s)
		if err != nil {
			return nil, err
		}
		if st["flags"] != "master" {
			return nil, fmt.Errorf("sentinel %s: master flags %q", s.Addr(), st["flags"])
		}
	}
	if !m.running() {
		return nil, fmt.Errorf("the master %s is not running", m.Addr())
	}
	info, err := m.query(ctx, "INFO", "replication")
	if err != nil {
		return nil, err
	}
	if f := fields(info); f["role"] != "master" {
		return nil, fmt.Errorf("the master %s reports role %s", m.Addr(), f["role"])
	}
	return m, nil
}

// Wait polls until every running Sentinel names the same master, none of
// them sees it down or a failover in progress, and that server is running
// and reports itself master. It returns the master. An old primary that
// was not killed may still report itself master for some seconds after a
// failover, until the Sentinels turn it into a replica; clients that follow
// the Sentinels no longer talk to it.
func (g *Sentinel) Wait(ctx context.Context) (*Server, error) {
	var m *Server
	err := pollUntil(ctx, func(ctx context.Context) error {
		var err error
		m, err = g.settled(ctx)
		return err
	})
	return m, err
}

// WaitFailover is Wait for a master other than old.
func (g *Sentinel) WaitFailover(ctx context.Context, old *Server) (*Server, error) {
	var m *Server
	err := pollUntil(ctx, func(ctx context.Context) error {
		var err error
		if m, err = g.settled(ctx); err != nil {
			return err
		}
		if m == old {
			return fmt.Errorf("the master is still %s", old.Addr())
		}
		return nil
	})
	return m, err
}

// Failover asks a Sentinel for a failover (SENTINEL FAILOVER: no agreement
// needed, the master need not be down) and waits until it settled
// ([Sentinel.WaitFailover]). It returns the new master.
func (g *Sentinel) Failover(ctx context.Context) (*Server, error) {
	old, err := g.Wait(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := g.sentinels[0].Do(ctx, "SENTINEL", "FAILOVER", g.cfg.MasterSet); err != nil {
		return nil, err
	}
	return g.WaitFailover(ctx, old)
}

// Servers returns the primary and the replicas as created: the first one
// was the primary at the start; a failover changes the roles.
func (g *Sentinel) Servers() []*Server { return slices.Clone(g.data) }

// Sentinels returns the Sentinels.
func (g *Sentinel) Sentinels() []*Server { return slices.Clone(g.sentinels) }

// MasterSet is the name the Sentinels monitor the primary under.
func (g *Sentinel) MasterSet() string { return g.cfg.MasterSet }

// Addrs returns the Sentinels' addresses.
func (g *Sentinel) Addrs() []string {
	addrs := make([]string, len(g.sentinels))
	for i, s := range g.sentinels {
		addrs[i] = s.Addr()
	}
	return addrs
}

// ClientOption is what a rueidis client needs to reach the current master
// through the Sentinels: their addresses, the master set, and the data
// servers' password.
func (g *Sentinel) ClientOption() rueidis.ClientOption {
	return rueidis.ClientOption{
		InitAddress: g.Addrs(),
		Password:    g.cfg.Server.Password,
		Sentinel:    rueidis.SentinelOption{MasterSet: g.cfg.MasterSet},
	}
}

// Close closes the Sentinels first (so that none acts on the others going
// away), then the data servers, and returns their errors joined.
func (g *Sentinel) Close() error {
	var errs []error
	closeAll := func(list []*Server) {
		out := make([]error, len(list))
		var wg sync.WaitGroup
		for i, s := range list {
			if s != nil {
				wg.Go(func() { out[i] = s.Close() })
			}
		}
		wg.Wait()
		errs = append(errs, out...)
	}
	closeAll(g.sentinels)
	closeAll(g.data)
	return errors.Join(errs...)
}

// pollUntil runs check until it succeeds or ctx ends, then returns the last
// failure. Each attempt has a second at most.
func pollUntil(ctx context.Context, check func(context.Context) error) error {
	for {
		attempt, cancel := context.WithTimeout(ctx, time.Second)
		err := check(attempt)
		cancel()
		if err == nil {
			return nil
		}
		t := time.NewTimer(clusterPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: %w", ctx.Err(), err)
		case <-t.C:
		}
	}
}
