package resp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Bounds of one request, as Redis's (proto-max-bulk-len aside, which is
// --max-value-bytes here).
const (
	respMaxArgs        = 1 << 20  // arguments of one command
	respMaxInline      = 64 << 10 // bytes of an inline command or a header line
	respReadBufferSize = 64 << 10
)

// The memory of a command's arguments. A one-byte argument costs 7 bytes
// on the wire but about 32 in memory (its slice header in the argument
// list, 24 bytes, and its allocation rounded up to 8), so a command of a
// million tiny arguments would cost several times what it sent. Both the
// per-command bound and the node-wide budget count an argument as its
// length plus respArgOverhead, so that a command within the one always
// fits in an idle budget (Validate makes the budget at least one command).
const (
	respArgOverhead = 32
	// respBudgetChunk is how much a connection reserves from the
	// node-wide budget at a time, so that a command of many arguments
	// does not touch the shared counter for each of them.
	respBudgetChunk = 16 << 10
)

// Before AUTH (with --auth-token set) a command may have at most
// respUnauthMaxArgs arguments of at most respUnauthMaxBulk bytes each,
// Redis 7's own bounds: enough for AUTH and for HELLO 2 AUTH user pass
// SETNAME name. A larger one is a protocol error that closes the
// connection as soon as its header announces it, before anything is
// buffered, so that a stranger cannot make the node hold memory.
const (
	respUnauthMaxArgs = 10
	respUnauthMaxBulk = 16 << 10
)

// Redis's protocol errors for a command too large before AUTH.
const (
	errUnauthMultibulk = protocolError("unauthenticated multibulk length")
	errUnauthBulk      = protocolError("unauthenticated bulk length")
)

// errRESPBufferFull is a command refused because every Redis connection
// together already holds --resp-max-buffer-bytes in the commands they are
// reading. Its bytes were read and dropped: the stream is still in step.
var errRESPBufferFull = errors.New("Redis-protocol command buffers full")

// respReader reads RESP2 commands from a stream. Multibulk commands (what
// every client library sends) are parsed here; inline commands (telnet
// style, one line) are split with Redis's quoting rules (inline.go;
// redcon's parser did not follow them).
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
	// maxCommand bounds the bytes of one command's arguments, each
	// counted respArgOverhead more than its length; beyond it the
	// connection is closed.
	maxCommand int64
	// unauth applies the bounds of a connection that has not
	// authenticated yet (respUnauthMaxArgs, respUnauthMaxBulk); the
	// connection sets it before each command.
	unauth bool
	// budget, when set, is the node-wide bound on the memory of the
	// commands being read (--resp-max-buffer-bytes). held is what this
	// reader has reserved from it, used what the current command's
	// arguments take; release returns held once the command is done.
	budget     *respBudget
	held, used int64
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
// a command boundary, protocolError for input that is not RESP or too
// large (the connection cannot go on), *argTooLargeError,
// errRESPBufferFull, or the stream's own error. The arguments' memory
// stays reserved from the budget until release.
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
	if r.unauth && count > respUnauthMaxArgs {
		return nil, errUnauthMultibulk
	}
	// The argument list grows with the arguments that arrive, never
	// from the count announced.
	var args [][]byte
	var total int64
	var tooLarge *argTooLargeError
	full := false
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
		if r.unauth && size > respUnauthMaxBulk {
			return nil, errUnauthBulk
		}
		// Compared before adding: size may be near MaxInt64.
		if size > r.maxCommand-total-respArgOverhead {
			return nil, r.errCommandTooLarge()
		}
		total += size + respArgOverhead
		drop := full || size > r.maxBulk
		if !drop && !r.charge(respArgOverhead) {
			full, drop = true, true
		}
		arg, refused, err := r.bulk(size, drop)
		if err != nil {
			return nil, err
		}
		if refused {
			full = true
		}
		if size > r.maxBulk && tooLarge == nil {
			tooLarge = &argTooLargeError{size: size, limit: r.maxBulk}
		}
		if full {
			// Whatever was kept is dropped; the rest of the
			// command is read and discarded.
			args = nil
			r.release()
			continue
		}
		if len(args) == cap(args) {
			// As append grows a long slice, by a quarter, so that
			// the unused room stays within the overhead charged.
			grown := min(count, int64(cap(args))+max(int64(cap(args))/4, 64))
			args = append(make([][]byte, 0, grown), args...)
		}
		args = append(args, arg)
	}
	if full {
		return nil, errRESPBufferFull
	}
	if tooLarge != nil {
		return nil, tooLarge
	}
	return args, nil
}

