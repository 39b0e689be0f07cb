package e2e

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// dynkvBin is the server binary TestMain builds once for every test.
var dynkvBin string

// Bounds on waiting for a node; generous because the server may be built
// with -race and the machine is shared.
const (
	readyTimeout = 60 * time.Second
	exitTimeout  = 30 * time.Second
	httpTimeout  = 30 * time.Second
	logTailBytes = 64 << 10
)

func TestMain(m *testing.M) {
	flag.Parse()
	// `go test -list` and -short need no binary; building it would only cost time.
	if flag.Lookup("test.list").Value.String() != "" || testing.Short() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "dynkv-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: creating the build directory: %v\n", err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		bin, err := os.Getenv("DYNKV_E2E_BIN"), error(nil)
		if bin == "" { // the normal case; the variable is for testing a given build
			bin, err = buildDynkv(dir)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
			return 1
		}
		dynkvBin = bin
		code := m.Run()
		if code == 0 {
			// Every node process and its Wait goroutine must be gone by now.
			if err := goleak.Find(); err != nil {
				fmt.Fprintf(os.Stderr, "e2e: goroutines outlived the tests: %v\n", err)
				return 1
			}
		}
		return code
	}()
	os.Exit(code)
}

// buildDynkv compiles ./cmd/dynkv from the module root into dir.
func buildDynkv(dir string) (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("go env GOMOD: not inside a module (got %q)", gomod)
	}
	bin := filepath.Join(dir, "dynkv")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/dynkv")
	cmd := exec.Command("go", args...)
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s in %s: %w\n%s", strings.Join(args, " "), cmd.Dir, err, out)
	}
	return bin, nil
}

// freePort returns a loopback port that was free for both TCP and UDP a moment
// ago (gossip listens on both).
func freePort(t *testing.T) string {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("finding a free port: %v", err)
		}
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		return addr
	}
	t.Fatalf("finding a free port: no port free for both TCP and UDP after 20 tries")
	return ""
}

// nodeOptions describes one server process; the zero value is a default node.
type nodeOptions struct {
	id      string   // default "n1"
	dataDir string   // default a fresh t.TempDir()
	args    []string // extra flags, e.g. "--max-value-bytes=1024"
	env     []string // extra environment, e.g. "DYNKV_MAX_VALUE_BYTES=100"
	token   string   // bearer token the harness sends, for nodes run with --auth-token
}

// node is one `dynkv server` process that keeps its data directory and ports
// across restarts. Its methods are called from the test goroutine, except
// kill, which a load test may call from its killer goroutine.
type node struct {
	t          *testing.T
	id         string
	dataDir    string
	httpAddr   string
	gossipAddr string
	args       []string
	env        []string
	token      string
	logPath    string
	client     *http.Client

	mu   sync.Mutex // guards proc: the running incarnation, nil between kill and restart
	proc *process
}

// process is one incarnation of the server; done closes once Wait returned.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait's result, valid after done is closed
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// startNode runs a server and waits until GET /ready answers 200. Cleanup
// kills whatever is still running and prints the node's output if the test
// failed.
func startNode(t *testing.T, opts nodeOptions) *node {
	t.Helper()
	n := newNode(t, opts)
	n.start()
	return n
}

// newNode prepares a node (ports, data directory, cleanup) without starting it.
func newNode(t *testing.T, opts nodeOptions) *node {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e: skipped with -short: this test runs real dynkv server processes")
	}
	if dynkvBin == "" {
		t.Fatal("e2e: the dynkv binary was not built (TestMain did not run the build)")
	}
	n := &node{
		t:          t,
		id:         opts.id,
		dataDir:    opts.dataDir,
		httpAddr:   freePort(t),
		gossipAddr: freePort(t),
		args:       opts.args,
		env:        opts.env,
		token:      opts.token,
		logPath:    filepath.Join(t.TempDir(), "node.log"),
		client: &http.Client{
			Timeout:   httpTimeout,
			Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
		},
	}
	if n.id == "" {
		n.id = "n1"
	}
	if n.dataDir == "" {
		n.dataDir = t.TempDir()
	}
	t.Cleanup(func() {
		n.mu.Lock()
		p := n.proc
		n.mu.Unlock()
		if p != nil && !p.exited() {
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.done
		}
		n.client.CloseIdleConnections()
		// A -race server reports races on stderr; a SIGKILLed one never
		// gets to exit with status 66, so the log is the only witness.
		if n.logContains("WARNING: DATA RACE") {
			t.Errorf("node %s: the race detector reported a data race in the server (see its output)", n.id)
		}
		if t.Failed() {
			t.Logf("output of node %s (%s), last %d bytes:\n%s", n.id, n.logPath, logTailBytes, n.logTail())
		}
	})
	return n
}

func (n *node) baseURL() string { return "http://" + n.httpAddr }

func (n *node) start() {
	n.t.Helper()
	n.waitReady(n.spawn())
}

