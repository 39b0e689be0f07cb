package node

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/tidwall/redcon"
)

// Bounds of one request, as Redis's (proto-max-bulk-len aside, which is
// --max-value-bytes here).
const (
	respMaxArgs        = 1 << 20  // arguments of one command
	respMaxInline      = 64 << 10 // bytes of an inline command or a header line
	respReadBufferSize = 64 << 10
)

// respReader reads RESP2 commands from a stream. Multibulk commands (what
// every client library sends) are parsed here; inline commands (telnet
// style, one line) go to redcon's parser for its quoting rules.
//
// redcon's streaming reader is not used for multibulk because, measured
// with the fuzz target and TestRESPGarbageClosesOnlyThatConnection, it
// panics on a bulk length near MaxInt64 (index out of range in the
// connection's goroutine, which would end the process), spins through the
// announced argument count before it has the data ("*1000000000\r\n"
// costs two seconds of CPU, and every further read repeats it), and
// buffers an unfinished command whole, however large it announces itself.
// This reader bounds all three and reads a bulk only as its bytes arrive.
type respReader struct {
	br *bufio.Reader
	// maxBulk is the largest argument kept; a larger one is read and
	// dropped, and the command answered with errArgTooLarge.
	maxBulk int64
	// maxCommand bounds the bytes of one command's arguments; beyond it
	// the connection is closed.
	maxCommand int64
}

func newRESPReader(r io.Reader, maxBulk, maxCommand int64) *respReader {
	return &respReader{br: bufio.NewReaderSize(r, respReadBufferSize), maxBulk: maxBulk, maxCommand: maxCommand}
}

// argTooLargeError is a command with an argument beyond maxBulk. The
// stream is still in step: the command is refused, the connection goes on.
type argTooLargeError struct{ size, limit int64 }

func (e *argTooLargeError) Error() string {
	return fmt.Sprintf("value too large: %d bytes (at most %d)", e.size, e.limit)
}

// buffered tells whether more input is already waiting, so that replies
// to a pipeline go out in one write after its last command.
func (r *respReader) buffered() bool { return r.br.Buffered() > 0 }

// readCommand returns the next command's arguments. An empty command
// (a blank line, "*0") yields no arguments and no error. Errors: io.EOF at
// a command boundary, protocolError for input that is not RESP (the
// connection cannot go on), *argTooLargeError, or the stream's own error.
func (r *respReader) readCommand() ([][]byte, error) {
	first, err := r.br.Peek(1)
	if err != nil {
		return nil, err
	}
	if first[0] != '*' {
		return r.readInline()
	}
	line, err := r.line()
	if err != nil {
		return nil, err
	}
	count, ok := parseRESPInt(line[1:])
	if !ok || count > respMaxArgs {
		return nil, protocolError("invalid multibulk length")
	}
	if count <= 0 {
		return nil, nil
	}
	args := make([][]byte, 0, min(count, 64))
	var total int64
	var tooLarge *argTooLargeError
	for range count {
		line, err := r.line()
		if err != nil {
			return nil, err
		}
		if line[0] != '$' {
			return nil, protocolError(fmt.Sprintf("expected '$', got '%s'", respPrintable(line[:1], 1)))
		}
		size, ok := parseRESPInt(line[1:])
		if !ok || size < 0 {
			return nil, protocolError("invalid bulk length")
		}
		if total += size; total > r.maxCommand {
			return nil, protocolError(fmt.Sprintf("command too large: more than %d bytes", r.maxCommand))
		}
		arg, err := r.bulk(size, size > r.maxBulk)
		if err != nil {
			return nil, err
		}
		if size > r.maxBulk && tooLarge == nil {
			tooLarge = &argTooLargeError{size: size, limit: r.maxBulk}
		}
		args = append(args, arg)
	}
	if tooLarge != nil {
		return nil, tooLarge
	}
	return args, nil
}

// bulk reads size bytes and the CRLF after them. The buffer grows with the
// bytes that arrive, not with the size announced; drop discards them.
func (r *respReader) bulk(size int64, drop bool) ([]byte, error) {
	var arg []byte
	if drop {
		if _, err := io.CopyN(io.Discard, r.br, size); err != nil {
			return nil, unexpectedEOF(err)
		}
	} else if size <= respReadBufferSize {
		arg = make([]byte, size)
		if _, err := io.ReadFull(r.br, arg); err != nil {
			return nil, unexpectedEOF(err)
		}
	} else {
		var buf bytes.Buffer
		if _, err := io.CopyN(&buf, r.br, size); err != nil {
			return nil, unexpectedEOF(err)
		}
		arg = buf.Bytes()
	}
	var crlf [2]byte
	if _, err := io.ReadFull(r.br, crlf[:]); err != nil {
		return nil, unexpectedEOF(err)
	}
	if crlf != [2]byte{'\r', '\n'} {
		return nil, protocolError("invalid bulk length")
	}
	return arg, nil
}

// line reads a header line ending in CRLF and returns it without them.
func (r *respReader) line() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, protocolError("too big header line")
	}
	if err != nil {
		return nil, unexpectedEOF(err)
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, protocolError("invalid header line")
	}
	return line[:len(line)-2], nil
}

// readInline reads one line and splits it as redis-cli and Redis do
// (quotes, escapes), through redcon's parser, which is safe on a single
// bounded line.
func (r *respReader) readInline() (args [][]byte, err error) {
	line, err := r.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, protocolError("too big inline request")
	}
	if err != nil {
		// A last line without a newline is an unfinished command.
		return nil, unexpectedEOF(err)
	}
	if len(bytes.TrimSpace(line)) == 0 {
		return nil, nil
	}
	defer func() {
		if p := recover(); p != nil {
			args, err = nil, protocolError("malformed inline request")
		}
	}()
	cmd, err := redcon.NewReader(bytes.NewReader(line)).ReadCommand()
	if err != nil {
		return nil, protocolError(strings.TrimPrefix(err.Error(), "Protocol error: "))
	}
	return cmd.Args, nil
}

// unexpectedEOF turns EOF inside a command into io.ErrUnexpectedEOF, so
// that only EOF at a command boundary reads as a clean close.
func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// parseRESPInt parses the number of a header line: an optional minus sign
// and digits, nothing else.
func parseRESPInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 || b[0] == '+' {
		return 0, false
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	return v, err == nil
}
