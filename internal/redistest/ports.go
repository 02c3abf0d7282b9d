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
}{ports: make(map[int]bool)}

// freePort returns a loopback TCP port that nothing listened on a moment ago
// and that no other server of this process holds.
func freePort() (int, error) {
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

// releasePorts gives ports back once their server is gone.
func releasePorts(ports ...int) {
	reserved.Lock()
	defer reserved.Unlock()
	for _, p := range ports {
		delete(reserved.ports, p)
	}
}
