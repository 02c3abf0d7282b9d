package cache

// Echoes: the invalidations of this process's own writes.
//
// Why not CLIENT TRACKING ... NOLOOP, which spares a connection the pushes
// of its own writes? Measured on raw RESP3 (Redis 7.0.15, Redis 8.0.6,
// Valkey 9.1.2): with NOLOOP no write of the connection is pushed back to
// it, inside EVALSHA and MULTI too (Redis checks the caller's connection,
// not the script's), a read after the write in the same script tracks the
// key again, and a FLUSHDB or FLUSHALL is still pushed (as a null). It
// would remove this registry; but writes made through [Client.Rueidis],
// which shares the caches' connections, would then never reach the copies
// of this process, which the Rueidis doc promises they do. The registry
// stays, and a change this process makes is never left to a push (see
// change.go), so a push of another process's change that is taken for an
// echo only delays the drop of a copy until the echo itself arrives.
//
// A write that leaves a copy of what it wrote in process memory (Set, and a
// load's write under its lease) runs writeScript, which reads the key before
// writing it (so does the compare-and-set transaction that replaces the
// script on servers that have SET IFEQ, with its first PTTL: cas.go, and
// rueidis sends it on the connection that tracks the keys, see Client.cas):
// Redis therefore tracks the key for the writing connection when
// the write happens, and pushes its invalidation back to this process after
// the reply — always, and at most a push delay later. That push, the echo,
// must not drop the copy just stored. The writer calls expectEcho before it
// sends the write; the next push of the key that arrives is handled as an
// echo (flights forgotten, waits woken, copies kept) instead of as a change.
//
// Why that is safe: every expectEcho is matched by at least one push of the
// key that Redis sends after the call: writeScript reads the key right before
// it writes it, in one atomic step, so the writing connection tracks the key
// when the write happens. If a push of a later change arrives first and is taken for
// the echo, the real echo arrives after it — within a push delay — and is
// handled as a change, dropping the copy. The writer stores its copy only if
// no change was handled for the key between expectEcho and the store (the
// snapshot rule of local), and drops every other copy of the key when it
// stores. A write that fails, or does not write (its lease was gone), has no
// echo: the writer calls cancelEcho, and handles the key as changed.

// expectEcho announces a write of key whose invalidation Redis will push back.
func (c *Client) expectEcho(key string) {
	c.echoMu.Lock()
	c.echoes[key]++
	c.echoMu.Unlock()
}

// cancelEcho withdraws an expectEcho whose write did not happen, unless a
// push already took it.
func (c *Client) cancelEcho(key string) {
	c.echoMu.Lock()
	if n := c.echoes[key]; n > 1 {
		c.echoes[key] = n - 1
	} else {
		delete(c.echoes, key)
	}
	c.echoMu.Unlock()
}

// takeEcho reports whether a push of key is an expected echo, and counts it.
// c.echoMu is held.
func (c *Client) takeEcho(key string) bool {
	n, ok := c.echoes[key]
	if !ok {
		return false
	}
	if n > 1 {
		c.echoes[key] = n - 1
	} else {
		delete(c.echoes, key)
	}
	return true
}
