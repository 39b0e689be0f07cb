package testnode

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// RunCLI runs the dynkv binary as a client command with a clean environment
// plus env and stdin, and returns its exit status and output. It fails the
// test only when the binary cannot be run at all.
func RunCLI(tb testing.TB, env []string, stdin string, args ...string) (code int, stdout, stderr string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, Build(tb), args...)
	cmd.Env = append(CleanEnv(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		tb.Fatalf("dynkv %s: %v", strings.Join(args, " "), err)
	}
	return code, out.String(), errb.String()
}

// SendAndClose dials addr, writes b, reads whatever the server answers
// within wait, and hangs up: for throwing junk at a port. It fails the
// test when addr does not accept the connection.
func SendAndClose(tb testing.TB, addr string, b []byte, wait time.Duration) {
	tb.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		tb.Fatalf("dialing %s: %v (the node should still be listening)", addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(wait))
	_, _ = conn.Write(b) // the server may hang up early; that is fine
	buf := make([]byte, 512)
	_, _ = conn.Read(buf)
}
