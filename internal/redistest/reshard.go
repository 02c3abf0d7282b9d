package redistest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MoveOptions varies [Cluster.MoveSlot].
type MoveOptions struct {
	// Batch is how many keys one MIGRATE moves. 0 means 10.
	Batch int
	// Between, when set, is called once the slot is IMPORTING on the target
	// and MIGRATING on the source, and again after each MIGRATE: a test
	// waits there for its workload to meet the slot half moved. An error
	// stops the move, leaving the slot half moved.
	Between func(ctx context.Context) error
}

// SlotOwner returns the primary that serves slot, as node's CLUSTER SLOTS
// says.
func (c *Cluster) SlotOwner(ctx context.Context, node *Server, slot int) (*Server, error) {
	v, err := node.query(ctx, "CLUSTER", "SLOTS")
	if err != nil {
		return nil, err
	}
	ranges, err := parseSlots(v)
	if err != nil {
		return nil, err
	}
	for _, r := range ranges {
		if r.start <= slot && slot <= r.end {
			for _, s := range c.nodes {
				if s.Addr() == r.primary {
					return s, nil
				}
			}
			return nil, fmt.Errorf("slot %d served by %s, not a node of the cluster", slot, r.primary)
		}
	}
	return nil, fmt.Errorf("slot %d is not served", slot)
}

// MoveSlot moves slot, keys and all, from the primary that serves it to the
// primary to, as redis-cli --cluster reshard does: CLUSTER SETSLOT IMPORTING
// on the target, MIGRATING on the source, MIGRATE of the slot's keys in
// batches until none is left on the source, then CLUSTER SETSLOT NODE on the
// target, the source and every other node. Clients meanwhile get ASK for
// keys already moved (or new), TRYAGAIN for multi-key commands whose keys
// are split, and MOVED once the slot is the target's. Moving a slot to the
// node that serves it does nothing. Use [Cluster.Wait] afterwards to wait
// until every node agrees.
func (c *Cluster) MoveSlot(ctx context.Context, slot int, to *Server, o MoveOptions) error {
	if o.Batch <= 0 {
		o.Batch = 10
	}
	between := func() error {
		if o.Between == nil {
			return nil
		}
		return o.Between(ctx)
	}
	from, err := c.SlotOwner(ctx, to, slot)
	if err != nil {
		return err
	}
	if from == to {
		return nil
	}
	fromID, err := from.Do(ctx, "CLUSTER", "MYID")
	if err != nil {
		return err
	}
	toID, err := to.Do(ctx, "CLUSTER", "MYID")
	if err != nil {
		return err
	}
	s := strconv.Itoa(slot)
	if _, err := to.Do(ctx, "CLUSTER", "SETSLOT", s, "IMPORTING", fromID); err != nil {
		return err
	}
	if _, err := from.Do(ctx, "CLUSTER", "SETSLOT", s, "MIGRATING", toID); err != nil {
		return err
	}
	if err := between(); err != nil {
		return err
	}
	for {
		text, err := from.Do(ctx, "CLUSTER", "GETKEYSINSLOT", s, strconv.Itoa(o.Batch))
		if err != nil {
			return err
		}
		keys := strings.Fields(text)
		if len(keys) == 0 {
			break
		}
		// No REPLACE: a key of the slot on the target as well would be a
		// bug of the move, not something to overwrite.
		args := []string{"MIGRATE", "127.0.0.1", strconv.Itoa(to.Port()), "", "0", "5000"}
		if c.cfg.Server.Password != "" {
			args = append(args, "AUTH", c.cfg.Server.Password)
		}
		args = append(args, "KEYS")
		if _, err := from.Do(ctx, append(args, keys...)...); err != nil {
			return fmt.Errorf("redistest: move slot %d: %w", slot, err)
		}
		if err := between(); err != nil {
			return err
		}
	}
	// The target first, so that the slot is served somewhere at every
	// moment; then the source, which then answers MOVED; then the rest.
	order := []*Server{to, from}
	for _, n := range c.nodes {
		if n != to && n != from && n.running() {
			order = append(order, n)
		}
	}
	var errs []error
	for i, n := range order {
		if _, err := n.Do(ctx, "CLUSTER", "SETSLOT", s, "NODE", toID); err != nil {
			if i < 2 {
				return fmt.Errorf("redistest: move slot %d: %w", slot, err)
			}
			errs = append(errs, fmt.Errorf("%s: %w", n.Addr(), err))
		}
	}
	return errors.Join(errs...)
}
