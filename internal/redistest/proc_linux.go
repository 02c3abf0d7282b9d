package redistest

import "syscall"

// sysProcAttr puts redis-server in its own process group, so a Ctrl-C meant for
// the test binary does not reach it first and Kill can signal the forked
// children (RDB for replication) with it, and asks the kernel to SIGKILL it when
// its parent dies: a crashed or killed test binary leaves no server behind.
//
// Pdeathsig fires when the thread that started the child exits, not the whole
// process. The Go runtime only ends a thread when a goroutine exits while locked
// to it (runtime.LockOSThread), which the launcher never does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
