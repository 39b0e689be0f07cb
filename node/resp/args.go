package resp

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/dynkv/dynkv/node/internal/authguard"
	"github.com/dynkv/dynkv/vclock"
)

// Redis's own error texts, so that clients and scripts written against
// Redis recognise them.
const (
	respErrSyntax    = "ERR syntax error"
	respErrNotInt    = "ERR value is not an integer or out of range"
	respErrNoAuth    = "NOAUTH Authentication required."
	respErrWrongPass = "WRONGPASS invalid username-password pair or user is disabled."
	respErrDBRange   = "ERR DB index is out of range"
	// respErrAuthThrottled refuses an AUTH without checking it; the
	// connection closes.
	respErrAuthThrottled = "ERR " + authguard.ThrottledMessage
)

// respErrArity is Redis's answer to a command with the wrong number of
// arguments.
func respErrArity(name string) string {
	return "ERR wrong number of arguments for '" + strings.ToLower(name) + "' command"
}

// respErrExpire is Redis's answer to a zero, negative or too large expiry.
func respErrExpire(name string) string {
	return "ERR invalid expire time in '" + strings.ToLower(name) + "' command"
}

// respErrUnknown is Redis's answer to a command it does not have: the name
// and the first arguments quoted, each followed by a space, within about
// 128 bytes of arguments.
func respErrUnknown(args [][]byte) string {
	var b strings.Builder
	b.WriteString("ERR unknown command '")
	b.WriteString(respPrintable(args[0], 128))
	b.WriteString("', with args beginning with: ")
	budget := 128
	for _, a := range args[1:] {
		if budget <= 0 {
			break
		}
		s := respPrintable(a, budget)
		budget -= len(a)
		b.WriteString("'")
		b.WriteString(s)
		b.WriteString("' ")
	}
	return b.String()
}

// respPrintable cuts b to at most max bytes and replaces the bytes that
// would break a RESP simple string (CR, LF) or a terminal with spaces.
func respPrintable(b []byte, max int) string {
	if len(b) > max {
		b = b[:max]
	}
	out := []byte(string(b))
	for i, c := range out {
		if c < 0x20 || c == 0x7f {
			out[i] = ' '
		}
	}
	return string(out)
}

// respInt parses a Redis integer argument: optional sign and digits only.
func respInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 || b[0] == '+' {
		return 0, false
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	return v, err == nil
}

// setOptions are the options of SET key value [NX|XX] [EX s|PX ms].
type setOptions struct {
	ttl time.Duration // 0: no expiry
	nx  bool          // only when the key is absent
	xx  bool          // only when the key exists
}

// parseSetOptions reads the options after SET's key and value. errMsg is
// the Redis error to send when they are invalid.
func parseSetOptions(opts [][]byte) (o setOptions, errMsg string) {
	var haveTTL bool
	for i := 0; i < len(opts); i++ {
		word := opts[i]
		switch {
		case bytes.EqualFold(word, []byte("NX")) && !o.xx:
			o.nx = true
		case bytes.EqualFold(word, []byte("XX")) && !o.nx:
			o.xx = true
		case (bytes.EqualFold(word, []byte("EX")) || bytes.EqualFold(word, []byte("PX"))) && !haveTTL && i+1 < len(opts):
			i++
			v, ok := respInt(opts[i])
			if !ok {
				return setOptions{}, respErrNotInt
			}
			unit := time.Second
			if word[0] == 'p' || word[0] == 'P' {
				unit = time.Millisecond
			}
			ttl, ok := respDuration(v, unit)
			if !ok {
				return setOptions{}, respErrExpire("set")
			}
			o.ttl, haveTTL = ttl, true
		default:
			return setOptions{}, respErrSyntax
		}
	}
	return o, ""
}

// respDuration is v units as a positive duration no longer than vclock.MaxTTL
// (so that now plus it cannot overflow); ok is false otherwise.
func respDuration(v int64, unit time.Duration) (time.Duration, bool) {
	if v <= 0 || v > int64(vclock.MaxTTL/unit) || v > math.MaxInt64/int64(unit) {
		return 0, false
	}
	return time.Duration(v) * unit, true
}

// respTTL is the TTL (unit time.Second) or PTTL (time.Millisecond) of a
// value that expires at expires (unix nanoseconds, 0 for never), read at
// now: -1 for no expiry, else the time left rounded as Redis rounds it.
func respTTL(expires, now int64, unit time.Duration) int64 {
	if expires == 0 {
		return -1
	}
	left := max(expires-now, 0)
	// Redis rounds the remaining milliseconds to the nearest second.
	return (left + int64(unit)/2) / int64(unit)
}
