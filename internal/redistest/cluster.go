package redistest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

const (
	// slotCount is the number of hash slots of Redis Cluster.
	slotCount = 16384
	// clusterTimeout bounds how long a new cluster may take to agree on its
	// topology. A local cluster needs a second or two.
	clusterTimeout = 30 * time.Second
	// clusterPoll is the pause between topology checks.
	clusterPoll = 50 * time.Millisecond
	// defaultNodeTimeout is cluster-node-timeout when ClusterConfig leaves it 0.
	defaultNodeTimeout = 5 * time.Second
)

// ClusterConfig describes a local Redis Cluster.
type ClusterConfig struct {
	// Primaries is the number of primaries, which share the 16384 slots
	// evenly. 0 means 3.
	Primaries int
	// Replicas is the number of replicas of each primary. 0 means none.
	Replicas int
	// Server is applied to every node. With TLS, all nodes share one CA and one
	// certificate, and the cluster bus and replication use TLS too.
	Server Config
	// NodeTimeout is cluster-node-timeout: how long a node may be unreachable
	// before it is considered failed (and a replica takes over). 0 means 5s.
	NodeTimeout time.Duration
}

// Cluster is a local Redis Cluster: one [Server] per node.
type Cluster struct {
	cfg       ClusterConfig
	certs     *certs
	nodes     []*Server // primaries first, then replicas grouped by primary
	primaries []*Server
	// replicaOf maps each replica, by index in nodes, to its primary's index as
	// created; roles may change later through failover.
	replicaOf map[int]int
}

// LaunchCluster starts the nodes, assigns the slots, joins the nodes and
// attaches the replicas, then waits until every node agrees on the complete
// topology. It is meant for examples and other code without a testing.TB; the
// caller must call [Cluster.Close]. Tests use [StartCluster].
func LaunchCluster(cfg ClusterConfig) (*Cluster, error) {
	if cfg.Primaries == 0 {
		cfg.Primaries = 3
	}
	if cfg.NodeTimeout == 0 {
		cfg.NodeTimeout = defaultNodeTimeout
	}
	switch {
	case cfg.Primaries < 0 || cfg.Primaries > slotCount:
		return nil, fmt.Errorf("redistest: ClusterConfig.Primaries %d out of range 1..%d", cfg.Primaries, slotCount)
	case cfg.Replicas < 0:
		return nil, fmt.Errorf("redistest: ClusterConfig.Replicas %d is negative", cfg.Replicas)
	case cfg.NodeTimeout < time.Millisecond:
		return nil, fmt.Errorf("redistest: ClusterConfig.NodeTimeout %v below 1ms", cfg.NodeTimeout)
	}
	if _, err := cfg.Server.binary(); err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, replicaOf: make(map[int]int)}
	if cfg.Server.TLS {
		var err error
		if c.certs, err = newCerts(cfg.Server.TLSHosts); err != nil {
			return nil, err
		}
	}

	n := cfg.Primaries * (1 + cfg.Replicas)
	c.nodes = make([]*Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c.nodes[i], errs[i] = launch(cfg.Server, c.certs, &nodeOptions{nodeTimeout: cfg.NodeTimeout})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		_ = c.Close()
		return nil, err
	}
	c.primaries = c.nodes[:cfg.Primaries]
	for i := cfg.Primaries; i < n; i++ {
		c.replicaOf[i] = (i - cfg.Primaries) / cfg.Replicas
	}

	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	if err := c.create(ctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// StartCluster launches a cluster for the test and closes it in tb.Cleanup. It
// fails the test at once when the cluster cannot start. If the test failed, the
// nodes' logs are written to the test log at cleanup.
func StartCluster(tb testing.TB, cfg ClusterConfig) *Cluster {
	tb.Helper()
	c, err := LaunchCluster(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			for _, s := range c.nodes {
				tb.Logf("redis-server %s log:\n%s", s.Addr(), s.Log())
			}
		}
		if err := c.Close(); err != nil {
			tb.Errorf("redistest: close cluster: %v", err)
		}
	})
	return c
}

