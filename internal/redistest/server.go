package redistest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

const (
	// startTimeout bounds how long a started redis-server may take to answer
	// PING. A healthy one needs milliseconds; the bound only turns a hang into an
	// error that carries the server log.
	startTimeout = 10 * time.Second
	// stopTimeout bounds how long Close waits after SIGTERM before SIGKILL.
	stopTimeout = 5 * time.Second
	// pollInterval is the pause between readiness probes.
	pollInterval = 10 * time.Millisecond
	// bindAttempts is how many port pairs Launch tries when another process takes
	// the chosen port between the probe and redis-server's bind.
	bindAttempts = 5
	// logTailLines is how much of the log a startup error carries.
	logTailLines = 30
)

// errAddrInUse marks a startup failure caused by a taken port, which Launch
// retries on other ports.
var errAddrInUse = errors.New("address already in use")

// Server is one running redis-server. Its methods are safe for concurrent use.
type Server struct {
	cfg     Config
	bin     string
	dir     string
	logPath string
	port    int
	certs   *certs // nil unless cfg.TLS
	node    *nodeOptions
	// sentinel, when set, makes the server a Sentinel (see sentinel.go).
	sentinel *sentinelOptions

	// mu serialises process control (Kill, Restart, Pause, Resume, Close) and
	// guards the fields below. Do and the accessors of immutable fields do not
	// take it, so a test can talk to the server while another goroutine waits in
	// Restart.
	mu       sync.Mutex
	proc     *process
	closed   bool
	closeErr error
	lastLog  string // the log as it was at Close, once the directory is gone
}

// nodeOptions makes a server a Redis Cluster node.
type nodeOptions struct {
	busPort     int
	nodeTimeout time.Duration
}

// process is one run of redis-server. A goroutine per run waits for the exit so
// that an exit during startup is seen at once and the child is always reaped.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // cmd.Wait's result; read only after done is closed
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Launch starts a redis-server and waits until it answers PING. It is meant for
// examples and other code without a testing.TB; the caller must call
// [Server.Close]. Tests use [Start].
func Launch(cfg Config) (*Server, error) {
	var c *certs
	if cfg.TLS {
		var err error
		if c, err = newCerts(cfg.TLSHosts); err != nil {
			return nil, err
		}
	}
	return launch(cfg, c, nil)
}

// Start launches a redis-server for the test and closes it in tb.Cleanup. It
// fails the test at once, with the install hint, when the server cannot start.
// If the test failed, the server's log is written to the test log at cleanup.
func Start(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	s, err := Launch(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("redis-server %s log:\n%s", s.Addr(), s.Log())
		}
		if err := s.Close(); err != nil {
			tb.Errorf("redistest: close %s: %v", s.Addr(), err)
		}
	})
	return s
}

// launch creates the server's directory and starts it, moving to other ports
// when the chosen ones are taken. node is nil for a standalone server. setup,
// if any, runs on the new Server before it starts.
func launch(cfg Config, c *certs, node *nodeOptions, setup ...func(*Server)) (*Server, error) {
	bin, err := cfg.binary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return nil, fmt.Errorf("redistest: %w", err)
	}
	s := &Server{
		cfg:     cfg,
		bin:     bin,
		dir:     dir,
		logPath: filepath.Join(dir, "redis.log"),
		certs:   c,
		node:    node,
	}
	for _, f := range setup {
		f(s)
	}
	for attempt := 1; ; attempt++ {
		if err = s.pickPorts(); err == nil {
			err = s.start()
		}
		if err == nil {
			return s, nil
		}
		s.releasePorts()
		if !errors.Is(err, errAddrInUse) || attempt == bindAttempts {
			break
		}
	}
	_ = os.RemoveAll(dir)
	return nil, err
}

func (s *Server) pickPorts() error {
	port, err := FreePort()
	if err != nil {
		return err
	}
	s.port = port
	if s.node != nil {
		bus, err := FreePort()
		if err != nil {
			ReleasePort(port)
			return err
		}
		s.node.busPort = bus
	}
	return nil
}

func (s *Server) releasePorts() {
	ReleasePort(s.port)
	if s.node != nil {
		ReleasePort(s.node.busPort)
	}
}