// spawn starts the process with its output appended to the node's log.
func (n *node) spawn() *process {
	t := n.t
	t.Helper()
	args := append([]string{"server",
		"--id", n.id,
		"--data-dir", n.dataDir,
		"--http-addr", n.httpAddr,
		"--gossip-addr", n.gossipAddr,
		"--resp-addr", "",
	}, n.args...)
	logf, err := os.OpenFile(n.logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatalf("node %s: opening its log: %v", n.id, err)
	}
	fmt.Fprintf(logf, "=== e2e %s: %s %s\n", time.Now().Format(time.RFC3339Nano), dynkvBin, strings.Join(args, " "))
	cmd := exec.Command(dynkvBin, args...)
	cmd.Env = append(cleanEnv(), n.env...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	// If the test binary dies (a -timeout panic), the server dies with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("node %s: starting %s: %v", n.id, dynkvBin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	n.mu.Lock()
	n.proc = p
	n.mu.Unlock()
	return p
}

// startExpectingExit starts the node when it is expected to refuse to run:
// it returns the exit status and what this incarnation printed. It fails the
// test if the node is still running after exitTimeout.
func (n *node) startExpectingExit() (int, string) {
	t := n.t
	t.Helper()
	if n.Running() {
		t.Fatalf("node %s: startExpectingExit while still running", n.id)
	}
	var from int64
	if fi, err := os.Stat(n.logPath); err == nil {
		from = fi.Size()
	}
	p := n.spawn()
	select {
	case <-p.done:
	case <-time.After(exitTimeout):
		_ = n.kill()
		t.Fatalf("node %s: still running %v after start, want it to refuse to start and exit", n.id, exitTimeout)
	}
	n.mu.Lock()
	n.proc = nil
	n.mu.Unlock()
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		t.Fatalf("node %s: reading its log: %v", n.id, err)
	}
	return p.cmd.ProcessState.ExitCode(), string(b[from:])
}

func (n *node) waitReady(p *process) {
	t := n.t
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	var last string
	for time.Now().Before(deadline) {
		if p.exited() {
			t.Fatalf("node %s exited before it was ready: %v (want: GET /ready 200)", n.id, p.err)
		}
		req, err := http.NewRequest(http.MethodGet, n.baseURL()+"/ready", nil)
		if err != nil {
			t.Fatal(err)
		}
		if n.token != "" {
			req.Header.Set("Authorization", "Bearer "+n.token)
		}
		resp, err := n.client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("node %s not ready within %v: last GET /ready gave %s (want 200)", n.id, readyTimeout, last)
}

// kill sends SIGKILL and waits for the process to be gone. Safe from any goroutine.
func (n *node) kill() error {
	n.mu.Lock()
	p := n.proc
	n.proc = nil
	n.mu.Unlock()
	if p == nil {
		return fmt.Errorf("node %s: kill: not running", n.id)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !p.exited() {
		return fmt.Errorf("node %s: SIGKILL: %w", n.id, err)
	}
	select {
	case <-p.done:
	case <-time.After(exitTimeout):
		return fmt.Errorf("node %s: still running %v after SIGKILL", n.id, exitTimeout)
	}
	n.client.CloseIdleConnections()
	return nil
}

// Kill is kill for the test goroutine.
func (n *node) Kill() {
	n.t.Helper()
	if err := n.kill(); err != nil {
		n.t.Fatal(err)
	}
}

// Stop sends SIGTERM and requires a clean exit with status 0 within exitTimeout.
func (n *node) Stop() {
	t := n.t
	t.Helper()
	n.mu.Lock()
	p := n.proc
	n.proc = nil
	n.mu.Unlock()
	if p == nil {
		t.Fatalf("node %s: Stop: not running", n.id)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("node %s: SIGTERM: %v", n.id, err)
	}
	select {
	case <-p.done:
	case <-time.After(exitTimeout):
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		t.Fatalf("node %s: still running %v after SIGTERM (want a clean exit); killed it", n.id, exitTimeout)
	}
	n.client.CloseIdleConnections()
	// Not fatal: the process is gone either way, and what a restart finds
	// says more about the failure.
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("node %s: exit status after SIGTERM: got %d (%v), want 0", n.id, code, p.err)
	}
}

// Restart starts the node again on the same data directory and ports.
func (n *node) Restart() {
	n.t.Helper()
	n.mu.Lock()
	running := n.proc != nil
	n.mu.Unlock()
	if running {
		n.t.Fatalf("node %s: Restart while still running; Kill or Stop it first", n.id)
	}
	n.start()
}

// Running reports whether the current incarnation is alive.
func (n *node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc != nil && !n.proc.exited()
}

// cleanEnv is the test's environment without DYNKV_* variables, so that a
// developer's settings cannot change what a node or client under test does.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DYNKV_") {
			env = append(env, kv)
		}
	}
	return env
}

// logContains reports whether any incarnation of the node printed s.
func (n *node) logContains(s string) bool {
	b, err := os.ReadFile(n.logPath)
	return err == nil && bytes.Contains(b, []byte(s))
}

func (n *node) logTail() string {
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", n.logPath, err)
	}
	if len(b) > logTailBytes {
		b = b[len(b)-logTailBytes:]
	}
	return string(bytes.ToValidUTF8(b, []byte("?")))
}