// create turns the started nodes into one cluster, as redis-cli --cluster create
// does.
func (c *Cluster) create(ctx context.Context) error {
	// Distinct config epochs from the start spare the nodes the collision
	// resolution they would otherwise run, and give failovers a clean order.
	for i, s := range c.nodes {
		if _, err := s.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", strconv.Itoa(i+1)); err != nil {
			return err
		}
	}
	p := len(c.primaries)
	for i, s := range c.primaries {
		lo, hi := i*slotCount/p, (i+1)*slotCount/p-1
		if _, err := s.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(lo), strconv.Itoa(hi)); err != nil {
			return err
		}
	}
	// Every pair meets directly instead of one node meeting all and gossip
	// introducing the rest, which takes seconds. The bus port is given explicitly
	// since it is not port+10000.
	for i, a := range c.nodes {
		for _, b := range c.nodes[i+1:] {
			if err := a.meet(ctx, b); err != nil {
				return err
			}
		}
	}
	// CLUSTER REPLICATE needs the primary to be known to the replica, as a
	// complete node rather than a handshake in progress.
	if err := c.poll(ctx, c.allKnown); err != nil {
		return fmt.Errorf("redistest: cluster nodes did not meet: %w", err)
	}
	ids := make([]string, p)
	for i, s := range c.primaries {
		id, err := s.Do(ctx, "CLUSTER", "MYID")
		if err != nil {
			return err
		}
		ids[i] = id
	}
	replicas := c.nodes[p:]
	for i, s := range replicas {
		if _, err := s.Do(ctx, "CLUSTER", "REPLICATE", ids[c.replicaOf[p+i]]); err != nil {
			return err
		}
	}
	if len(replicas) > 0 {
		if err := c.announceReplicas(ctx); err != nil {
			return err
		}
	}
	if err := c.poll(ctx, c.checkCreated); err != nil {
		return fmt.Errorf("redistest: cluster not ready: %w", err)
	}
	return nil
}

