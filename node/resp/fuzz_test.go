package resp

import (
	"bytes"
	"strings"
	"testing"

	"github.com/dynkv/dynkv/vclock"
)

// FuzzRESPCommand feeds arbitrary bytes to the path a Redis-protocol
// connection takes (redcon's parser, then the commands, against an
// in-memory backend): whatever arrives, the server must neither panic nor
// hang.
func FuzzRESPCommand(f *testing.F) {
	for _, seed := range []string{
		"PING\r\n",
		"*1\r\n$4\r\nPING\r\n",
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
		"SET k v EX 10\r\nTTL k\r\nPTTL k\r\nEXPIRE k 0\r\nEXISTS k k\r\n",
		"MSET a 1 b 2\r\nMGET a b c\r\nDEL a b c\r\n",
		"SET k v NX\r\nSET k w XX PX 5\r\nSET k v KEEPTTL\r\n",
		"SELECT 3\r\nSELECT 99\r\nINFO\r\nCOMMAND DOCS\r\nCONFIG GET *\r\n",
		"HELLO 3\r\nHELLO 2 SETNAME x\r\nCLIENT SETINFO LIB-NAME y\r\nCLIENT ID\r\nAUTH p\r\n",
		"*1\r\n$9223372036854775807\r\n",
		"*-1\r\n",
		"*2\r\n$3\r\nGET\r\n",
		"\"unbalanced\r\n",
		"QUIT\r\nPING\r\n",
		"foo 'bar' \"baz\\x00\"\r\n",
		// Redis's inline quoting (sdssplitargs).
		"SET \"a b\" \"c\\x41d\"\r\nGET \"a b\"\r\nGET 'a b'\r\n",
		"SET 'it\\'s' \"\\n\\t\\\\\\\"\"\r\nSET \"a\"b c\r\n",
	} {
		f.Add([]byte(seed))
	}
	// The server's own command path, without a socket in between, over
	// an in-memory backend.
	s := New(nil, newFakeBackend(), Config{Databases: 4, MaxValueBytes: 1 << 10})
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		// The error is the input's fault (a protocol error, or EOF in
		// the middle of a command) and not what is tested here.
		_ = s.serveStream(bytes.NewReader(in), &out, s.newSession("fuzz"))
		checkRESPReplies(t, out.Bytes())
	})
}

// checkRESPReplies fails when out is not a sequence of well-formed RESP2
// replies: every error or status line is one line, every bulk has its
// announced length.
func checkRESPReplies(t *testing.T, out []byte) {
	t.Helper()
	for len(out) > 0 {
		i := bytes.Index(out, []byte("\r\n"))
		if i < 0 {
			t.Fatalf("reply without CRLF: %q", out)
		}
		line := out[:i]
		out = out[i+2:]
		if len(line) == 0 {
			t.Fatalf("empty reply line")
		}
		switch line[0] {
		case '+', '-', ':', '*':
			if bytes.ContainsAny(line, "\r\n") {
				t.Fatalf("reply line %q holds CR or LF", line)
			}
		case '$':
			v, ok := respInt(line[1:])
			if !ok {
				t.Fatalf("bad bulk length line %q", line)
			}
			if v < 0 {
				continue
			}
			if int64(len(out)) < v+2 || string(out[v:v+2]) != "\r\n" {
				t.Fatalf("bulk of %d bytes not followed by CRLF in %q", v, out)
			}
			out = out[v+2:]
		default:
			t.Fatalf("reply line %q starts with no RESP2 type", line)
		}
	}
}

// FuzzParseSetOptions checks SET's option parser: it never panics, and
// what it accepts is consistent.
func FuzzParseSetOptions(f *testing.F) {
	for _, seed := range []string{"", "EX 10", "px 1500", "NX", "XX EX 1", "EX 0", "EX -1", "EX 9223372036854775807",
		"PX 9223372036854775807", "NX XX", "EX 1 PX 1", "EX", "KEEPTTL", "GET", "EX +5", "EX 05"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var args [][]byte
		for _, w := range strings.Fields(in) {
			args = append(args, []byte(w))
		}
		o, msg := parseSetOptions(args)
		if msg != "" {
			if o != (setOptions{}) {
				t.Fatalf("%q: error %q with options %+v", in, msg, o)
			}
			return
		}
		if o.nx && o.xx {
			t.Fatalf("%q: accepted NX and XX together", in)
		}
		if o.ttl < 0 || o.ttl > vclock.MaxTTL {
			t.Fatalf("%q: TTL %s outside (0, %s]", in, o.ttl, vclock.MaxTTL)
		}
		if len(args) > 5 {
			t.Fatalf("%q: accepted %d option words; at most NX|XX and EX|PX n exist", in, len(args))
		}
	})
}
