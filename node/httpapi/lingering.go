package httpapi

import (
	"errors"
	"io"
	"net/http"
	"os"
	"time"

	"go.uber.org/zap"
)

// Lingering close: why a refused body is still read.
//
// A client that does not send "Expect: 100-continue" (Python's urllib, most
// HTTP libraries, any client that writes the whole request before it reads)
// is still sending when the node refuses its value with 413. net/http then
// closes the connection without reading the rest; the kernel answers a
// close with unread data with a TCP reset, and the client's next write fails
// with "broken pipe" or "connection reset", often before it ever reads the
// 413, which the reset may also discard from its receive buffer. nginx
// solves this with its "lingering close" (lingering_close, lingering_time,
// lingering_timeout); so do we: answer 413 with Connection: close, flush it,
// then read and throw away what the client still sends, until it is done or
// a bound is hit, and only then close. RFC 9112 section 9.6 asks servers to
// close this way.
//
// Both the bytes (--http-linger-bytes) and the time (--http-linger-timeout)
// are bounded, so that lingering cannot be used to hold connections or
// bandwidth: a client that sends more, or slower, is cut off as before. The
// discarded bytes are never buffered, and a lingering request keeps its
// in-flight slot and its connection, both already bounded
// (--max-inflight, --http-max-conns).
//
// HTTP/2 needs none of this: a stream is reset (RST_STREAM NO_ERROR, RFC
// 9113 section 8.1) after its complete response without touching the
// connection, and "Connection: close" is forbidden there (net/http would
// turn it into a GOAWAY of the whole connection, peers' RPC included), so
// an HTTP/2 request only gets its 413.
const (
	// minLingerBytes is the least a 413 drains by default, so that a
	// small --max-value-bytes still lets ordinary oversized uploads
	// finish.
	minLingerBytes = 4 << 20
	// lingerValueMultiple sizes the default bound after
	// --max-value-bytes: a value refused for being too large is most
	// often a few times the limit, not a thousand.
	lingerValueMultiple = 4
	// MaxLingerBytes and MaxLingerTimeout cap the flags.
	MaxLingerBytes   = 1 << 30
	MaxLingerTimeout = time.Minute
)

// LingerBytes is how much of a refused body is discarded after the 413:
// flag (--http-linger-bytes), or when it is 0, four times maxValueBytes
// (--max-value-bytes) and at least 4 MiB.
func LingerBytes(maxValueBytes, flag int64) int64 {
	if flag > 0 {
		return flag
	}
	return min(max(lingerValueMultiple*maxValueBytes, minLingerBytes), MaxLingerBytes)
}

// refuseBody answers a request whose body is over limit with the 413 JSON
// error and, over HTTP/1.x, closes the connection the lingering way (see
// the comment at the top of this file). It has written the response when
// it returns.
func (a *API) refuseBody(w http.ResponseWriter, r *http.Request, limit int64) {
	if r.ProtoMajor >= 2 {
		a.writeError(w, r, errTooLarge(limit))
		return
	}
	w.Header().Set("Connection", "close")
	a.writeError(w, r, errTooLarge(limit))
	a.linger(w, r)
}

// linger flushes the response already written to w, then discards what is
// left of r's body, up to Config.LingerBytes and for at most
// --http-linger-timeout, before the handler returns and net/http closes
// the connection.
func (a *API) linger(w http.ResponseWriter, r *http.Request) {
	timeout := a.cfg.LingerTimeout
	if timeout <= 0 || r.Body == nil || r.Body == http.NoBody {
		return
	}
	rc := http.NewResponseController(w)
	// The client must be able to read the answer while it still sends;
	// it is small, so the flush does not wait for the client to read.
	if err := rc.Flush(); err != nil {
		return
	}
	if err := rc.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return
	}
	bound := a.cfg.LingerBytes
	// r.Body, not the MaxBytesReader that refused it: that one now
	// fails every read.
	discarded, err := io.CopyN(io.Discard, r.Body, bound)
	if err == nil {
		// The bound is hit and the client is still sending. An
		// expired deadline stops net/http's own attempt to read the
		// rest when the handler returns; the close then resets the
		// connection, as it did before lingering.
		_ = rc.SetReadDeadline(time.Now())
	}
	if ce := a.log.Check(zap.DebugLevel, "lingering close after 413"); ce != nil {
		reason := "client finished its body"
		switch {
		case err == nil:
			reason = "byte bound reached"
		case errors.Is(err, io.EOF):
		case errors.Is(err, os.ErrDeadlineExceeded):
			reason = "time bound reached"
		default:
			reason = err.Error()
		}
		ce.Write(zap.Int64("discarded", discarded), zap.Int64("bound", bound),
			zap.Duration("timeout", timeout), zap.String("end", reason), zap.String("remote", r.RemoteAddr))
	}
}
