package testnode

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dynkv/dynkv/internal/defaults"
)

// Bounds on waiting for a process. Generous because the server may be
// built with -race and two cores are shared by a whole cluster.
const (
	ReadyTimeout = 60 * time.Second
	ExitTimeout  = 30 * time.Second
	HTTPTimeout  = 30 * time.Second
	logTailBytes = 32 << 10
)

// harnessLinePrefix starts the lines the harness writes into a node's log
// between the process's own output.
const harnessLinePrefix = "=== testnode "

// Node is one `dynkv server` process that keeps its id, data directory and
// addresses across restarts. Kill, Pause, Resume, Running and the HTTP
// helpers are safe from any goroutine; Start, Stop, Restart and WaitReady
// fail the test and belong to the test goroutine.
type Node struct {
	tb      testing.TB
	net     Network
	bin     string
	index   int
	id      string
	dataDir string
	// httpAddr and gossipAddr are host:port, fixed at creation.
	httpAddr   string
	gossipAddr string
	env        []string
	token      string
	scheme     string // "https" for a node run with --tls-cert, else "http"
	logPath    string
	http       *http.Client

	mu   sync.Mutex // guards proc, args and join
	proc *process   // the running incarnation; nil when none
	args []string
	// join is the --join list of the next start; a node that joined
	// keeps it across restarts, as an operator's unit file would.
	join []string
}

// process is one incarnation; done closes once Wait returned.
type process struct {
	pid  int
	cmd  *os.Process
	done chan struct{}
	err  error // Wait's result, valid after done closed
	code int   // exit code, valid after done closed
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// NodeOptions describes one node; the zero value needs only an index.
type NodeOptions struct {
	// ID defaults to "n<index>".
	ID string
	// Args are extra `dynkv server` flags for every start.
	Args []string
	// Join is the --join list (gossip addresses); empty founds a cluster.
	Join []string
	// Network defaults to Loopback.
	Network Network
	// DataDir is the --data-dir, e.g. a size-limited mount; it defaults
	// to a fresh directory under the test's TempDir.
	DataDir string
	// Env is extra environment ("NAME=value") for every start, after
	// CleanEnv, e.g. a DYNKV_* setting under test.
	Env []string
	// Token is sent as "Authorization: Bearer <Token>" by Do and
	// WaitReady, for a node run with --auth-token (only /health is open).
	Token string
	// TLS, for a node run with --tls-cert, makes the harness speak https
	// with this client configuration (PKI.ClientTLS, or PKI.TLSWith to
	// present a certificate); nil speaks plain http.
	TLS *tls.Config
}

// NewNode prepares node index (addresses, data directory, log, cleanup)
// without starting it. Cleanup kills the process and, when the test
// failed, logs the tail of the node's output.
func NewNode(tb testing.TB, index int, opts NodeOptions) *Node {
	tb.Helper()
	if testing.Short() {
		tb.Skip("testnode: skipped with -short: runs real dynkv server processes")
	}
	if opts.Network == nil {
		opts.Network = Loopback{}
	}
	defaults.Set(&opts.ID, fmt.Sprintf("n%d", index))
	if opts.DataDir == "" {
		opts.DataDir = filepath.Join(tb.TempDir(), "data")
	}
	httpAddr, gossipAddr, err := nodeAddrs(opts.Network, index)
	if err != nil {
		tb.Fatalf("node %s: %v", opts.ID, err)
	}
	scheme := "http"
	var tc *tls.Config
	if opts.TLS != nil {
		scheme, tc = "https", opts.TLS.Clone()
	}
	n := &Node{
		tb:         tb,
		net:        opts.Network,
		bin:        Build(tb),
		index:      index,
		id:         opts.ID,
		dataDir:    opts.DataDir,
		httpAddr:   httpAddr,
		gossipAddr: gossipAddr,
		args:       opts.Args,
		env:        opts.Env,
		token:      opts.Token,
		scheme:     scheme,
		join:       opts.Join,
		logPath:    filepath.Join(tb.TempDir(), opts.ID+".log"),
		http: &http.Client{
			Timeout: HTTPTimeout,
			Transport: &http.Transport{
				MaxIdleConnsPerHost: 64,
				DisableCompression:  true,
				TLSClientConfig:     tc,
			},
		},
	}
	tb.Cleanup(func() {
		if p := n.current(); p != nil {
			if !p.exited() {
				_ = p.cmd.Signal(syscall.SIGKILL)
			}
			<-p.done
		}
		n.http.CloseIdleConnections()
		if n.LogContains("WARNING: DATA RACE") {
			tb.Errorf("node %s: the race detector reported a data race in the server (see its output)", n.id)
		}
		if tb.Failed() {
			tb.Logf("output of node %s (%s), last %d bytes:\n%s", n.id, n.logPath, logTailBytes, n.LogTail(logTailBytes))
		}
	})
	return n
}

// ID is the node's --id.
func (n *Node) ID() string { return n.id }

// Index is the node's position in its cluster.
func (n *Node) Index() int { return n.index }

// Addr is the HTTP host:port (clients and node-to-node RPC).
func (n *Node) Addr() string { return n.httpAddr }

// URL is the HTTP base URL (https:// when NodeOptions.TLS is set),
// without a trailing slash.
func (n *Node) URL() string { return n.scheme + "://" + n.httpAddr }

// GossipAddr is the memberlist host:port, what other nodes --join.
func (n *Node) GossipAddr() string { return n.gossipAddr }

// DataDir is the node's --data-dir.
func (n *Node) DataDir() string { return n.dataDir }

// LogPath is the file holding the output of every incarnation.
func (n *Node) LogPath() string { return n.logPath }

// HTTPClient is the client the node's helpers use, for a request they
// cannot express (a streamed body, a missing or wrong token). It adds no
// Authorization header of its own.
func (n *Node) HTTPClient() *http.Client { return n.http }

// Args are the extra server flags of the next start.
func (n *Node) Args() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.args)
}

