package resp

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tidwall/redcon"
	"go.uber.org/zap"

	"github.com/dynkv/dynkv/coordinator"
	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/store"
)

// respSession is the state of one Redis-protocol connection. Only its
// connection's goroutine touches it.
type respSession struct {
	id     int64
	addr   string
	db     int
	authed bool
	name   string
	// authFails counts the wrong passwords since the last right one;
	// at authguard.CloseAfter the connection is closed.
	authFails int
}

// respAction tells the connection loop whether to go on after a command.
type respAction int

const (
	actionContinue respAction = iota
	actionClose
)

// respFanOut bounds the keys of one MGET, MSET, DEL or EXISTS that are in
// flight at once.
const respFanOut = 16

// respCommand is one command the listener serves: the one place that says
// which commands exist, how many arguments each takes and what runs it.
// execute, COMMAND and the metrics' op label all read it.
type respCommand struct {
	name string
	// arity counts the arguments with the command name, as Redis's
	// COMMAND does: n > 0 is exactly n, n < 0 at least -n.
	arity int
	// preAuth commands run before AUTH succeeds.
	preAuth bool
	// write commands change data (COMMAND INFO's "write" flag, else
	// "readonly" for the commands that take keys).
	write bool
	// firstKey, lastKey and keyStep are COMMAND INFO's key positions
	// (lastKey -1: the last argument); 0 for commands without keys.
	firstKey, lastKey, keyStep int
	run                        func(s *Server, wr *redcon.Writer, sess *respSession, args [][]byte) respAction
}

// respCommandTable lists the commands in name order. init fills it:
// COMMAND's handler, in the table, reads the table.
var respCommandTable []respCommand

// respCommandsByName indexes respCommandTable.
var respCommandsByName map[string]*respCommand

func init() {
	respCommandTable = respCommandList()
	respCommandsByName = make(map[string]*respCommand, len(respCommandTable))
	for i := range respCommandTable {
		respCommandsByName[respCommandTable[i].name] = &respCommandTable[i]
	}
}

func respCommandList() []respCommand {
	return []respCommand{
		{name: "auth", arity: -2, preAuth: true, run: func(s *Server, wr *redcon.Writer, sess *respSession, args [][]byte) respAction {
			return s.auth(wr, sess, args)
		}},
		{name: "client", arity: -2, run: func(s *Server, wr *redcon.Writer, sess *respSession, args [][]byte) respAction {
			s.client(wr, sess, args)
			return actionContinue
		}},
		{name: "command", arity: -1, run: func(s *Server, wr *redcon.Writer, _ *respSession, args [][]byte) respAction {
			s.command(wr, args)
			return actionContinue
		}},
		{name: "config", arity: -2, run: func(s *Server, wr *redcon.Writer, _ *respSession, args [][]byte) respAction {
			s.config(wr, args)
			return actionContinue
		}},
		{name: "del", arity: -2, write: true, firstKey: 1, lastKey: -1, keyStep: 1, run: func(s *Server, wr *redcon.Writer, sess *respSession, args [][]byte) respAction {
			s.del(wr, sess, args[1:])
			return actionContinue
		}},
		{name: "echo", arity: 2, run: func(_ *Server, wr *redcon.Writer, _ *respSession, args [][]byte) respAction {
			wr.WriteBulk(args[1])
			return actionContinue
		}},
		{name: "exists", arity: -2, firstKey: 1, lastKey: -1, keyStep: 1, run: func(s *Server, wr *redcon.Writer, sess *respSession, args [][]byte) respAction {
			s.exists(wr, sess, args[1:])
			return actionContinue
		}},
		{name: "expire", arity: 3, write: true, firstKey: 1, lastKey: 1, keyStep: 1, run: func(s *Server, wr *redcon.Writer, sess *respSession, args [][]byte) respAction {
			s.expire(wr, sess, "expire", args[1], args[2])
			return actionContinue
		}},
		{name: "get", arity: 2, firstKey: 1, lastKey: 1, keyStep: 1, run: func(s *Server, wr *redcon.Writer, sess *respSession, args [][]byte) respAction {
			s.get(wr, sess, args[1])
			return actionContinue
		}},
		{name: "hello", arity: -1, preAuth: true, run: func(s *Server, wr *redcon.Writer, sess *respSession, args [][]byte) respAction {
			return s.hello(wr, sess, args)
		}},
		{name: "info", arity: -1, run: func(s *Server, wr *redcon.Writer, _ *respSession, _ [][]byte) respAction {
			wr.WriteBulkString(s.info())
			return actionContinue
		}},
		{name: "mget", arity: -2, firstKey: 1, lastKey: -1, keyStep: 1, run: func(s *Server, wr *redcon.Writer, sess *respSession, args [][]byte) respAction {
			s.mget(wr, sess, args[1:])
			return actionContinue
		}},
		{name: "mset", arity: -3, write: true, firstKey: 1, lastKey: -1, keyStep: 2, run: func(s *Server, wr *redcon.Writer, sess *respSession, args [][]byte) respAction {
			if len(args)%2 != 1 {
				wr.WriteError(respErrArity("mset"))
				return actionContinue
			}
			s.mset(wr, sess, args[1:])
			return actionContinue
		}},
		{name: "pexpire", arity: 3, write: true, firstKey: 1, lastKey: 1, keyStep: 1, run: func(s *Server, wr *redcon.Writer, sess *respSession, args [][]byte) respAction {
			s.expire(wr, sess, "pexpire", args[1], args[2])
			return actionContinue
		}},
		{name: "ping", arity: -1, run: func(_ *Server, wr *redcon.Writer, _ *respSession, args [][]byte) respAction {
			switch len(args) {
			case 1:
				wr.WriteString("PONG")
			case 2:
				wr.WriteBulk(args[1])
			default:
				wr.WriteError(respErrArity("ping"))
			}
			return actionContinue
		}},
		{name: "pttl", arity: 2, firstKey: 1, lastKey: 1, keyStep: 1, run: func(s *Server, wr *redcon.Writer, sess *respSession, args [][]byte) respAction {
			s.ttl(wr, sess, args[1], time.Millisecond)
			return actionContinue
		}},
		{name: "quit", arity: -1, preAuth: true, run: func(_ *Server, wr *redcon.Writer, _ *respSession, _ [][]byte) respAction {
			wr.WriteString("OK")
			return actionClose
		}},
		{name: "select", arity: 2, run: func(s *Server, wr *redcon.Writer, sess *respSession, args [][]byte) respAction {
			db, ok := respInt(args[1])
			switch {
			case !ok:
				wr.WriteError(respErrNotInt)
			case db < 0 || db >= int64(s.cfg.Databases):
				wr.WriteError(respErrDBRange)
			default:
				sess.db = int(db)
				wr.WriteString("OK")
			}
			return actionContinue
		}},
		{name: "set", arity: -3, write: true, firstKey: 1, lastKey: 1, keyStep: 1, run: func(s *Server, wr *redcon.Writer, sess *respSession, args [][]byte) respAction {
			s.set(wr, sess, args[1], args[2], args[3:])
			return actionContinue
		}},
		{name: "ttl", arity: 2, firstKey: 1, lastKey: 1, keyStep: 1, run: func(s *Server, wr *redcon.Writer, sess *respSession, args [][]byte) respAction {
			s.ttl(wr, sess, args[1], time.Second)
			return actionContinue
		}},
	}
}