// announceReplicas gets the replicas into every node's CLUSTER SLOTS quickly.
//
// A node lists a replica there only once it knows the replica is one and has a
// replication offset above zero (Redis 7 hides replicas that never received
// anything). Left alone, that takes until the primary's next replication PING
// (repl-ping-replica-period, 10 s) and then until the next cluster ping carries
// the new offset (up to node-timeout/2). Instead: once the replicas are synced,
// each primary runs FUNCTION FLUSH, a no-op on a new cluster that is still
// replicated and so moves the offset; then each replica meets every node again,
// which sends its header (role and offset) at once. A MEET from a known node is
// handled as a PING and the duplicate handshake is dropped.
func (c *Cluster) announceReplicas(ctx context.Context) error {
	replicas := c.nodes[len(c.primaries):]
	linked := func(ctx context.Context) error {
		for _, s := range replicas {
			info, err := s.query(ctx, "INFO", "replication")
			if err != nil {
				return err
			}
			if f := fields(info); f["master_link_status"] != "up" {
				return fmt.Errorf("%s: replication link %s", s.Addr(), f["master_link_status"])
			}
		}
		return nil
	}
	if err := c.poll(ctx, linked); err != nil {
		return fmt.Errorf("redistest: replicas did not sync: %w", err)
	}
	for _, s := range c.primaries {
		if _, err := s.Do(ctx, "FUNCTION", "FLUSH", "SYNC"); err != nil {
			return err
		}
	}
	moved := func(ctx context.Context) error {
		for _, s := range replicas {
			info, err := s.query(ctx, "INFO", "replication")
			if err != nil {
				return err
			}
			if f := fields(info); f["slave_repl_offset"] == "0" || f["slave_repl_offset"] == "" {
				return fmt.Errorf("%s: replication offset %q", s.Addr(), f["slave_repl_offset"])
			}
		}
		return nil
	}
	if err := c.poll(ctx, moved); err != nil {
		return fmt.Errorf("redistest: replication offset did not move: %w", err)
	}
	for _, s := range replicas {
		for _, o := range c.nodes {
			if o != s {
				if err := s.meet(ctx, o); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// meet asks s to join o with CLUSTER MEET.
func (s *Server) meet(ctx context.Context, o *Server) error {
	_, err := s.Do(ctx, "CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(o.Port()), strconv.Itoa(o.node.busPort))
	return err
}

// allKnown checks that every node knows every other node completely.
func (c *Cluster) allKnown(ctx context.Context) error {
	for _, s := range c.nodes {
		text, err := s.Do(ctx, "CLUSTER", "NODES")
		if err != nil {
			return err
		}
		lines := strings.Split(strings.TrimSpace(text), "\n")
		if len(lines) != len(c.nodes) {
			return fmt.Errorf("%s knows %d of %d nodes", s.Addr(), len(lines), len(c.nodes))
		}
		for _, l := range lines {
			if f := strings.Fields(l); len(f) < 3 || strings.Contains(f[2], "handshake") || strings.Contains(f[2], "noaddr") {
				return fmt.Errorf("%s: node not known completely yet: %q", s.Addr(), l)
			}
		}
	}
	return nil
}

// checkCreated is check plus the planned layout: each planned primary serves its
// slots, with all its replicas.
func (c *Cluster) checkCreated(ctx context.Context) error {
	ranges, err := c.check(ctx)
	if err != nil {
		return err
	}
	want := make(map[string][]string, len(c.primaries))
	for i, s := range c.primaries {
		want[s.Addr()] = nil
		for r, p := range c.replicaOf {
			if p == i {
				want[s.Addr()] = append(want[s.Addr()], c.nodes[r].Addr())
			}
		}
		slices.Sort(want[s.Addr()])
	}
	for _, r := range ranges {
		replicas, ok := want[r.primary]
		if !ok {
			return fmt.Errorf("slots %d-%d served by %s, not a planned primary", r.start, r.end, r.primary)
		}
		if !slices.Equal(r.replicas, replicas) {
			return fmt.Errorf("slots %d-%d: replicas %v, want %v", r.start, r.end, r.replicas, replicas)
		}
	}
	return nil
}

// Wait polls until every running node reports cluster_state:ok with all 16384
// slots served, all of them return the same CLUSTER SLOTS map, every running
// node appears in that map, every node's CLUSTER SHARDS shows a client the
// nodes of that map (see shards.go) and every replica's link to its primary is
// up. Use it
// after killing or restarting nodes. A paused node makes it wait until ctx ends.
func (c *Cluster) Wait(ctx context.Context) error {
	return c.poll(ctx, func(ctx context.Context) error {
		_, err := c.check(ctx)
		return err
	})
}

// poll runs check until it succeeds or ctx ends, then returns the last failure.
func (c *Cluster) poll(ctx context.Context, check func(context.Context) error) error {
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

// slotRange is one entry of CLUSTER SLOTS, with addresses as "ip:port".
type slotRange struct {
	start, end int
	primary    string
	replicas   []string // sorted
}

func (r slotRange) String() string {
	return fmt.Sprintf("%d-%d %s %v", r.start, r.end, r.primary, r.replicas)
}

// check verifies the agreement described at Wait and returns the agreed map.
func (c *Cluster) check(ctx context.Context) ([]slotRange, error) {
	var (
		agreed     []slotRange
		agreedFrom string
		running    []string
	)
	for _, s := range c.nodes {
		if !s.running() {
			continue
		}
		running = append(running, s.Addr())
		replies, err := s.queryMany(ctx,
			[]string{"CLUSTER", "INFO"},
			[]string{"CLUSTER", "SLOTS"},
			[]string{"INFO", "replication"},
			[]string{"CLUSTER", "SHARDS"},
		)
		if err != nil {
			return nil, err
		}
		info := fields(replies[0])
		if info["cluster_state"] != "ok" || info["cluster_slots_ok"] != strconv.Itoa(slotCount) {
			return nil, fmt.Errorf("%s: cluster_state:%s cluster_slots_ok:%s", s.Addr(), info["cluster_state"], info["cluster_slots_ok"])
		}
		ranges, err := parseSlots(replies[1])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Addr(), err)
		}
		if agreed == nil {
			agreed, agreedFrom = ranges, s.Addr()
		} else if !slices.EqualFunc(agreed, ranges, slotRange.equal) {
			return nil, fmt.Errorf("%s sees slots %v, %s sees %v", agreedFrom, agreed, s.Addr(), ranges)
		}
		repl := fields(replies[2])
		if repl["role"] == "slave" && repl["master_link_status"] != "up" {
			return nil, fmt.Errorf("%s: replication link %s", s.Addr(), repl["master_link_status"])
		}
		// What a client reading CLUSTER SHARDS sees (see shards.go).
		visible, err := shardsVisible(replies[3])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Addr(), err)
		}
		if want := slotMapNodes(ranges); !slices.Equal(visible, want) {
			return nil, fmt.Errorf("%s: CLUSTER SHARDS shows %v to a client, CLUSTER SLOTS %v", s.Addr(), visible, want)
		}
	}
	if agreed == nil {
		return nil, errors.New("no node is running")
	}
	for _, addr := range running {
		if !slices.ContainsFunc(agreed, func(r slotRange) bool {
			return r.primary == addr || slices.Contains(r.replicas, addr)
		}) {
			return nil, fmt.Errorf("%s is missing from the slot map %v", addr, agreed)
		}
	}
	return agreed, nil
}

func (r slotRange) equal(o slotRange) bool {
	return r.start == o.start && r.end == o.end && r.primary == o.primary && slices.Equal(r.replicas, o.replicas)
}

// parseSlots reads a CLUSTER SLOTS reply, sorted by first slot, and checks that
// it covers every slot exactly once.
func parseSlots(v any) ([]slotRange, error) {
	entries, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("CLUSTER SLOTS: unexpected reply %v", v)
	}
	ranges := make([]slotRange, 0, len(entries))
	for _, e := range entries {
		parts, ok := e.([]any)
		if !ok || len(parts) < 3 {
			return nil, fmt.Errorf("CLUSTER SLOTS: bad entry %v", e)
		}
		var r slotRange
		var err1, err2 error
		r.start, err1 = strconv.Atoi(asString(parts[0]))
		r.end, err2 = strconv.Atoi(asString(parts[1]))
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("CLUSTER SLOTS: bad range in %v: %w", e, err)
		}
		for i, n := range parts[2:] {
			node, ok := n.([]any)
			if !ok || len(node) < 2 {
				return nil, fmt.Errorf("CLUSTER SLOTS: bad node %v", n)
			}
			addr := asString(node[0]) + ":" + asString(node[1])
			if i == 0 {
				r.primary = addr
			} else {
				r.replicas = append(r.replicas, addr)
			}
		}
		slices.Sort(r.replicas)
		ranges = append(ranges, r)
	}
	slices.SortFunc(ranges, func(a, b slotRange) int { return a.start - b.start })
	next := 0
	for _, r := range ranges {
		if r.start != next || r.end < r.start {
			return nil, fmt.Errorf("slots not covered exactly once: %v", ranges)
		}
		next = r.end + 1
	}
	if next != slotCount {
		return nil, fmt.Errorf("slots %d-%d not covered: %v", next, slotCount-1, ranges)
	}
	return ranges, nil
}

