package resp

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/dynkv/dynkv/internal/testutil"
	"github.com/dynkv/dynkv/node/internal/authguard"
	"github.com/dynkv/dynkv/node/metrics"
	"github.com/dynkv/dynkv/node/resp/resptest"
	"github.com/prometheus/client_golang/prometheus"
)

// multibulk encodes args as a client library does.

func TestRESPReaderBoundsCommandsBeforeAuth(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     error
	}{
		{"11 arguments", "*11\r\n", errUnauthMultibulk},
		{"the issue's MSET", "*980001\r\n$4\r\nMSET\r\n", errUnauthMultibulk},
		{"a 16 KiB + 1 argument", "*2\r\n$4\r\nAUTH\r\n$16385\r\n", errUnauthBulk},
		{"an inline command of 11 words", "a b c d e f g h i j k\r\n", errUnauthMultibulk},
		{"an inline argument of 16 KiB + 1", "AUTH " + strings.Repeat("x", 16<<10+1) + "\r\n", errUnauthBulk},
	} {
		rd := newRESPReader(strings.NewReader(c.in), 1<<20, 5<<20)
		rd.unauth = true
		if _, err := rd.readCommand(); err != c.want {
			t.Errorf("%s before AUTH: %v, want %v", c.name, err, c.want)
		}
	}
	// What AUTH and HELLO need is read.
	for _, in := range []string{
		resptest.Multibulk("HELLO", "2", "AUTH", "default", strings.Repeat("p", 16<<10), "SETNAME", "name"),
		"AUTH default secret\r\n",
		resptest.Multibulk("PING"),
	} {
		rd := newRESPReader(strings.NewReader(in), 1<<20, 5<<20)
		rd.unauth = true
		if args, err := rd.readCommand(); err != nil || len(args) == 0 {
			t.Errorf("%.40q before AUTH: %q, %v; want it read", in, args, err)
		}
	}
}

func TestRESPReaderCountsEachArgumentsOverhead(t *testing.T) {
	// 1000 one-byte arguments send 7 kB but hold about 32 kB: within a
	// 20 kB bound they are refused.
	var in strings.Builder
	fmt.Fprintf(&in, "*1001\r\n$4\r\nMSET\r\n")
	for range 1000 {
		in.WriteString("$1\r\nx\r\n")
	}
	rd := newRESPReader(strings.NewReader(in.String()), 1<<10, 20<<10)
	_, err := rd.readCommand()
	var perr protocolError
	if !errors.As(err, &perr) || !strings.HasPrefix(string(perr), "command too large") {
		t.Fatalf("1000 tiny arguments within 20 kB: %v, want command too large", err)
	}
	rd = newRESPReader(strings.NewReader(in.String()), 1<<10, 40<<10)
	if args, err := rd.readCommand(); err != nil || len(args) != 1001 {
		t.Fatalf("1000 tiny arguments within 40 kB: %d args, %v", len(args), err)
	}
}