// lookupRespCommand finds a command by name in any case, without
// allocating for a known one.
func lookupRespCommand(name []byte) *respCommand {
	var buf [16]byte
	if len(name) > len(buf) {
		return nil // longer than every command
	}
	lower := buf[:len(name)]
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	return respCommandsByName[string(lower)] // no allocation: a map index by converted bytes
}

// arityOK reports whether n arguments (the name included) fit arity.
func arityOK(arity, n int) bool {
	if arity < 0 {
		return n >= -arity
	}
	return n == arity
}

// execute runs one command and writes its reply. A panic answers the
// command with an error instead of taking the node down.
func (s *Server) execute(wr *redcon.Writer, sess *respSession, args [][]byte) (act respAction) {
	start, mark := time.Now(), len(wr.Buffer())
	cmd := lookupRespCommand(args[0])
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic in Redis-protocol command", zap.Any("panic", p), zap.Stack("stack"),
				zap.String("command", respPrintable(args[0], 32)))
			wr.WriteError("ERR internal error")
			act = actionContinue
		}
		// The reply starts where the buffer ended before: the writer is
		// flushed only between commands.
		status := "ok"
		if b := wr.Buffer(); len(b) > mark && b[mark] == '-' {
			status = "error"
		}
		op := "other" // unknown names would be unbounded label values
		if cmd != nil {
			op = cmd.name
		}
		s.metrics.ObserveRequest("resp", op, status, time.Since(start))
	}()
	switch {
	case !sess.authed && (cmd == nil || !cmd.preAuth):
		wr.WriteError(respErrNoAuth)
	case cmd == nil:
		wr.WriteError(respErrUnknown(args))
	case !arityOK(cmd.arity, len(args)):
		wr.WriteError(respErrArity(cmd.name))
	default:
		return cmd.run(s, wr, sess, args)
	}
	return actionContinue
}

// checkKey enforces the key limits of SPEC section 3 on the Redis side.
func checkKey(key []byte) string {
	if len(key) == 0 {
		return "ERR empty keys are not supported"
	}
	if len(key) > store.MaxKeyLen {
		return fmt.Sprintf("ERR key too long: %d bytes (at most %d)", len(key), store.MaxKeyLen)
	}
	return ""
}

// respErrorText turns an error of the request path into the Redis error to
// send. TRYAGAIN marks what is worth retrying as it is (go-redis retries
// it by itself); a quorum failure is an ERR because the write may have
// reached some replicas and the client should decide.
func (s *Server) respErrorText(err error) string {
	var qe *rpc.QuorumError
	switch {
	case errors.As(err, &qe):
		return fmt.Sprintf("ERR quorum not reached (needed %d, acked %d)", qe.Needed, qe.Acked)
	case errors.Is(err, store.ErrDiskFull):
		return "ERR disk full"
	case err == errRESPBufferFull:
		return respErrBufferFull
	case err == errReplyTooLarge:
		return fmt.Sprintf("ERR reply too large: the values add up to more than %d bytes; ask for fewer keys", s.maxReply)
	case errors.Is(err, store.ErrBadDatabase), errors.Is(err, store.ErrBadKey):
		return "ERR " + err.Error()
	case err == errOverloaded:
		return "TRYAGAIN node is overloaded: too many requests in flight"
	case errors.Is(err, coordinator.ErrNoRing):
		return "TRYAGAIN node has not joined a ring yet"
	case errors.Is(err, store.ErrClosed), errors.Is(err, coordinator.ErrClosed), errors.Is(err, context.Canceled):
		return "TRYAGAIN node is shutting down"
	default:
		s.log.Error("Redis-protocol command failed", zap.Error(err))
		return "ERR internal error"
	}
}

// errOverloaded: the backend had no in-flight slot free.
var errOverloaded = errors.New("node is overloaded: too many requests in flight")

// acquire takes one of the node's in-flight slots, which HTTP and the
// Redis protocol share, so that one of them cannot starve the other.
func (s *Server) acquire() (release func(), err error) {
	release, ok := s.backend.Acquire()
	if !ok {
		return nil, errOverloaded
	}
	return release, nil
}
