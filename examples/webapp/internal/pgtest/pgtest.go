// Package pgtest starts a private PostgreSQL server for tests: initdb in a
// temporary directory, then postgres listening on a free loopback port (never
// 5432) with its unix socket in that directory, run as an unprivileged user
// when the test runs as root (PostgreSQL refuses to run as root). Nothing
// touches the machine's own PostgreSQL.
//
// A test binary usually shares one server ([Launch] from TestMain, or lazily)
// and gives each test a database of its own ([Server.CreateDatabase]).
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aside-go/aside/internal/redistest"
)

// InstallHint is how to get the server binaries; every error about missing
// binaries carries it.
const InstallHint = "install PostgreSQL's server binaries (initdb, postgres): " +
	"scripts/ensure-postgres from the repository root does it on Debian/Ubuntu " +
	"(sudo apt-get install -y postgresql); on macOS brew install postgresql"

// ErrNoBinaries reports that initdb or postgres was found neither on PATH nor
// under /usr/lib/postgresql/*/bin.
var ErrNoBinaries = errors.New("pgtest: PostgreSQL server binaries not found: " + InstallHint)

const (
	// readyAttempts bounds the connection attempts while the server starts;
	// with readyPause between them, about 30 s before giving up. A healthy
	// server answers within a second.
	readyAttempts = 600
	readyPause    = 50 * time.Millisecond
	// stopTimeout bounds the wait after SIGINT (fast shutdown) before SIGKILL.
	stopTimeout = 10 * time.Second
	// bindAttempts is how many ports Launch tries when another process takes
	// the chosen one between the probe and the server's bind.
	bindAttempts = 5
	// superuser is the role initdb creates; the server trusts loopback.
	superuser = "postgres"
)

// Server is one running private PostgreSQL server.
type Server struct {
	dir  string // removed by Close
	port int
	cmd  *exec.Cmd
	log  *bytes.Buffer // the server's stderr, guarded by logMu
	// logMu guards log, which the exec package's copying goroutine writes.
	logMu  *sync.Mutex
	exited chan struct{} // closed when the postgres process has exited

	dbs       atomic.Int64
	closeOnce sync.Once
	closeErr  error
}

// Start launches a server for one test and stops it in t.Cleanup. It fails
// the test (never skips it) when the binaries are missing.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s, err := Launch()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("pgtest: %v", err)
		}
	})
	return s
}

// Launch starts a server; the caller must Close it.
func Launch() (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	cred, uid, gid, err := credential()
	if err != nil {
		return nil, err
	}
	// Not t.TempDir: its parents are private to root, and the server's user
	// must reach the directory.
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = os.RemoveAll(dir)
		}
	}()
	if cred != nil {
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, fmt.Errorf("pgtest: chown %s to the server's user: %w", dir, err)
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", superuser,
		"--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pgtest: initdb: %v\n%s", err, out)
	}
	var lastErr error
	for range bindAttempts {
		s, err := start(bin, dir, data, cred)
		if err == nil {
			ok = true
			return s, nil
		}
		lastErr = err
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	return nil, lastErr
}

var errAddrInUse = errors.New("address already in use")

func start(bin, dir, data string, cred *syscall.Credential) (*Server, error) {
	port, err := redistest.FreePort()
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, port: port, log: new(bytes.Buffer), logMu: new(sync.Mutex), exited: make(chan struct{})}
	// Durability off: a test database is thrown away.
	s.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data,
		"-p", strconv.Itoa(port), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200", "-c", "logging_collector=off")
	s.cmd.Dir = dir
	s.cmd.Stdout = lockedWriter{s.logMu, s.log}
	s.cmd.Stderr = s.cmd.Stdout
	// Its own process group, so a Ctrl-C meant for the tests does not stop it
	// first, and SIGKILL when the test binary dies, so none is left behind.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("pgtest: start postgres: %w", err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitReady(); err != nil {
		s.kill()
		redistest.ReleasePort(port)
		if strings.Contains(s.Log(), "could not bind") || strings.Contains(s.Log(), "already in use") {
			return nil, fmt.Errorf("%w: %v", errAddrInUse, err)
		}
		return nil, err
	}
	return s, nil
}

// waitReady polls a connection to the server, a bounded number of times,
// until one succeeds, or the process exits.
func (s *Server) waitReady() error {
	var lastErr error
	for range readyAttempts {
		select {
		case <-s.exited:
			return fmt.Errorf("pgtest: postgres exited during startup:\n%s", s.Log())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(ctx, s.URL("postgres"))
		if err == nil {
			err = conn.Ping(ctx)
			_ = conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		lastErr = err
		select {
		case <-s.exited:
		case <-time.After(readyPause):
		}
	}
	return fmt.Errorf("pgtest: postgres not ready after %d attempts: %v\n%s", readyAttempts, lastErr, s.Log())
}

// Port is the server's loopback TCP port.
func (s *Server) Port() int { return s.port }

// URL is the connection URL of database name, as the superuser.
func (s *Server) URL(name string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", superuser, s.port, name)
}

// CreateDatabase creates a new empty database with a unique name and returns
// its URL. Tests on one server stay independent by each using its own.
func (s *Server) CreateDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("test_%d", s.dbs.Add(1))
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("pgtest: create database %s: %w", name, err)
	}
	return s.URL(name), nil
}

// NewDatabase is CreateDatabase for a test; it fails the test on error.
func (s *Server) NewDatabase(tb testing.TB) string {
	tb.Helper()
	url, err := s.CreateDatabase(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return url
}

// Log returns what the server wrote to stderr.
func (s *Server) Log() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.log.String()
}

// Close stops the server (fast shutdown, SIGKILL after stopTimeout) and
// removes its directory.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.exited:
		case <-time.After(stopTimeout):
			s.kill()
			s.closeErr = fmt.Errorf("pgtest: postgres did not stop within %v after SIGINT; killed", stopTimeout)
		}
		if err := os.RemoveAll(s.dir); err != nil && s.closeErr == nil {
			s.closeErr = err
		}
		redistest.ReleasePort(s.port)
	})
	return s.closeErr
}

func (s *Server) kill() {
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.exited
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// libGlob is where Debian's packages install each major version's binaries.
var libGlob = "/usr/lib/postgresql/*/bin"

// binDir finds the directory of initdb and postgres: PATH first, then the
// newest /usr/lib/postgresql/<version>/bin (Debian's packages put them there
// and not on PATH).
func binDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if isExec(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob(libGlob)
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	for _, dir := range dirs {
		if isExec(filepath.Join(dir, "initdb")) && isExec(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	return "", ErrNoBinaries
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isExec(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// credential is who the server runs as: nil (this process's user) unless
// this process is root, then the postgres system user, or nobody.
func credential() (cred *syscall.Credential, uid, gid int, err error) {
	if os.Geteuid() != 0 {
		return nil, 0, 0, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err1 != nil || err2 != nil || uid == 0 {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid, gid, nil
	}
	return nil, 0, 0, errors.New("pgtest: running as root and no unprivileged user (postgres, nobody) to run PostgreSQL as")
}
