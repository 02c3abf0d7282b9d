package redistest

import "testing"

// TestStandardPortsStayReserved: 5432 and 6379 (the machine's own PostgreSQL
// and Redis) are reserved from the start, and ReleasePort never frees them;
// a port FreePort handed out is reserved until released.
func TestStandardPortsStayReserved(t *testing.T) {
	ReleasePort(5432, 6379)
	reserved.Lock()
	pg, redis := reserved.ports[5432], reserved.ports[6379]
	reserved.Unlock()
	if !pg || !redis {
		t.Fatalf("reserved after ReleasePort: 5432 %v, 6379 %v", pg, redis)
	}
	p, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	if p == 5432 || p == 6379 {
		t.Fatalf("FreePort = %d", p)
	}
	reserved.Lock()
	held := reserved.ports[p]
	reserved.Unlock()
	ReleasePort(p)
	reserved.Lock()
	after := reserved.ports[p]
	reserved.Unlock()
	if !held || after {
		t.Fatalf("port %d: reserved %v while held, %v after ReleasePort", p, held, after)
	}
}