func TestRESPReaderRefusesBeyondTheBudgetAndStaysInStep(t *testing.T) {
	gauge := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g"})
	budget := newRESPBudget(200<<10, gauge)
	big := strings.Repeat("v", 100<<10)
	small := strings.Repeat("s", 1000)
	in := resptest.Multibulk("MSET", "a", big, "b", big, "c", small) + resptest.Multibulk("SET", "k", small) +
		"SET k \"" + strings.Repeat("i", 60<<10) + "\"\r\n" + resptest.Multibulk("SET", "k", big)
	// One byte at a time: the budget is charged as the bytes arrive.
	rd := newRESPReader(&slowReader{r: strings.NewReader(in)}, 1<<20, 5<<20)
	rd.budget = budget

	// The two large values need more than the budget.
	if _, err := rd.readCommand(); err != errRESPBufferFull {
		t.Fatalf("MSET of 200 KiB within a 200 KiB budget: %v, want errRESPBufferFull", err)
	}
	rd.release()
	if u := budget.used.Load(); u != 0 {
		t.Fatalf("after a refused command the budget holds %d bytes", u)
	}
	// The next command reads, and holds its memory until release.
	args, err := rd.readCommand()
	if err != nil || len(args) != 3 || string(args[2]) != small {
		t.Fatalf("the command after the refused one: %d args, %v", len(args), err)
	}
	if u := budget.used.Load(); u < int64(len(small)) || testutil.MetricValue(t, gauge) != float64(u) {
		t.Fatalf("while a command is held the budget has %d bytes, the gauge %v", u, testutil.MetricValue(t, gauge))
	}
	rd.release()

	// Another reader holds most of the budget: an inline command that
	// does not fit is refused, and so is a multibulk one.
	other := newRESPReader(strings.NewReader(resptest.Multibulk("SET", "k", big+big[:50<<10])), 1<<20, 5<<20)
	other.budget = budget
	if _, err := other.readCommand(); err != nil {
		t.Fatalf("a 150 KiB command within the budget: %v", err)
	}
	if _, err := rd.readCommand(); err != errRESPBufferFull {
		t.Fatalf("a 60 KiB inline command with 150 KiB of 200 held: %v, want errRESPBufferFull", err)
	}
	if _, err := rd.readCommand(); err != errRESPBufferFull {
		t.Fatalf("a 100 KiB command with 150 KiB of 200 held: %v, want errRESPBufferFull", err)
	}
	other.release()
	rd.release()
	if u := budget.used.Load(); u != 0 || testutil.MetricValue(t, gauge) != 0 {
		t.Fatalf("after every release the budget holds %d bytes, the gauge %v", u, testutil.MetricValue(t, gauge))
	}
}

// slowReader returns one byte per Read.
type slowReader struct{ r io.Reader }

func (s *slowReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return s.r.Read(p[:1])
}

func TestRESPHugeCommandBeforeAuthIsClosedAtItsHeader(t *testing.T) {
	tn := startTestServer(t, func(c *Config) { c.Tokens = authguard.HashTokens([]string{"s3cret"}) })
	r := dialRaw(t, tn)
	// Only the header: the node must not wait for the arguments.
	r.Send("*980001\r\n$4\r\nMSET\r\n$1\r\nx\r\n")
	if got := r.Line(); got != "-ERR Protocol error: unauthenticated multibulk length" {
		t.Fatalf("MSET of 980001 arguments before AUTH = %q", got)
	}
	if _, err := r.R.ReadByte(); err == nil {
		t.Fatal("the connection stayed open")
	}
	r = dialRaw(t, tn)
	r.Send("*2\r\n$4\r\nAUTH\r\n$1000000\r\n")
	if got := r.Line(); got != "-ERR Protocol error: unauthenticated bulk length" {
		t.Fatalf("AUTH with a 1 MB password = %q", got)
	}
	// After AUTH the same command is read.
	r = dialRaw(t, tn)
	r.Send("AUTH s3cret\r\n" + resptest.Multibulk("MSET", "a", "1", "b", "2", "c", "3", "d", "4", "e", "5", "f", "6"))
	if got := r.Line() + r.Line(); got != "+OK+OK" {
		t.Fatalf("AUTH then an MSET of 13 arguments = %q, want +OK+OK", got)
	}
	if v := testutil.MetricValue(t, tn.metrics.Limits.RESPRefused.WithLabelValues(metrics.RefusedUnauthenticated)); v != 2 {
		t.Fatalf("dynkv_resp_refused_commands_total{reason=unauthenticated} = %v, want 2", v)
	}
}

