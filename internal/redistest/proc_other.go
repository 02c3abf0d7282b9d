//go:build unix && !linux

package redistest

import "syscall"

// sysProcAttr puts redis-server in its own process group, so a Ctrl-C meant for
// the test binary does not reach it first. Outside Linux there is no parent-death
// signal: Close (or tb.Cleanup) must run for the server to stop.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