func (r *respReader) errCommandTooLarge() error {
	return protocolError(fmt.Sprintf("command too large: more than %d bytes (each argument counting %d bytes more than its length)",
		r.maxCommand, respArgOverhead))
}

// charge accounts n more bytes to the current command, reserving them
// from the budget when what the reader holds does not cover them. It
// reports false, charging nothing, when the budget has no room.
func (r *respReader) charge(n int64) bool {
	r.used += n
	if r.used <= r.held {
		return true
	}
	need := r.used - r.held
	switch {
	case r.budget == nil:
	case r.budget.reserve(max(need, respBudgetChunk)):
		need = max(need, respBudgetChunk)
	case r.budget.reserve(need):
	default:
		r.used -= n
		return false
	}
	r.held += need
	return true
}

// release returns what the current command reserved from the budget, once
// it has been executed (or refused).
func (r *respReader) release() {
	if r.budget != nil && r.held > 0 {
		r.budget.release(r.held)
	}
	r.held, r.used = 0, 0
}

// bulk reads size bytes and the CRLF after them. The buffer grows with the
// bytes that arrive, not with the size announced, and each growth is
// charged to the budget first; drop discards the bytes, and so does a
// refusal of the budget (refused is then true).
func (r *respReader) bulk(size int64, drop bool) (arg []byte, refused bool, err error) {
	switch {
	case drop:
	case size <= respReadBufferSize:
		if !r.charge(size) {
			refused, drop = true, true
			break
		}
		arg = make([]byte, size)
		if _, err := io.ReadFull(r.br, arg); err != nil {
			return nil, false, unexpectedEOF(err)
		}
	default:
		for int64(len(arg)) < size {
			if len(arg) == cap(arg) {
				// Doubling, but never past size: the last
				// buffer is exactly the argument.
				grown := min(size, max(2*int64(cap(arg)), respReadBufferSize))
				if !r.charge(grown - int64(cap(arg))) {
					size -= int64(len(arg))
					arg, refused, drop = nil, true, true
					break
				}
				arg = append(make([]byte, 0, grown), arg...)
			}
			n, err := r.br.Read(arg[len(arg):cap(arg)])
			arg = arg[:len(arg)+n]
			if err != nil && int64(len(arg)) < size {
				return nil, false, unexpectedEOF(err)
			}
		}
	}
	if drop {
		if _, err := io.CopyN(io.Discard, r.br, size); err != nil {
			return nil, false, unexpectedEOF(err)
		}
	}
	var crlf [2]byte
	if _, err := io.ReadFull(r.br, crlf[:]); err != nil {
		return nil, false, unexpectedEOF(err)
	}
	if crlf != [2]byte{'\r', '\n'} {
		return nil, false, protocolError("invalid bulk length")
	}
	return arg, refused, nil
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
// (splitInline: quotes, escapes). The line is bounded by the read
// buffer; its arguments are counted before they are copied, so that the
// bounds and the budget apply before anything is allocated.
func (r *respReader) readInline() ([][]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, protocolError("too big inline request")
	}
	if err != nil {
		// A last line without a newline is an unfinished command.
		return nil, unexpectedEOF(err)
	}
	// As Redis: the line ends at the newline, and at a CR just before it.
	line = bytes.TrimSuffix(line[:len(line)-1], []byte{'\r'})
	count := inlineSplitter{}
	if !count.split(line) {
		return nil, protocolError("unbalanced quotes in request")
	}
	switch {
	case count.n == 0:
		return nil, nil
	case r.unauth && count.n > respUnauthMaxArgs:
		return nil, errUnauthMultibulk
	case r.unauth && count.longest > respUnauthMaxBulk:
		return nil, errUnauthBulk
	case int64(count.size)+int64(count.n)*respArgOverhead > r.maxCommand:
		return nil, r.errCommandTooLarge()
	}
	// One buffer for every argument's bytes, one list for the arguments.
	if !r.charge(int64(count.size) + int64(count.n)*respArgOverhead) {
		return nil, errRESPBufferFull
	}
	fill := inlineSplitter{buf: make([]byte, 0, count.size), args: make([][]byte, 0, count.n), fill: true}
	fill.split(line)
	return fill.args, nil
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