// args builds the command line. cfg.Args come last because redis-server lets a
// later directive override an earlier one.
func (s *Server) args() ([]string, error) {
	port := strconv.Itoa(s.port)
	args := []string{
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--dir", s.dir,
		"--logfile", s.logPath,
		// Tests may need DEBUG SLEEP and friends; only loopback clients exist anyway.
		"--enable-debug-command", "local",
		// Replicas sync at once instead of after the default 5 s batching delay.
		"--repl-diskless-sync-delay", "0",
		// On SIGTERM, exit at once instead of waiting up to 10 s for lagging
		// replicas: there is nothing to preserve.
		"--shutdown-timeout", "0",
	}
	if s.certs != nil {
		tlsArgs, err := s.certs.write(s.dir)
		if err != nil {
			return nil, err
		}
		args = append(args, "--port", "0", "--tls-port", port)
		args = append(args, tlsArgs...)
		if s.node != nil {
			args = append(args, "--tls-cluster", "yes", "--tls-replication", "yes")
		}
	} else {
		args = append(args, "--port", port)
	}
	if s.cfg.Password != "" {
		// masterauth lets the replicas of a cluster authenticate to their primary.
		args = append(args, "--requirepass", s.cfg.Password, "--masterauth", s.cfg.Password)
	}
	if s.node != nil {
		args = append(args,
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(s.dir, "nodes.conf"),
			"--cluster-node-timeout", strconv.FormatInt(s.node.nodeTimeout.Milliseconds(), 10),
			// The bus port is chosen free like the client port rather than derived
			// as port+10000, which may be taken or out of range.
			"--cluster-port", strconv.Itoa(s.node.busPort),
			// Without it a node learns its own address from the first MEET it
			// receives; the node that sends every MEET never receives one.
			"--cluster-announce-ip", "127.0.0.1",
		)
	}
	args = append(args, s.cfg.Args...)
	if s.sentinel != nil {
		return s.sentinelArgs(args)
	}
	return args, nil
}

// start runs redis-server, waits until it answers PING and creates the ACL
// users. The caller holds s.mu or owns s exclusively.
func (s *Server) start() error {
	args, err := s.args()
	if err != nil {
		return err
	}
	// stdout and stderr go to the log file too: errors in the command line are
	// printed there before redis-server opens its log file.
	out, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("redistest: %w", err)
	}
	logStart, err := out.Seek(0, io.SeekEnd)
	if err != nil {
		_ = out.Close()
		return fmt.Errorf("redistest: %w", err)
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = sysProcAttr()
	err = cmd.Start()
	_ = out.Close() // the child holds its own copy
	if err != nil {
		return fmt.Errorf("redistest: start %s: %w", s.bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	s.proc = p

	if err := s.waitReady(p, logStart); err != nil {
		killProcess(p)
		return err
	}
	if err := s.createUsers(); err != nil {
		killProcess(p)
		return err
	}
	return nil
}

// waitReady polls PING (with AUTH, over TLS as configured) until it answers
// PONG. A server still loading answers -LOADING, which counts as not ready.
func (s *Server) waitReady(p *process, logStart int64) error {
	deadline := time.Now().Add(startTimeout)
	var lastErr error
	for {
		if p.exited() {
			return s.exitError(p, logStart)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		lastErr = s.ping(ctx)
		cancel()
		if lastErr == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redistest: redis-server on %s not ready after %v: %w\nlog tail:\n%s",
				s.Addr(), startTimeout, lastErr, s.logTail(logStart))
		}
		t := time.NewTimer(pollInterval)
		select {
		case <-p.done:
			t.Stop()
			return s.exitError(p, logStart)
		case <-t.C:
		}
	}
}

func (s *Server) exitError(p *process, logStart int64) error {
	tail := s.logTail(logStart)
	err := fmt.Errorf("redistest: redis-server on port %d exited during startup (%v); log tail:\n%s", s.port, p.err, tail)
	if strings.Contains(tail, "Address already in use") {
		err = fmt.Errorf("%w: %w", errAddrInUse, err)
	}
	return err
}

func (s *Server) ping(ctx context.Context) error {
	v, err := s.query(ctx, "PING")
	if err != nil {
		return err
	}
	if v != "PONG" {
		return fmt.Errorf("redistest: PING answered %v", v)
	}
	return nil
}

func (s *Server) createUsers() error {
	for _, u := range s.cfg.Users {
		args := []string{"ACL", "SETUSER", u.Name, "on"}
		if u.Password == "" {
			args = append(args, "nopass")
		} else {
			args = append(args, ">"+u.Password)
		}
		args = append(args, u.Rules...)
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		_, err := s.Do(ctx, args...)
		cancel()
		if err != nil {
			return fmt.Errorf("redistest: create ACL user %q: %w", u.Name, err)
		}
	}
	return nil
}

// logTail returns the last lines written to the log since offset.
func (s *Server) logTail(offset int64) string {
	data, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if offset <= int64(len(data)) {
		data = data[offset:]
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > logTailLines {
		lines = lines[len(lines)-logTailLines:]
	}
	return strings.Join(lines, "\n")
}

// Addr is the server's address, "127.0.0.1:PORT".
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Port is the server's client port (the TLS port for a TLS server). It stays the
// same across [Server.Restart].
func (s *Server) Port() int { return s.port }

// Dir is the server's private temporary directory, holding its log, TLS files
// and, for a cluster node, nodes.conf. Close removes it.
func (s *Server) Dir() string { return s.dir }

// PID is the process id of the current redis-server process. It changes after
// [Server.Restart].
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc.cmd.Process.Pid
}

// TLSConfig returns a new client configuration trusting only the server's
// generated CA, with ServerName "localhost", or nil for a plain server. Each call
// returns a fresh value the caller may modify.
func (s *Server) TLSConfig() *tls.Config {
	if s.certs == nil {
		return nil
	}
	return s.certs.clientConfig()
}

// CACertPEM is the generated CA certificate in PEM, or nil for a plain server.
func (s *Server) CACertPEM() []byte {
	if s.certs == nil {
		return nil
	}
	return append([]byte(nil), s.certs.caPEM...)
}

// ClientOption is what a rueidis client needs to reach the server: its address,
// TLS configuration and the default user's password. Everything else is left at
// rueidis defaults for the caller to set.
func (s *Server) ClientOption() rueidis.ClientOption {
	return rueidis.ClientOption{
		InitAddress: []string{s.Addr()},
		TLSConfig:   s.TLSConfig(),
		Password:    s.cfg.Password,
	}
}

// Kill sends SIGKILL to the server (and any child it forked) and waits for it to
// exit. Killing a server that is not running does nothing.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	killProcess(s.proc)
	return nil
}

