package flight

// Waiters returns the number of callers waiting on the flight that a caller
// asking for key would join: 0 when there is none. Tests wait on it, instead
// of sleeping, until their goroutines have joined a flight.
func Waiters[V any](g *Group[V], key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f, ok := g.flights[key]; ok {
		return f.waiters
	}
	return 0
}
