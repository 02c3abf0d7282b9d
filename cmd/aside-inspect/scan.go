package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/redis/rueidis"

	"github.com/aside-go/aside/internal/envelope"
	"github.com/aside-go/aside/invalidation"
)

// scanOptions select the keys of a scan.
type scanOptions struct {
	ns string
	// match is a glob over the part of value keys after "<ns>:"; prefix a
	// literal start of it. At most one is set.
	match, prefix string
	limit         int
}

// row is one key of a scan; it is also its JSON line.
type row struct {
	Key string `json:"key"`
	// Kind is value, marker, lease, plain, unreadable, newer format (an
	// entry of a format version this build does not know), tag index, lease
	// key, set, or the Redis type of anything else ("none" for a key gone since
	// the scan met it).
	Kind string `json:"kind"`
	// Stale marks a value past its soft expiry whose refresh was claimed.
	Stale bool `json:"stale,omitempty"`
	// Size is a string's length in bytes.
	Size *int64 `json:"size,omitempty"`
	// Members is a set's cardinality.
	Members *int64 `json:"members,omitempty"`
	PTTL    int64  `json:"pttl_ms"`
}

// scanPatterns returns the MATCH patterns of a scan and the pattern value
// keys must match, checked.
func scanPatterns(o scanOptions) (patterns []string, valuePattern string, err error) {
	if !validNamespace(o.ns) {
		return nil, "", usageError(fmt.Sprintf("namespace %q: a namespace is made of letters, digits and _-. only", o.ns))
	}
	ns := invalidation.Escape(o.ns)
	valuePattern = ns + ":*"
	switch {
	case o.match != "" && o.prefix != "":
		return nil, "", usageError("-match and -prefix exclude each other")
	case o.match != "":
		valuePattern = ns + ":" + o.match
	case o.prefix != "":
		valuePattern = ns + ":" + invalidation.Escape(o.prefix) + "*"
	}
	if err := invalidation.CheckPattern(valuePattern); err != nil {
		return nil, "", usageError(err.Error())
	}
	patterns = []string{valuePattern, ns + invalidation.Escape(leaseInfix) + "*"}
	if o.match == "" && o.prefix == "" {
		patterns = append(patterns, ns+tagInfix+"*")
	}
	return patterns, valuePattern, nil
}

// scan lists the keys of a namespace on every primary: its value keys (those
// matching the pattern), its lease keys (of matching value keys) and, without
// a pattern, its tag indexes. It returns at most o.limit rows, sorted by key,
// and whether it stopped at the limit.
func (in *inspector) scan(ctx context.Context, o scanOptions) ([]row, bool, error) {
	patterns, valuePattern, err := scanPatterns(o)
	if err != nil {
		return nil, false, err
	}
	nodes, err := invalidation.Primaries(ctx, in.client)
	if err != nil {
		return nil, false, err
	}
	seen := make(map[string]bool)
	var keys []string
	full := false
collect:
	for _, node := range nodes {
		nc := node.Client
		for _, pat := range patterns {
			var cursor uint64
			for {
				e, err := nc.Do(ctx, nc.B().Scan().Cursor(cursor).Match(pat).Count(1000).Build()).AsScanEntry()
				if err != nil {
					return nil, false, fmt.Errorf("SCAN %s on %s: %w", pat, node.Addr, err)
				}
				for _, k := range e.Elements {
					if seen[k] {
						continue // SCAN may return a key twice
					}
					if vk, _, ok := valueKeyOf(k); ok && pat != valuePattern && !invalidation.Match(valuePattern, vk) {
						continue
					}
					if len(keys) == o.limit {
						full = true
						break collect
					}
					seen[k] = true
					keys = append(keys, k)
				}
				if cursor = e.Cursor; cursor == 0 {
					break
				}
			}
		}
	}
	sort.Strings(keys)
	rows := make([]row, 0, len(keys))
	const batch = 100
	for i := 0; i < len(keys); i += batch {
		rows = append(rows, in.rows(ctx, keys[i:min(i+batch, len(keys))])...)
	}
	return rows, full, ctx.Err()
}

// rows describes keys in one pipeline.
func (in *inspector) rows(ctx context.Context, keys []string) []row {
	c := in.client
	const per = 5
	// A lease is the longest entry whose kind needs more than the header.
	const head = envelope.HeaderSize + envelope.LeaseTokenSize
	cmds := make(rueidis.Commands, 0, per*len(keys))
	for _, k := range keys {
		cmds = append(cmds,
			c.B().Type().Key(k).Build(),
			c.B().Pttl().Key(k).Build(),
			c.B().Strlen().Key(k).Build(),
			c.B().Getrange().Key(k).Start(0).End(head-1).Build(),
			c.B().Scard().Key(k).Build())
	}
	res := c.DoMulti(ctx, cmds...)
	out := make([]row, len(keys))
	for i, k := range keys {
		r := res[per*i : per*i+per]
		out[i] = row{Key: k}
		typ, err := r[0].ToString()
		if err != nil {
			out[i].Kind = "unreadable: " + err.Error()
			continue
		}
		out[i].PTTL, _ = r[1].AsInt64()
		_, _, isLeaseKey := valueKeyOf(k)
		_, _, isTag := tagOf(k)
		switch typ {
		case "string":
			n, _ := r[2].AsInt64()
			out[i].Size = &n
			raw, _ := r[3].AsBytes()
			out[i].Kind, out[i].Stale = kindOf(raw, n)
			if isLeaseKey {
				out[i].Kind = "lease key"
			}
		case "set":
			n, _ := r[4].AsInt64()
			out[i].Members = &n
			out[i].Kind = "set"
			if isTag {
				out[i].Kind = "tag index"
			}
		default:
			out[i].Kind = typ
		}
	}
	return out
}

// kindOf classifies a string of size bytes from its first bytes, head.
func kindOf(head []byte, size int64) (kind string, stale bool) {
	if !envelope.IsEntry(head) {
		return "plain", false
	}
	env, err := envelope.Decode(head)
	switch {
	case errors.Is(err, envelope.ErrVersion):
		return "newer format", false
	case err != nil || env.Kind == envelope.Lease && size != int64(len(head)):
		return "unreadable", false
	}
	switch env.Kind {
	case envelope.Lease:
		return "lease", false
	case envelope.NotFound:
		return "marker", false
	}
	return "value", env.Stale
}

// printRows writes the text form of a scan.
func printRows(w io.Writer, rows []row, full bool, limit int) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tKIND\tSIZE\tTTL")
	for _, r := range rows {
		size := ""
		switch {
		case r.Size != nil:
			size = strconv.FormatInt(*r.Size, 10)
		case r.Members != nil:
			size = strconv.FormatInt(*r.Members, 10) + " members"
			if *r.Members == 1 {
				size = "1 member"
			}
		}
		kind := r.Kind
		if r.Stale {
			kind += " (stale)"
		}
		ttl := "none"
		switch {
		case r.PTTL >= 0:
			ttl = (time.Duration(r.PTTL) * time.Millisecond).String()
		case r.PTTL == -2:
			ttl = "gone"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Key, kind, size, ttl)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if full {
		_, err := fmt.Fprintf(w, "%s: stopped at the limit (-limit %d); more may exist\n", keysOf(len(rows)), limit)
		return err
	}
	_, err := fmt.Fprintf(w, "%s\n", keysOf(len(rows)))
	return err
}

func keysOf(n int) string {
	if n == 1 {
		return "1 key"
	}
	return strconv.Itoa(n) + " keys"
}
