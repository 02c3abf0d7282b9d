package cache

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/rueidis"
)

// Pending invalidations.
//
// An invalidation (or a Delete, or a Set) whose outcome is unknown — an
// error, a reply lost with its connection, a time budget run out — may or
// may not have reached Redis, which may therefore still hold what the key
// held before. The process that made it promised its own reads that it
// did (read-your-writes, G3), so it treats the key as changed and not yet
// confirmed: the key is pending. Its copies go (the change event), reads of
// it through any cache of the client load it without reading or writing
// Redis (resolve, loadDirect), and one goroutine of the client deletes it
// again (with its lease key, in plain mode), in the order the keys became
// pending, until Redis confirms the deletion; then the key is an ordinary
// missing key again. A successful write of the key by this process (Set,
// Delete, Invalidate) confirms it too: Redis then holds what the process
// wrote.
//
// At most maxPending keys are pending; an invalidation that fails past
// that is logged and its promise does not hold. Pending keys live in the
// process: when it exits first, Redis keeps what the keys held until their
// expiry, and other processes, which never heard of the invalidation,
// read it as before it.
type pendingSet struct {
	mu      sync.Mutex
	keys    map[string]pendingKey // guarded by mu
	order   []string              // the keys, in the order they became pending; guarded by mu
	gen     uint64                // guarded by mu
	running bool                  // a resender runs; guarded by mu
	closed  bool                  // the client closed: no resender starts; guarded by mu
	n       atomic.Int64          // len(keys), for the read path without mu
	wg      sync.WaitGroup        // the resender
}

type pendingKey struct {
	lease string // the lease key in plain mode, or ""
	gen   uint64 // when it became pending last
}

// maxPending bounds the keys pending at once.
const maxPending = 1 << 16

// pendingBatch is how many keys one round of the resender deletes.
const pendingBatch = 256

func (p *pendingSet) len() int { return int(p.n.Load()) }

// has reports whether key is pending.
func (p *pendingSet) has(key string) bool {
	if p.n.Load() == 0 {
		return false
	}
	p.mu.Lock()
	_, ok := p.keys[key]
	p.mu.Unlock()
	return ok
}

// markPending makes key pending (lease: its lease key in plain mode, or
// "") after an invalidation of it failed, handles the change for every
// cache of the client, and starts the resender. It reports false when too
// many keys are pending already.
func (c *Client) markPending(key, lease string) bool {
	p := &c.pending
	p.mu.Lock()
	if _, ok := p.keys[key]; !ok && len(p.keys) >= maxPending {
		p.mu.Unlock()
		c.changed(key, nil)
		logEvent(c.log, slog.LevelError, "cache: too many invalidations unconfirmed by Redis: this one is not sent again", namespaceOf(key), nil, []string{key})
		return false
	}
	if p.keys == nil {
		p.keys = make(map[string]pendingKey)
	}
	if _, ok := p.keys[key]; !ok {
		p.order = append(p.order, key)
		p.n.Add(1)
	}
	p.gen++
	p.keys[key] = pendingKey{lease: lease, gen: p.gen}
	start := !p.running && !p.closed
	if start {
		p.running = true
		p.wg.Add(1)
	}
	p.mu.Unlock()
	c.changed(key, nil)
	if start {
		go func() {
			defer p.wg.Done()
			c.resendPending()
		}()
	}
	return true
}

// confirmed ends the pending state of key: this process wrote it
// successfully, or Redis confirmed its deletion sent at gen (0: any).
func (p *pendingSet) confirmed(key string, gen uint64) bool {
	if p.n.Load() == 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pk, ok := p.keys[key]
	if !ok || gen != 0 && pk.gen != gen {
		return false
	}
	delete(p.keys, key)
	p.n.Add(-1)
	return true
}

type pendingItem struct {
	key string
	pendingKey
}

// next returns up to n pending keys, oldest first; none, and the
// resender's end, when no key is pending.
func (p *pendingSet) next(n int) []pendingItem {
	p.mu.Lock()
	defer p.mu.Unlock()
	live := p.order[:0]
	for _, key := range p.order {
		if _, ok := p.keys[key]; ok {
			live = append(live, key)
		}
	}
	clear(p.order[len(live):])
	p.order = live
	if len(live) == 0 || p.closed {
		p.running = false
		return nil
	}
	out := make([]pendingItem, 0, min(n, len(live)))
	for _, key := range live[:min(n, len(live))] {
		out = append(out, pendingItem{key, p.keys[key]})
	}
	return out
}

// rotate moves the keys of batch still pending to the back of the order.
func (p *pendingSet) rotate(batch []pendingItem) {
	p.mu.Lock()
	defer p.mu.Unlock()
	back := make(map[string]bool, len(batch))
	for _, it := range batch {
		if _, ok := p.keys[it.key]; ok {
			back[it.key] = true
		}
	}
	order := make([]string, 0, len(p.order))
	for _, key := range p.order {
		if !back[key] {
			order = append(order, key)
		}
	}
	for _, it := range batch {
		if back[it.key] {
			order = append(order, it.key)
			delete(back, it.key)
		}
	}
	p.order = order
}

// stop ends the resender, for Close.
func (p *pendingSet) stop() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.wg.Wait()
}

// resendPending deletes the pending keys again, oldest first, backing off
// while Redis does not confirm, until none is pending or the client closes.
func (c *Client) resendPending() {
	retry := backoff{next: writeRetryMin, max: writeRetryMax}
	for {
		batch := c.pending.next(pendingBatch)
		if len(batch) == 0 || !retry.wait(c.closing) {
			return
		}
		rc, ok := c.redis()
		if !ok {
			continue
		}
		cmds := make(rueidis.Commands, 0, 2*len(batch))
		for _, it := range batch {
			if it.lease != "" {
				cmds = append(cmds, rc.B().Del().Key(it.lease).Build())
			}
			cmds = append(cmds, rc.B().Del().Key(it.key).Build())
		}
		ctx, cancel := context.WithTimeout(c.closing, budgetFor(defaultRedisTimeout, len(cmds)))
		results := rc.DoMulti(ctx, cmds...)
		cancel()
		done := 0
		for _, it := range batch {
			err := results[0].Error()
			if it.lease != "" {
				results = results[1:]
				if err == nil {
					err = results[0].Error()
				}
			}
			results = results[1:]
			if err != nil {
				continue
			}
			done++
			if c.pending.confirmed(it.key, it.gen) {
				c.changed(it.key, nil)
			}
		}
		if done < len(batch) {
			// The keys Redis did not confirm go to the back: keys that
			// keep failing (a node down, a refusal) never hold up the
			// others.
			c.pending.rotate(batch)
		}
		if done == len(batch) {
			retry = backoff{next: writeRetryMin, max: writeRetryMax}
			logEvent(c.log, slog.LevelInfo, "cache: invalidations sent again, and confirmed by Redis", namespaceOf(batch[0].key), nil, nil, slog.Int("keys", done))
		}
	}
}

// namespaceOf is the namespace of a Redis key of a cache.
func namespaceOf(key string) string {
	ns, _, _ := strings.Cut(key, ":")
	return ns
}