func asString(v any) string {
	s, _ := v.(string)
	return s
}

// fields parses "key:value" lines, the format of CLUSTER INFO and INFO.
func fields(v any) map[string]string {
	m := make(map[string]string)
	for _, line := range strings.Split(asString(v), "\n") {
		if k, val, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			m[k] = val
		}
	}
	return m
}

// Nodes returns every node: the primaries first, then the replicas grouped by
// the primary they were created for.
func (c *Cluster) Nodes() []*Server { return slices.Clone(c.nodes) }

// Primaries returns the nodes created as primaries. After a failover a node's
// role may differ from this list.
func (c *Cluster) Primaries() []*Server { return slices.Clone(c.primaries) }

// Addrs returns the addresses of all nodes, in the order of [Cluster.Nodes].
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, s := range c.nodes {
		addrs[i] = s.Addr()
	}
	return addrs
}

// TLSConfig returns a new client configuration trusting the cluster's CA, or nil
// for a plain cluster.
func (c *Cluster) TLSConfig() *tls.Config {
	if c.certs == nil {
		return nil
	}
	return c.certs.clientConfig()
}

// ClientOption is what a rueidis client needs to reach the cluster: every node
// address, the TLS configuration and the default user's password.
func (c *Cluster) ClientOption() rueidis.ClientOption {
	return rueidis.ClientOption{
		InitAddress: c.Addrs(),
		TLSConfig:   c.TLSConfig(),
		Password:    c.cfg.Server.Password,
	}
}

// Close closes every node (see [Server.Close]) and returns their errors joined.
func (c *Cluster) Close() error {
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, s := range c.nodes {
		if s == nil {
			continue // launch failed for this node
		}
		wg.Go(func() { errs[i] = s.Close() })
	}
	wg.Wait()
	return errors.Join(errs...)
}