func TestRESPBufferBudgetRefusesWithTryAgain(t *testing.T) {
	tn := startTestServer(t, func(c *Config) {
		c.MaxValueBytes = 64 << 10
		c.MaxBufferBytes = MaxCommandBytes(c.MaxValueBytes)
	})
	// A client holds most of the budget in an unfinished command.
	holder := dialRaw(t, tn)
	value := strings.Repeat("v", 64<<10)
	var partial strings.Builder
	fmt.Fprintf(&partial, "*%d\r\n$4\r\nMSET\r\n", 1+2*19)
	for i := range 18 {
		fmt.Fprintf(&partial, "$2\r\nk%d\r\n$%d\r\n%s\r\n", i%10, len(value), value)
	}
	holder.Send(partial.String())
	deadline := time.Now().Add(10 * time.Second)
	for tn.budget.used.Load() < 18*64<<10 {
		if time.Now().After(deadline) {
			t.Fatalf("the budget holds %d bytes, want the holder's 1.1 MiB", tn.budget.used.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	r := dialRaw(t, tn)
	r.Send(resptest.Multibulk("MSET", "a", value, "b", value, "c", value) + "PING\r\n")
	if got := r.Line(); got != "-"+respErrBufferFull {
		t.Fatalf("MSET beyond the budget = %q, want -%s", got, respErrBufferFull)
	}
	if got := r.Line(); got != "+PONG" {
		t.Fatalf("PING after the refused MSET = %q: the connection must stay in step", got)
	}
	if v := testutil.MetricValue(t, tn.metrics.Limits.RESPRefused.WithLabelValues(metrics.RefusedBuffer)); v != 1 {
		t.Fatalf("dynkv_resp_refused_commands_total{reason=buffer} = %v, want 1", v)
	}
	// Once the holder's command completes, its memory is free again.
	holder.Send("$1\r\nz\r\n$1\r\nz\r\n")
	if got := holder.Line(); got != "+OK" {
		t.Fatalf("the holder's MSET = %q", got)
	}
	r.Send(resptest.Multibulk("MSET", "a", value, "b", value, "c", value))
	if got := r.Line(); got != "+OK" {
		t.Fatalf("MSET once the budget is free = %q", got)
	}
	if u := tn.budget.used.Load(); u != 0 {
		t.Fatalf("idle connections hold %d bytes of the budget", u)
	}
}

func TestRESPWrongPasswordsAreDelayedAndCloseTheConnection(t *testing.T) {
	tn := startTestServer(t, func(c *Config) { c.Tokens = authguard.HashTokens([]string{"s3cret"}) })
	r := dialRaw(t, tn)
	r.Send(strings.Repeat("AUTH wrong\r\n", authguard.CloseAfter+1))
	for i := range authguard.CloseAfter {
		if got := r.Line(); got != "-"+respErrWrongPass {
			t.Fatalf("wrong AUTH %d = %q", i+1, got)
		}
	}
	if l, err := r.R.ReadString('\n'); err == nil {
		t.Fatalf("after %d wrong passwords the connection answered %q; want it closed", authguard.CloseAfter, l)
	}
	m := tn.metrics.Limits
	if v := testutil.MetricValue(t, m.AuthFailures.WithLabelValues("resp")); v != authguard.CloseAfter {
		t.Fatalf("dynkv_auth_failures_total{protocol=resp} = %v, want %d", v, authguard.CloseAfter)
	}
	if v := testutil.MetricValue(t, m.AuthDelayed.WithLabelValues("resp")); v != authguard.CloseAfter {
		t.Fatalf("dynkv_auth_delayed_total{protocol=resp} = %v, want %d", v, authguard.CloseAfter)
	}
	// 5+5+10+10+20 ms; the timer may fire a little late, never early.
	if v := testutil.MetricValue(t, m.AuthDelaySeconds.WithLabelValues("resp")); v < 0.05 {
		t.Fatalf("dynkv_auth_delay_seconds_total{protocol=resp} = %v, want at least 0.05", v)
	}
	// A right password after wrong ones works, and resets the
	// connection's count.
	r = dialRaw(t, tn)
	r.Send("AUTH wrong\r\nAUTH s3cret\r\nPING\r\n")
	if got := r.Line() + r.Line() + r.Line(); got != "-"+respErrWrongPass+"+OK+PONG" {
		t.Fatalf("wrong, right, PING = %q", got)
	}
	// HELLO AUTH counts too.
	r = dialRaw(t, tn)
	r.Send(strings.Repeat("HELLO 2 AUTH default wrong\r\n", authguard.CloseAfter))
	for range authguard.CloseAfter {
		if got := r.Line(); got != "-"+respErrWrongPass {
			t.Fatalf("wrong HELLO AUTH = %q", got)
		}
	}
	if _, err := r.R.ReadByte(); err == nil {
		t.Fatal("after wrong HELLO AUTHs the connection stayed open")
	}
}
