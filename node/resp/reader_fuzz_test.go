package resp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/iotest"
)

// Small bounds, so that the fuzzer reaches the limits with small inputs.
const (
	fuzzMaxBulk    = 64
	fuzzMaxCommand = 256
)

// FuzzRESPReader reads an arbitrary stream with the Redis port's reader, as
// a connection does: it must not panic, must stop at the first protocol
// error, must fail only with the errors the connection handles, must keep
// an argument within maxBulk (a multibulk one) or the inline line bound,
// and must read the same commands whether the bytes arrive at once or one
// at a time.
func FuzzRESPReader(f *testing.F) {
	for _, s := range []string{
		"PING\r\n",
		"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
		"*0\r\n\r\n*-1\r\nPING\r\n",
		"*1\r\n$65\r\n" + string(bytes.Repeat([]byte("x"), 65)) + "\r\nPING\r\n",
		"*5\r\n$60\r\n" + string(bytes.Repeat([]byte("x"), 60)) + "\r\n$60\r\n" + string(bytes.Repeat([]byte("y"), 60)) + "\r\n",
		"*1\r\n$9223372036854775807\r\n",
		"*1048577\r\n",
		"*1\r\n$-1\r\n",
		"*1\r\n$+1\r\nx\r\n",
		"*1\r\n$1\r\nxx\r\n",
		"*1\n",
		"SET k \"a\\x00b\" 'c d'\r\n",
		"\"unbalanced\r\n",
		"*2\r\n$3\r\nGET\r\n",
		// Redis's inline quoting (sdssplitargs).
		"SET \"a b\" \"c\\x41d\"\r\nGET \"a b\"\r\n",
		"SET 'it\\'s' \"\\n\\r\\t\\b\\a\\\\\\\"\\q\"\r\n",
		"SET a\"b c\" ''\r\n",
		"SET \"a\"b c\r\n",
		"SET 'a'b c\r\n",
		"SET \"\\x4\" \"\\xZZ\" \"\\\r\n",
		"SET 'unbalanced\r\n",
		"SET a\x00\"b\r\n",
		"\t\v\fPING\v\f\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		all := readAllCommands(t, bytes.NewReader(in), len(in), false)
		slow := readAllCommands(t, iotest.OneByteReader(bytes.NewReader(in)), len(in), false)
		if all != slow {
			t.Fatalf("commands differ by how the bytes arrive:\n at once: %s\nbytewise: %s", all, slow)
		}
		// Before AUTH the same stream is read within the smaller bounds.
		readAllCommands(t, bytes.NewReader(in), len(in), true)
	})
}

// readAllCommands reads commands until the stream ends or breaks and
// returns a transcript of what was read; unauth reads them as a connection
// that has not authenticated.
func readAllCommands(t *testing.T, r io.Reader, inputLen int, unauth bool) string {
	t.Helper()
	rd := newRESPReader(r, fuzzMaxBulk, fuzzMaxCommand)
	rd.unauth = unauth
	var out bytes.Buffer
	// Every command consumes at least one byte.
	for range inputLen + 1 {
		args, err := rd.readCommand()
		var tooLarge *argTooLargeError
		var perr protocolError
		switch {
		case err == nil:
		case errors.As(err, &tooLarge):
			if tooLarge.size <= fuzzMaxBulk || tooLarge.limit != fuzzMaxBulk {
				t.Fatalf("argument of %d bytes refused as too large (limit %d)", tooLarge.size, tooLarge.limit)
			}
			fmt.Fprintf(&out, "too large %d; ", tooLarge.size)
			continue // the stream is still in step
		case errors.As(err, &perr):
			fmt.Fprintf(&out, "protocol error %q", string(perr))
			return out.String()
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			fmt.Fprintf(&out, "%v", err)
			return out.String()
		default:
			t.Fatalf("readCommand failed with %T %v, which the connection does not expect", err, err)
		}
		var total int
		for _, a := range args {
			total += len(a)
		}
		if total+len(args)*respArgOverhead > fuzzMaxCommand {
			t.Fatalf("command of %d bytes in %d arguments passed the limit %d", total, len(args), fuzzMaxCommand)
		}
		if unauth && len(args) > respUnauthMaxArgs {
			t.Fatalf("before AUTH, a command of %d arguments was read (at most %d)", len(args), respUnauthMaxArgs)
		}
		fmt.Fprintf(&out, "%q; ", args)
	}
	t.Fatalf("more commands than the %d input bytes can hold", inputLen)
	return ""
}

// FuzzRESPReaderRoundTrip: arguments a client library encodes as a
// multibulk command come back unchanged; an argument beyond maxBulk fails
// that command alone and the next command still reads.
func FuzzRESPReaderRoundTrip(f *testing.F) {
	f.Add([]byte("SET"), []byte("k"), []byte("v"))
	f.Add([]byte("GET"), []byte{}, []byte("\r\n$3\r\n"))
	f.Add([]byte("SET"), []byte("k"), bytes.Repeat([]byte("v"), fuzzMaxBulk+1))
	f.Fuzz(func(t *testing.T, a, b, c []byte) {
		var in []byte
		args := [][]byte{a, b, c}
		in = fmt.Appendf(in, "*%d\r\n", len(args))
		total := 0
		for _, x := range args {
			in = fmt.Appendf(in, "$%d\r\n%s\r\n", len(x), x)
			total += len(x)
		}
		in = append(in, "*1\r\n$4\r\nPING\r\n"...)
		rd := newRESPReader(bytes.NewReader(in), fuzzMaxBulk, fuzzMaxCommand)
		got, err := rd.readCommand()
		var tooLarge *argTooLargeError
		switch {
		case total+len(args)*respArgOverhead > fuzzMaxCommand:
			var perr protocolError
			if !errors.As(err, &perr) {
				t.Fatalf("command of %d bytes: err %v, want a protocol error", total, err)
			}
			return // the connection closes
		case max(len(a), len(b), len(c)) > fuzzMaxBulk:
			if !errors.As(err, &tooLarge) {
				t.Fatalf("argument over %d bytes: err %v, want argTooLargeError", fuzzMaxBulk, err)
			}
		case err != nil:
			t.Fatalf("readCommand: %v", err)
		default:
			if len(got) != len(args) || !bytes.Equal(got[0], a) || !bytes.Equal(got[1], b) || !bytes.Equal(got[2], c) {
				t.Fatalf("read %q, sent %q", got, args)
			}
		}
		next, err := rd.readCommand()
		if err != nil || len(next) != 1 || string(next[0]) != "PING" {
			t.Fatalf("the command after it reads as %q, %v; want PING", next, err)
		}
	})
}
