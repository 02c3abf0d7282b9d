package invalidation

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/redis/rueidis"
)

// Options tunes [Pattern]. The zero value is ready to use.
type Options struct {
	// Count is the COUNT hint of each SCAN call: how much of the keyspace
	// one call walks. Default: 1000.
	Count int
	// Batch is how many UNLINK commands go in one pipeline. Default: 500.
	Batch int
	// Progress, when set, is called after each batch with the totals so far.
	Progress func(Progress)
	// OnDelete, when set, is called with each batch of keys sent to
	// UNLINK, for example to drop in-process copies. It gets every key of
	// the batch, including any whose UNLINK failed (it may have run) or
	// found the key already gone, so a copy is never kept of a key that
	// might have been removed.
	OnDelete func(keys []string)
	// OnFail, when set, is called after OnDelete with the keys of the
	// batch whose UNLINK got no answer (a dropped connection, a deadline)
	// or an error: Redis may still hold them.
	OnFail func(keys []string)
}

// Progress is reported by [Pattern] after each batch.
type Progress struct {
	// Node is the address of the primary being scanned.
	Node string
	// Scanned and Removed are totals over every node so far.
	Scanned, Removed int64
}

// ErrPattern is wrapped by errors about the pattern itself.
var ErrPattern = errors.New("invalidation: invalid pattern")

// Pattern removes every key matching the glob pattern from every primary of
// client and returns how many it removed. A pattern that [CheckPattern]
// refuses (empty, an unclosed '[', a trailing '\') is an error. It stops, returning what it removed
// so far and the context's error, when ctx ends.
func Pattern(ctx context.Context, client rueidis.Client, pattern string, opts Options) (int64, error) {
	if err := CheckPattern(pattern); err != nil {
		return 0, err
	}
	if opts.Count <= 0 {
		opts.Count = 1000
	}
	if opts.Batch <= 0 {
		opts.Batch = 500
	}
	nodes, err := Primaries(ctx, client)
	if err != nil {
		return 0, err
	}
	p := progress{opts: opts}
	for _, n := range nodes {
		if err := p.scanNode(ctx, client, n, pattern); err != nil {
			return p.removed, err
		}
	}
	return p.removed, nil
}

type progress struct {
	opts             Options
	scanned, removed int64
}

func (p *progress) scanNode(ctx context.Context, client rueidis.Client, n Node, pattern string) error {
	var cursor uint64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		entry, err := n.Client.Do(ctx, n.Client.B().Scan().Cursor(cursor).Match(pattern).Count(int64(p.opts.Count)).Build()).AsScanEntry()
		if err != nil {
			return fmt.Errorf("invalidation: scan %s: %w", n.Addr, err)
		}
		p.scanned += int64(len(entry.Elements))
		for start := 0; start < len(entry.Elements); start += p.opts.Batch {
			// A batch is not sent once ctx has ended: its commands would
			// all fail, each with its own copy of the context's error.
			if err := ctx.Err(); err != nil {
				return err
			}
			end := min(start+p.opts.Batch, len(entry.Elements))
			if err := p.unlink(ctx, client, entry.Elements[start:end]); err != nil {
				return err
			}
			if p.opts.Progress != nil {
				p.opts.Progress(Progress{Node: n.Addr, Scanned: p.scanned, Removed: p.removed})
			}
		}
		cursor = entry.Cursor
		if cursor == 0 {
			return nil
		}
	}
}

// unlink removes keys with one single-key UNLINK each, in one pipeline sent
// through the (cluster-aware) client, so each goes to its slot's owner even
// if the slot moved since the scan.
func (p *progress) unlink(ctx context.Context, client rueidis.Client, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	cmds := make(rueidis.Commands, len(keys))
	for i, k := range keys {
		cmds[i] = client.B().Unlink().Key(k).Build()
	}
	var errs []error
	var failed []string
	for i, res := range client.DoMulti(ctx, cmds...) {
		n, err := res.AsInt64()
		if err != nil {
			errs = append(errs, fmt.Errorf("invalidation: unlink %q: %w", keys[i], err))
			failed = append(failed, keys[i])
			continue
		}
		p.removed += n
	}
	if p.opts.OnDelete != nil {
		p.opts.OnDelete(keys)
	}
	if p.opts.OnFail != nil && len(failed) > 0 {
		p.opts.OnFail(failed)
	}
	if err := ctx.Err(); err != nil && len(errs) > 0 {
		// ctx ended while the batch was in flight: report that once
		// rather than once per key.
		return err
	}
	return errors.Join(errs...)
}

// Node is one Redis server of a deployment.
type Node struct {
	Addr   string
	Client rueidis.Client
}

// Primaries returns the primaries of client's deployment, sorted by address:
// the one server of a standalone client, every primary of a cluster. A
// cluster's Nodes include replicas, and so do those of a standalone client
// given replicas (ClientOption.Standalone.ReplicaAddress) or a sentinel
// client sending reads to replicas; ROLE tells them apart. A lone node of a
// standalone client is taken as the primary without asking, which spares a
// round trip and servers that refuse ROLE.
func Primaries(ctx context.Context, client rueidis.Client) ([]Node, error) {
	nodes := client.Nodes()
	askRole := len(nodes) > 1 || client.Mode() == rueidis.ClientModeCluster
	out := make([]Node, 0, len(nodes))
	for addr, nc := range nodes {
		if askRole {
			role, err := nc.Do(ctx, nc.B().Role().Build()).ToArray()
			if err != nil {
				return nil, fmt.Errorf("invalidation: role of %s: %w", addr, err)
			}
			if len(role) == 0 {
				return nil, fmt.Errorf("invalidation: role of %s: empty reply", addr)
			}
			if r, _ := role[0].ToString(); r != "master" {
				continue
			}
		}
		out = append(out, Node{Addr: addr, Client: nc})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("invalidation: no primary among %d nodes", len(nodes))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr < out[j].Addr })
	return out, nil
}
