package redistest_test

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// A test binary that dies without cleanup must not leave its servers running.
func TestServerDiesWithParent(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), orphanEnv+"=1")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())

	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	pidText, dir, ok := strings.Cut(strings.TrimSpace(line), " ")
	require.True(t, ok, "child said %q", line)
	pid, err := strconv.Atoi(pidText)
	require.NoError(t, err, "child said %q", line)
	// Nobody else will remove the orphaned server's directory.
	t.Cleanup(func() { _ = os.RemoveAll(dir) })

	// A pidfd, opened while the server's parent still lives (so the pid cannot
	// have been reused), becomes readable when the server exits.
	fd, err := unix.PidfdOpen(pid, 0)
	require.NoError(t, err, "server is running while its parent lives")
	defer unix.Close(fd)

	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()

	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 10_000) // a bound, not a timing: exit comes at once
		if errors.Is(err, unix.EINTR) {
			continue
		}
		require.NoError(t, err)
		require.Equal(t, 1, n, "redis-server %d outlived its parent", pid)
		break
	}
}
