package cache

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// The heartbeat bounds how long a silent Redis leaves copies in process
// memory served. A copy is only as fresh as the pushes that would drop it,
// and a connection that a network partition silences (no reset, no close)
// delivers no push and no error: rueidis notices only when its keep-alive
// PING goes unanswered for ConnWriteTimeout (10 s by default). So the client
// PINGs every node every heartbeatEvery, and caches serve copies only while
// the last round that every node answered began less than
// Options.MaxSilence ago; past it, reads go to Redis, and meet the time
// budget there.

const (
	// heartbeatEvery is the period of the heartbeat's rounds: well under the
	// default MaxSilence, so that a healthy Redis never lets it lapse.
	heartbeatEvery = 200 * time.Millisecond
	// heartbeatTimeout bounds one round.
	heartbeatTimeout = time.Second
)

func (c *Client) startHeartbeat() {
	c.heard.Store(time.Now().UnixNano())
	c.beat.Add(1)
	go func() {
		defer c.beat.Done()
		t := time.NewTicker(heartbeatEvery)
		defer t.Stop()
		for {
			select {
			case <-c.closing.Done():
				return
			case <-t.C:
				c.heartbeat()
			}
		}
	}()
}

// heartbeat PINGs every node and, when all answered, records when it began.
func (c *Client) heartbeat() {
	start := time.Now()
	ctx, cancel := context.WithTimeout(c.closing, heartbeatTimeout)
	defer cancel()
	conn := c.conn.Load()
	if conn == nil {
		return
	}
	if !conn.tracking {
		// No copy is kept without tracking, so none waits on the
		// heartbeat; and a PING sent beside a read would move the
		// connection's rueidis pipe to its background goroutines for good
		// (see dial).
		return
	}
	nodes := conn.guarded.Nodes()
	var failed atomic.Bool
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() {
			if err := n.Do(ctx, n.B().Ping().Build()).Error(); err != nil {
				failed.Store(true)
			}
		})
	}
	wg.Wait()
	if !failed.Load() && len(nodes) > 0 {
		c.heard.Store(start.UnixNano())
		c.mu.RLock()
		for _, inv := range c.all {
			inv.verified(start.UnixNano())
		}
		c.mu.RUnlock()
	}
}

// heardWithin reports whether every node answered a heartbeat round that
// began at most d ago; a negative d is always true.
func (c *Client) heardWithin(d time.Duration) bool {
	return !c.isClosed.Load() && (d < 0 || c.clock.now()-c.heard.Load() <= int64(d))
}
