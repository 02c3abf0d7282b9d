package cache

import (
	"sync"
	"sync/atomic"
	"time"
)

// clock is a coarse wall clock for the hit path. time.Now costs 50–170 ns on
// some virtual machines (where the vDSO falls back to a system call), more
// than everything else a hit does; reading an atomic costs about a
// nanosecond. The price is precision: a copy may be served up to about one
// tick past its expiry.
type clock struct {
	nanos atomic.Int64
	stop  chan struct{}
	done  sync.WaitGroup
}

// clockTick is the resolution of the coarse clock.
const clockTick = time.Millisecond

func startClock() *clock {
	c := &clock{stop: make(chan struct{})}
	c.nanos.Store(time.Now().UnixNano())
	c.done.Add(1)
	go c.run()
	return c
}

func (c *clock) run() {
	defer c.done.Done()
	t := time.NewTicker(clockTick)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case now := <-t.C:
			c.nanos.Store(now.UnixNano())
		}
	}
}

// now returns Unix nanoseconds, at most about one tick old.
func (c *clock) now() int64 { return c.nanos.Load() }

func (c *clock) close() {
	close(c.stop)
	c.done.Wait()
}