// SetArgs replaces the extra server flags from the next start on, e.g. to
// restart with a repair flag and then without it.
func (n *Node) SetArgs(args []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.args = slices.Clone(args)
}

func (n *Node) current() *process {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc
}

// Running reports whether the current incarnation is alive (a paused one
// counts as running).
func (n *Node) Running() bool {
	p := n.current()
	return p != nil && !p.exited()
}

// Start runs the node and waits until GET /ready answers 200.
func (n *Node) Start() {
	n.tb.Helper()
	n.StartNoWait()
	n.WaitReady()
}

// StartNoWait runs the node without waiting for it to be ready, so that
// several nodes can start at once.
func (n *Node) StartNoWait() {
	n.tb.Helper()
	if n.Running() {
		n.tb.Fatalf("node %s: start while still running", n.id)
	}
	if err := n.spawn(); err != nil {
		n.tb.Fatal(err)
	}
}

func (n *Node) serverArgs() []string {
	n.mu.Lock()
	join, extra := n.join, n.args
	n.mu.Unlock()
	args := []string{"server",
		"--id", n.id,
		"--data-dir", n.dataDir,
		"--http-addr", n.httpAddr,
		"--gossip-addr", n.gossipAddr,
		"--resp-addr", "",
	}
	if len(join) > 0 {
		args = append(args, "--join", strings.Join(join, ","))
	}
	return append(args, extra...)
}

func (n *Node) spawn() error {
	args := n.serverArgs()
	logf, err := os.OpenFile(n.logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("node %s: opening its log: %w", n.id, err)
	}
	fmt.Fprintf(logf, harnessLinePrefix+"%s: %s %s\n", time.Now().UTC().Format(time.RFC3339Nano), n.bin, strings.Join(args, " "))
	cmd := n.net.Command(n.index, n.bin, args)
	cmd.Env = append(CleanEnv(), n.env...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	// If the test binary dies (a -timeout panic), its nodes die with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("node %s: starting %s: %w", n.id, n.bin, err)
	}
	p := &process{pid: cmd.Process.Pid, cmd: cmd.Process, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
		fmt.Fprintf(logf, harnessLinePrefix+"%s: process %d exited: %v\n", time.Now().UTC().Format(time.RFC3339Nano), p.pid, p.err)
		logf.Close()
		close(p.done)
	}()
	n.mu.Lock()
	n.proc = p
	n.mu.Unlock()
	return nil
}

// StartExpectingExit starts the node when it is expected to refuse to
// run, waits for the process to exit and returns its exit status and what
// it printed (without the harness's own log lines). It fails the test if
// the process is still running after ExitTimeout.
func (n *Node) StartExpectingExit() (code int, output string) {
	n.tb.Helper()
	if n.Running() {
		n.tb.Fatalf("node %s: StartExpectingExit while still running", n.id)
	}
	var from int64
	if fi, err := os.Stat(n.logPath); err == nil {
		from = fi.Size()
	}
	if err := n.spawn(); err != nil {
		n.tb.Fatal(err)
	}
	p := n.current()
	select {
	case <-p.done:
	case <-time.After(ExitTimeout):
		_ = n.Kill()
		n.tb.Fatalf("node %s: still running %v after start, want it to refuse to start and exit", n.id, ExitTimeout)
	}
	n.mu.Lock()
	n.proc = nil
	n.mu.Unlock()
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		n.tb.Fatalf("node %s: reading its log: %v", n.id, err)
	}
	var out strings.Builder
	for _, line := range strings.SplitAfter(string(b[from:]), "\n") {
		if !strings.HasPrefix(line, harnessLinePrefix) {
			out.WriteString(line)
		}
	}
	return p.code, out.String()
}

// WaitReady waits until GET /ready answers 200, failing the test if the
// process exits or ReadyTimeout passes.
func (n *Node) WaitReady() {
	n.tb.Helper()
	if err := n.waitReady(ReadyTimeout); err != nil {
		n.tb.Fatal(err)
	}
}

