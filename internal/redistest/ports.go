package redistest

import (
	"fmt"
	"net"
	"sync"
)

// reserved holds the ports handed to live servers of this process. The kernel
// may give the same free port to two quick net.Listen calls once the first
// listener is closed; remembering them keeps two servers of one test binary off
// each other's port. Other processes are handled by retrying on a bind failure.
var reserved = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{5432: true, 6379: true}} // never the standard PostgreSQL or Redis port: the machine's own servers may hold them

// FreePort returns a loopback TCP port that nothing listened on a moment ago
// and that no other server of this process holds (nor 5432 or 6379), for a
// server a test starts; ReleasePort gives it back once the server is gone.
// The servers of this package take theirs here too.
func FreePort() (int, error) {
	var lastErr error
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			lastErr = err
			continue
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		reserved.Lock()
		taken := reserved.ports[port]
		if !taken {
			reserved.ports[port] = true
		}
		reserved.Unlock()
		if !taken {
			return port, nil
		}
	}
	return 0, fmt.Errorf("redistest: no free loopback port: %v", lastErr)
}

// ReleasePort gives ports taken with FreePort back once their server is
// gone.
func ReleasePort(ports ...int) {
	reserved.Lock()
	defer reserved.Unlock()
	for _, p := range ports {
		if p != 5432 && p != 6379 {
			delete(reserved.ports, p)
		}
	}
}
