package redistest

import (
	"fmt"
	"slices"
)

// Clients of Redis 8 and newer (Valkey too: it reports its own version, 8 and
// up, in HELLO) read the topology with CLUSTER SHARDS, not CLUSTER SLOTS:
// rueidis does, and keeps only the nodes whose health is "online" in the
// shards that have an online primary. The two can disagree for a while after
// a replica attached: on Valkey 9.1 a node's CLUSTER SHARDS may still list a
// replica in a shard of its own (its shard id not yet its primary's; the logs
// say "Shard id ... diverges from existing primary shard id ..., rejecting!")
// when its CLUSTER SLOTS already lists the replica under its primary. Such a
// client does not see that replica. Cluster.check therefore also waits for
// every node's CLUSTER SHARDS to show every node of the slot map.

// shardsVisible returns the nodes a client reading CLUSTER SHARDS keeps (as
// rueidis does): the online nodes of each shard that has an online primary,
// as "ip:port", sorted.
func shardsVisible(v any) ([]string, error) {
	shards, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("CLUSTER SHARDS: unexpected reply %v", v)
	}
	var visible []string
	for _, sh := range shards {
		nodes, ok := replyMap(sh)["nodes"].([]any)
		if !ok {
			return nil, fmt.Errorf("CLUSTER SHARDS: bad shard %v", sh)
		}
		var online []string
		primary := false
		for _, n := range nodes {
			f := replyMap(n)
			if asString(f["health"]) != "online" {
				continue
			}
			port := asString(f["port"])
			if tls := asString(f["tls-port"]); tls != "" && tls != "0" {
				port = tls // a TLS cluster: CLUSTER SLOTS, asked over TLS, gives this one
			}
			online = append(online, asString(f["ip"])+":"+port)
			if asString(f["role"]) == "master" {
				primary = true
			}
		}
		if primary {
			visible = append(visible, online...)
		}
	}
	slices.Sort(visible)
	return visible, nil
}

// slotMapNodes returns every node of a slot map, as "ip:port", sorted.
func slotMapNodes(ranges []slotRange) []string {
	var nodes []string
	for _, r := range ranges {
		nodes = append(nodes, r.primary)
		nodes = append(nodes, r.replicas...)
	}
	slices.Sort(nodes)
	return slices.Compact(nodes)
}

// replyMap reads a map reply (RESP3) or its RESP2 form, a flat array of keys
// and values.
func replyMap(v any) map[string]any {
	l, _ := v.([]any)
	m := make(map[string]any, len(l)/2)
	for i := 0; i+1 < len(l); i += 2 {
		m[asString(l[i])] = l[i+1]
	}
	return m
}