func (n *Node) waitReady(timeout time.Duration) error {
	p := n.current()
	if p == nil {
		return fmt.Errorf("node %s: WaitReady: not running", n.id)
	}
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("node %s exited before it was ready: %v (want: GET /ready 200)", n.id, p.err)
		}
		r, err := n.Do(Request{Method: http.MethodGet, Path: "/ready"})
		if err == nil && r.Status == http.StatusOK {
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("%d %s", r.Status, bytes.TrimSpace(r.Body))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("node %s not ready within %v: last GET /ready gave %s (want 200)", n.id, timeout, last)
}

// Kill sends SIGKILL and waits until the process is gone.
func (n *Node) Kill() error {
	n.mu.Lock()
	p := n.proc
	n.proc = nil
	n.mu.Unlock()
	if p == nil {
		return fmt.Errorf("node %s: kill: not running", n.id)
	}
	if err := p.cmd.Signal(syscall.SIGKILL); err != nil && !p.exited() {
		return fmt.Errorf("node %s: SIGKILL: %w", n.id, err)
	}
	select {
	case <-p.done:
	case <-time.After(ExitTimeout):
		return fmt.Errorf("node %s: still running %v after SIGKILL", n.id, ExitTimeout)
	}
	n.http.CloseIdleConnections()
	return nil
}

// MustKill is Kill for the test goroutine.
func (n *Node) MustKill() {
	n.tb.Helper()
	if err := n.Kill(); err != nil {
		n.tb.Fatal(err)
	}
}

// Stop sends SIGTERM and requires exit status 0 within ExitTimeout.
func (n *Node) Stop() {
	n.tb.Helper()
	n.mu.Lock()
	p := n.proc
	n.proc = nil
	n.mu.Unlock()
	if p == nil {
		n.tb.Fatalf("node %s: Stop: not running", n.id)
	}
	if err := p.cmd.Signal(syscall.SIGTERM); err != nil {
		n.tb.Fatalf("node %s: SIGTERM: %v", n.id, err)
	}
	select {
	case <-p.done:
	case <-time.After(ExitTimeout):
		_ = p.cmd.Signal(syscall.SIGKILL)
		<-p.done
		n.tb.Fatalf("node %s: still running %v after SIGTERM (want a clean exit); killed it", n.id, ExitTimeout)
	}
	n.http.CloseIdleConnections()
	if p.code != 0 {
		// Not fatal: the process is gone either way, and what a restart
		// finds says more.
		n.tb.Errorf("node %s: exit status after SIGTERM: got %d (%v), want 0", n.id, p.code, p.err)
	}
}

// Pause stops the process with SIGSTOP: it keeps its sockets but answers
// nothing, like a node behind a partition or in a long GC pause. Signals
// are delivered asynchronously, so it waits (bounded) until the kernel
// reports the process stopped: a test may then rely on it.
func (n *Node) Pause() error {
	if err := n.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	deadline := time.Now().Add(ExitTimeout)
	for {
		st, err := n.procState()
		if err != nil {
			return fmt.Errorf("node %s: after SIGSTOP: %w", n.id, err)
		}
		if st == 'T' || st == 't' {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s: state %q %v after SIGSTOP, want T (stopped)", n.id, st, ExitTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// procState reads the one-letter state of the process from /proc.
func (n *Node) procState() (byte, error) {
	p := n.current()
	if p == nil {
		return 0, fmt.Errorf("not running")
	}
	path := fmt.Sprintf("/proc/%d/stat", p.pid)
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", path, err)
	}
	// The command name in parentheses may hold spaces; the state follows it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, fmt.Errorf("%s: unexpected content %q", path, b)
	}
	return b[i+2], nil
}

// Resume continues a paused process with SIGCONT.
func (n *Node) Resume() error { return n.signal(syscall.SIGCONT) }

func (n *Node) signal(sig syscall.Signal) error {
	p := n.current()
	if p == nil || p.exited() {
		return fmt.Errorf("node %s: %v: not running", n.id, sig)
	}
	if err := p.cmd.Signal(sig); err != nil {
		return fmt.Errorf("node %s: %v: %w", n.id, sig, err)
	}
	return nil
}

// Restart starts the node again with the same id, data directory and
// addresses, and waits until it is ready.
func (n *Node) Restart() {
	n.tb.Helper()
	if n.Running() {
		n.tb.Fatalf("node %s: Restart while still running; Kill or Stop it first", n.id)
	}
	n.Start()
}

// LogContains reports whether any incarnation of the node printed s.
func (n *Node) LogContains(s string) bool {
	b, err := os.ReadFile(n.logPath)
	return err == nil && bytes.Contains(b, []byte(s))
}

// LogTail returns the last max bytes of the node's output.
func (n *Node) LogTail(max int) string {
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", n.logPath, err)
	}
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(bytes.ToValidUTF8(b, []byte("?")))
}

// CleanEnv is the test's environment without DYNKV_* variables, so that a
// developer's settings cannot change what a node or CLI under test does.
func CleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DYNKV_") {
			env = append(env, kv)
		}
	}
	return env
}
