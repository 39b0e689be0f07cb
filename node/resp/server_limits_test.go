package resp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestRESPIdleTimeoutClosesAnIdleConnection(t *testing.T) {
	tn := startTestServer(t, func(c *Config) { c.IdleTimeout = 100 * time.Millisecond })
	r := dialRaw(t, tn)
	r.Send("PING\r\n")
	if got := r.Reply(); got != "PONG" {
		t.Fatalf("PING = %q, want PONG", got)
	}
	// Then nothing: the server hangs up by itself.
	b, err := r.R.ReadByte()
	if err == nil || !(errors.Is(err, io.EOF) || strings.Contains(err.Error(), "connection reset")) {
		t.Fatalf("an idle connection with --resp-idle-timeout: read %q, %v; want EOF", b, err)
	}
}

// replyRecorder records the size of every write the server makes.
type replyRecorder struct {
	total, largest, writes int
}

func (w *replyRecorder) Write(p []byte) (int, error) {
	w.total += len(p)
	w.largest = max(w.largest, len(p))
	w.writes++
	return len(p), nil
}

func TestRESPPipelinedLargeRepliesAreWrittenInBoundedPieces(t *testing.T) {
	tn := startTestServer(t, nil)
	rc := redisClient(t, tn, nil)
	value := bytes.Repeat([]byte("v"), 1<<20)
	if err := rc.Set(ctxT(t), "big", value, 0).Err(); err != nil {
		t.Fatalf("SET big: %v", err)
	}
	// A client that pipelines many GETs of a 1 MiB value in one go: the
	// server must not gather the replies before writing them (a client
	// that never reads would then cost gigabytes); each write carries at
	// most respReplyBufferSize plus one reply, so when the client stops
	// reading, the server blocks with that much buffered at most.
	const gets = 64
	pipeline := strings.Repeat("*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n", gets)
	var w replyRecorder
	if err := tn.serveStream(strings.NewReader(pipeline), &w, tn.newSession("test")); err != nil {
		t.Fatalf("serving the pipeline: %v", err)
	}
	if w.total < gets*len(value) {
		t.Fatalf("the server wrote %d bytes, want the %d replies of %d bytes", w.total, gets, len(value))
	}
	// Bounded: the largest write is about one reply, a small fraction of
	// the pipeline's replies.
	if ratio := float64(w.largest) / float64(w.total); ratio > 2.0/gets {
		t.Fatalf("largest write %d bytes of %d in %d writes (ratio %.3f): replies are gathered, want each write at most ~1 reply (ratio <= %.3f)",
			w.largest, w.total, w.writes, ratio, 2.0/gets)
	}
}

func TestRESPMGETRefusesAReplyBeyondItsBound(t *testing.T) {
	tn := startTestServer(t, nil)
	rc := redisClient(t, tn, nil)
	ctx := ctxT(t)
	value := strings.Repeat("v", 1000)
	if err := rc.Set(ctx, "k", value, 0).Err(); err != nil {
		t.Fatalf("SET k: %v", err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	// The test goroutine serves the stream itself, so no connection
	// goroutine reads maxReply while it changes.
	tn.maxReply = 10 * int64(len(value))
	serve := func(keys int) string {
		t.Helper()
		cmd := fmt.Sprintf("*%d\r\n$4\r\nMGET\r\n", keys+1) + strings.Repeat("$1\r\nk\r\n", keys)
		var out bytes.Buffer
		if err := tn.serveStream(strings.NewReader(cmd), &out, tn.newSession("test")); err != nil {
			t.Fatalf("MGET of %d keys: %v", keys, err)
		}
		return out.String()
	}
	if got := serve(10); !strings.HasPrefix(got, "*10\r\n") || strings.Count(got, value) != 10 {
		t.Fatalf("MGET of 10 × 1000 bytes within a 10000-byte bound = %.80q..., want 10 values", got)
	}
	// A million-fold MGET of one key would otherwise gather a million
	// copies; 1000 are enough to show the refusal.
	if got := serve(1000); !strings.HasPrefix(got, "-ERR reply too large") {
		t.Fatalf("MGET of 1000 × 1000 bytes beyond a 10000-byte bound = %.120q, want -ERR reply too large", got)
	}
}

func TestRESPIdleReaderKeepsTheDrainDeadline(t *testing.T) {
	// A connection executing a command when stop runs reads again
	// afterwards: that read must see stop's past deadline, not push it an
	// idle timeout away (the drain would wait for the shutdown timeout).
	a, b := net.Pipe()
	defer b.Close()
	var stopping atomic.Bool
	stopping.Store(true)
	_ = a.SetReadDeadline(time.Now()) // as stop does
	r := &idleReader{c: a, idle: time.Hour, stopping: &stopping}
	unblock := time.AfterFunc(hangBound, func() { _ = a.Close() })
	defer unblock.Stop()
	if _, err := r.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a read after stop set its deadline: %v, want the deadline exceeded at once", err)
	}
	// While not stopping, the idle deadline is renewed on every read.
	c, d := net.Pipe()
	defer c.Close()
	defer d.Close()
	_ = c.SetReadDeadline(time.Now())
	stopping.Store(false)
	r = &idleReader{c: c, idle: hangBound, stopping: &stopping}
	go func() { _, _ = d.Write([]byte("x")) }()
	if n, err := r.Read(make([]byte, 1)); n != 1 || err != nil {
		t.Fatalf("a read with data waiting and an idle timeout ahead = %d, %v; want 1 byte", n, err)
	}
}
