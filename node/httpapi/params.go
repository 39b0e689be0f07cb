package httpapi

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/vclock"
)

// ContextHeader carries a key's causal context between client and node.
const ContextHeader = "X-Context"

// maxTTL is the longest ttl query parameter.
const maxTTL = vclock.MaxTTL

// maxContentTypeBytes bounds the Content-Type stored with each sibling:
// the stored encoding's own limit, so that every value the API accepts can
// be stored and read back.
const maxContentTypeBytes = vclock.MaxContentTypeLen

// MaxContextHeaderBytes bounds the X-Context header before it is decoded.
// A context has one entry per node that ever coordinated a write to the
// key, so even a large cluster stays far below this.
const MaxContextHeaderBytes = 64 << 10

// badRequest is a client mistake: 400 with msg as the error.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

// BadRequestf is a 400 whose error is the formatted message.
func BadRequestf(format string, args ...any) error {
	return &badRequest{msg: fmt.Sprintf(format, args...)}
}

// kvPath is a parsed key route: the database segment (hasDB false for
// /kv/...) and the key, both still percent-encoded.
type kvPath struct {
	db     string
	hasDB  bool
	rawKey string
}

// splitKVPath splits an escaped request path of the form /kv/<key> or
// /db/<n>/kv/<key>. ok is false for any other shape.
func splitKVPath(escaped string) (p kvPath, ok bool) {
	if rest, found := strings.CutPrefix(escaped, "/kv/"); found {
		return kvPath{rawKey: rest}, true
	}
	rest, found := strings.CutPrefix(escaped, "/db/")
	if !found {
		return kvPath{}, false
	}
	db, rest, found := strings.Cut(rest, "/")
	if !found {
		return kvPath{}, false
	}
	rawKey, found := strings.CutPrefix(rest, "kv/")
	if !found {
		return kvPath{}, false
	}
	return kvPath{db: db, hasDB: true, rawKey: rawKey}, true
}

// ParseKey percent-decodes a raw key taken from the escaped path. Decoding
// once, here, is what lets %2F and %00 be key bytes.
func ParseKey(rawKey string) ([]byte, error) {
	key, err := url.PathUnescape(rawKey)
	if err != nil {
		return nil, BadRequestf("malformed key: bad percent-encoding: %v", err)
	}
	if key == "" {
		return nil, BadRequestf("malformed key: empty (want 1 to %d bytes)", store.MaxKeyLen)
	}
	if len(key) > store.MaxKeyLen {
		return nil, BadRequestf("malformed key: %d bytes long (want 1 to %d)", len(key), store.MaxKeyLen)
	}
	return []byte(key), nil
}

// ParseDatabase parses the {n} of /db/{n}/kv/ as a number 0..databases-1.
func ParseDatabase(s string, databases int) (int, error) {
	n, err := strconv.Atoi(s)
	// Atoi accepts "+1" and "01"; a database is named by its one
	// spelling in plain digits, so /db/01 is not a second name for /db/1.
	if err != nil || s == "" || s[0] < '0' || s[0] > '9' || len(s) > 1 && s[0] == '0' {
		return 0, BadRequestf("malformed database %q: want a number from 0 to %d", s, databases-1)
	}
	if n < 0 || n >= databases {
		return 0, BadRequestf("database %d does not exist: want 0 to %d", n, databases-1)
	}
	return n, nil
}

// parseContext decodes the X-Context header of h. present is false when
// the request has none (a blind write, SPEC section 5); a present header
// holding the empty context (what a 404 hands out) covers nothing, and a
// write with it supersedes nothing. An empty header value is treated as
// absent: clients that template the header from a variable send one when
// they have no context. The header may appear once: with two, which one
// the client meant is unknowable. Padding is tolerated because some
// clients add it.
func parseContext(h http.Header) (c vclock.Context, present bool, err error) {
	vals := h.Values(ContextHeader)
	switch {
	case len(vals) > 1:
		return vclock.Context{}, false, BadRequestf("malformed %s: sent %d times, want at most once", ContextHeader, len(vals))
	case len(vals) == 0 || strings.TrimSpace(vals[0]) == "":
		return vclock.Context{}, false, nil
	}
	c, err = DecodeContext(strings.TrimSpace(vals[0]))
	return c, err == nil, err
}

// DecodeContext decodes one X-Context value; the empty string is the zero
// context.
func DecodeContext(v string) (vclock.Context, error) {
	if v == "" {
		return vclock.Context{}, nil
	}
	if len(v) > MaxContextHeaderBytes {
		return vclock.Context{}, BadRequestf("malformed %s: %d bytes long (at most %d)", ContextHeader, len(v), MaxContextHeaderBytes)
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(v, "="))
	if err != nil {
		return vclock.Context{}, BadRequestf("malformed %s: not base64url: %v", ContextHeader, err)
	}
	c, err := vclock.DecodeContext(b)
	if err != nil {
		return vclock.Context{}, BadRequestf("malformed %s: %v", ContextHeader, err)
	}
	return c, nil
}

// EncodeContext is the X-Context form of c.
func EncodeContext(c vclock.Context) string {
	return base64.RawURLEncoding.EncodeToString(c.Encode())
}

// parseTTL reads the ttl query: a Go duration ("30s", "1h30m") or a whole
// number of seconds ("30").
func parseTTL(s string) (time.Duration, error) {
	var d time.Duration
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		if n > uint64(maxTTL/time.Second) {
			return 0, BadRequestf("malformed ttl %q: longer than %s", s, maxTTL)
		}
		d = time.Duration(n) * time.Second
	} else {
		var perr error
		d, perr = time.ParseDuration(s)
		if perr != nil {
			return 0, BadRequestf("malformed ttl %q: want a duration such as 30s or a number of seconds", s)
		}
	}
	if d <= 0 {
		return 0, BadRequestf("malformed ttl %q: must be positive", s)
	}
	if d > maxTTL {
		return 0, BadRequestf("malformed ttl %q: longer than %s", s, maxTTL)
	}
	return d, nil
}

// parseQuorum reads an r or w query: a number of replicas >= 1, or one,
// quorum or all relative to n replicas. The result is capped to members,
// because a cluster smaller than N can never gather more acknowledgements
// (SPEC section 5: a one-node server works out of the box).
func parseQuorum(name, s string, n, members int) (int, error) {
	var q int
	switch s {
	case "one":
		q = 1
	case "quorum":
		q = n/2 + 1
	case "all":
		q = n
	default:
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || s[0] < '0' || s[0] > '9' {
			return 0, BadRequestf("malformed %s %q: want a number of replicas from 1, or one, quorum or all", name, s)
		}
		q = v
	}
	return min(q, n, members), nil
}