// Restart starts the server again on the same port with the same configuration,
// killing it first if it is running, and waits until it answers PING. Data is
// lost (nothing is persisted); ACL users are created again. A cluster node keeps
// its identity through nodes.conf and rejoins its cluster; use [Cluster.Wait] to
// wait until the cluster agrees again.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	killProcess(s.proc)
	return s.start()
}

// Pause stops the server with SIGSTOP: connections stay open but nothing is
// answered, as with a hung or overloaded server.
func (s *Server) Pause() error { return s.signal(syscall.SIGSTOP) }

// Resume continues a paused server with SIGCONT.
func (s *Server) Resume() error { return s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.proc.exited() {
		return fmt.Errorf("redistest: redis-server on %s is not running", s.Addr())
	}
	if err := s.proc.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("redistest: signal %v: %w", sig, err)
	}
	return nil
}

// Close stops the server (SIGTERM, then SIGKILL if it has not exited within a
// few seconds), waits for it to exit and removes its directory. Calling it again
// returns the first call's result.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return s.closeErr
	}
	s.closed = true
	stopProcess(s.proc)
	if data, err := os.ReadFile(s.logPath); err == nil {
		s.lastLog = string(data)
	}
	s.closeErr = os.RemoveAll(s.dir)
	s.releasePorts()
	return s.closeErr
}

// Log returns the server's log: what redis-server wrote to its log file, stdout
// and stderr, over all its runs. It still works after Close.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return s.lastLog
	}
	data, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(data)
}

// Do sends one command over a new connection (TLS and AUTH as configured),
// reads the reply and closes the connection. The reply is rendered as text:
// strings and numbers as themselves, a null as "", arrays and maps as their
// elements on separate lines. An error reply is returned as an error wrapping a
// [ReplyError]; an error nested in an array (EXEC) also returns the rendered
// text. A context deadline that passes first gives an error wrapping
// context.DeadlineExceeded. It is meant for administration in tests
// (CLUSTER INFO, ACL SETUSER, CLIENT KILL, DEBUG SLEEP), not for load.
func (s *Server) Do(ctx context.Context, args ...string) (string, error) {
	v, err := s.query(ctx, args...)
	if err != nil {
		return "", err
	}
	text, err := render(v)
	if err != nil {
		return text, fmt.Errorf("redistest: %s: %w", args[0], err)
	}
	return text, nil
}

// query is Do without rendering: the reply as readValue parsed it. A top-level
// error reply is returned as an error.
func (s *Server) query(ctx context.Context, args ...string) (any, error) {
	replies, err := s.queryMany(ctx, args)
	if err != nil {
		return nil, err
	}
	return replies[0], nil
}

// queryMany sends several commands over one new connection, after AUTH when a
// password is configured, and returns their replies. Any top-level error reply
// fails the call.
func (s *Server) queryMany(ctx context.Context, cmds ...[]string) ([]any, error) {
	for _, c := range cmds {
		if len(c) == 0 {
			return nil, errors.New("redistest: Do: no command")
		}
	}
	if s.cfg.Password != "" {
		cmds = append([][]string{{"AUTH", s.cfg.Password}}, cmds...)
	}
	replies, err := roundTrip(ctx, s.Addr(), s.TLSConfig(), cmds...)
	if err != nil {
		return nil, fmt.Errorf("redistest: %s on %s: %w", cmds[len(cmds)-1][0], s.Addr(), err)
	}
	for i, r := range replies {
		if re, ok := r.(ReplyError); ok {
			return nil, fmt.Errorf("redistest: %s on %s: %w", cmds[i][0], s.Addr(), re)
		}
	}
	if s.cfg.Password != "" {
		replies = replies[1:]
	}
	return replies, nil
}

// running reports whether the server's process is alive (it may be paused).
func (s *Server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.closed && s.proc != nil && !s.proc.exited()
}

// killProcess SIGKILLs the process group, which also ends a child forked for
// replication, and waits until the process is reaped.
func killProcess(p *process) {
	if p == nil || p.exited() {
		return
	}
	// The group id is the pid (Setpgid). Signalling the pid alone as a fallback
	// covers platforms where the group could not be created.
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}

// stopProcess asks redis-server to shut down and kills it if it does not within
// stopTimeout. SIGCONT follows SIGTERM so that a paused server can act on it.
func stopProcess(p *process) {
	if p == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-p.done:
		// redis-server kills its own forked children when it shuts down.
	case <-t.C:
		killProcess(p)
	}
}
