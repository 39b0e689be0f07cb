// The Redis protocol's connection and server commands: AUTH, HELLO,
// COMMAND, CONFIG, CLIENT and INFO.

package resp

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/dynkv/dynkv/node/internal/authguard"
	"github.com/tidwall/match"
	"github.com/tidwall/redcon"
	"go.uber.org/zap"
)

// auth checks AUTH [username] password against --auth-token. The user
// name is ignored: every token grants the same access.
func (s *Server) auth(wr *redcon.Writer, sess *respSession, args [][]byte) respAction {
	if len(args) != 2 && len(args) != 3 {
		wr.WriteError(respErrArity("auth"))
		return actionContinue
	}
	if len(s.cfg.Tokens) == 0 {
		wr.WriteError("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
		return actionContinue
	}
	if ok, act := s.login(wr, sess, args[len(args)-1]); !ok {
		return act
	}
	sess.authed = true
	wr.WriteString("OK")
	return actionContinue
}

// login checks a password of AUTH or HELLO ... AUTH through the node's
// failed-authentication guard (node/internal/authguard). On a failure it has written
// the reply, after the guard's delay: WRONGPASS, and act is actionClose
// once the connection has failed authguard.CloseAfter times in a row; or, when
// the source address is throttled, an error that tells nothing about the
// password, and the connection closes.
func (s *Server) login(wr *redcon.Writer, sess *respSession, pw []byte) (ok bool, act respAction) {
	src := authguard.SourceOf(sess.addr)
	if s.cfg.Guard.Throttled("resp", src) {
		wr.WriteError(respErrAuthThrottled)
		return false, actionClose
	}
	if s.cfg.Tokens.Valid(pw) {
		sess.authFails = 0
		return true, actionContinue
	}
	sess.authFails++
	if !s.cfg.Guard.Fail(s.ctx, "resp", src, sess.authFails, true) {
		wr.WriteError(respErrAuthThrottled)
		return false, actionClose
	}
	wr.WriteError(respErrWrongPass)
	if sess.authFails >= authguard.CloseAfter {
		s.log.Debug("closing a connection after failed authentications", zap.String("remote", sess.addr), zap.Int("failures", sess.authFails))
		return false, actionClose
	}
	return false, actionContinue
}

// hello speaks RESP2 only: HELLO 3 gets -NOPROTO, on which clients such
// as go-redis fall back to RESP2 (and AUTH); HELLO or HELLO 2 gets the
// RESP2 form of Redis's map.
func (s *Server) hello(wr *redcon.Writer, sess *respSession, args [][]byte) respAction {
	rest := args[1:]
	if len(rest) > 0 {
		v, ok := respInt(rest[0])
		if !ok {
			wr.WriteError("ERR Protocol version is not an integer or out of range")
			return actionContinue
		}
		if v != 2 {
			wr.WriteError("NOPROTO sorry, this protocol version is not supported.")
			return actionContinue
		}
		rest = rest[1:]
	}
	authed := sess.authed
	var name []byte
	setName := false
	for i := 0; i < len(rest); i++ {
		switch {
		case bytes.EqualFold(rest[i], []byte("AUTH")) && i+2 < len(rest):
			if len(s.cfg.Tokens) > 0 {
				if ok, act := s.login(wr, sess, rest[i+2]); !ok {
					return act
				}
			}
			authed = true
			i += 2
		case bytes.EqualFold(rest[i], []byte("SETNAME")) && i+1 < len(rest):
			name, setName = rest[i+1], true
			i++
		default:
			wr.WriteError("ERR Syntax error in HELLO option '" + respPrintable(rest[i], 64) + "'")
			return actionContinue
		}
	}
	if !authed {
		wr.WriteError("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
		return actionContinue
	}
	if setName {
		if msg := checkClientName(name); msg != "" {
			wr.WriteError(msg)
			return actionContinue
		}
		sess.name = string(name)
	}
	sess.authed = true
	wr.WriteArray(14)
	wr.WriteBulkString("server")
	wr.WriteBulkString("redis")
	wr.WriteBulkString("version")
	wr.WriteBulkString(respCompatVersion)
	wr.WriteBulkString("proto")
	wr.WriteInt(2)
	wr.WriteBulkString("id")
	wr.WriteInt64(sess.id)
	wr.WriteBulkString("mode")
	wr.WriteBulkString("standalone")
	wr.WriteBulkString("role")
	wr.WriteBulkString("master")
	wr.WriteBulkString("modules")
	wr.WriteArray(0)
	return actionContinue
}

// respCompatVersion is the Redis version whose commands dynkv's subset
// behaves like; clients that gate features on INFO's redis_version read it.
const respCompatVersion = "7.0.0"

// command answers COMMAND from respCommandTable: every command's name,
// arity, flags and key positions (COMMAND, COMMAND INFO name...), their
// count and their names (COMMAND COUNT, COMMAND LIST). COMMAND DOCS, which
// redis-cli asks for at start for its hints, is empty: it does without.
func (s *Server) command(wr *redcon.Writer, args [][]byte) {
	if len(args) == 1 {
		wr.WriteArray(len(respCommandTable))
		for i := range respCommandTable {
			writeCommandInfo(wr, &respCommandTable[i])
		}
		return
	}
	switch strings.ToLower(string(args[1])) {
	case "count":
		wr.WriteInt(len(respCommandTable))
	case "list":
		wr.WriteArray(len(respCommandTable))
		for i := range respCommandTable {
			wr.WriteBulkString(respCommandTable[i].name)
		}
	case "docs":
		wr.WriteArray(0)
	case "info":
		// A nil for a name that is not a command, as Redis answers.
		wr.WriteArray(len(args) - 2)
		for _, name := range args[2:] {
			if c := lookupRespCommand(name); c != nil {
				writeCommandInfo(wr, c)
			} else {
				wr.WriteNull()
			}
		}
	default:
		wr.WriteError("ERR unknown subcommand '" + respPrintable(args[1], 64) + "'. Try COMMAND HELP.")
	}
}

// writeCommandInfo writes one command as COMMAND INFO's reply does in Redis
// 7: name, arity, flags, first key, last key, key step, ACL categories,
// tips, key specs, subcommands.
func writeCommandInfo(wr *redcon.Writer, c *respCommand) {
	var flags []string
	switch {
	case c.write:
		flags = append(flags, "write")
	case c.firstKey > 0:
		flags = append(flags, "readonly")
	}
	if c.preAuth {
		flags = append(flags, "no-auth")
	}
	wr.WriteArray(10)
	wr.WriteBulkString(c.name)
	wr.WriteInt(c.arity)
	wr.WriteArray(len(flags))
	for _, f := range flags {
		wr.WriteString(f)
	}
	wr.WriteInt(c.firstKey)
	wr.WriteInt(c.lastKey)
	wr.WriteInt(c.keyStep)
	for range 4 { // ACL categories, tips, key specs, subcommands
		wr.WriteArray(0)
	}
}

// config answers CONFIG GET for the parameters clients ask about
// (redis-benchmark reads save and appendonly), and nothing else: dynkv is
// configured by flags at start.
func (s *Server) config(wr *redcon.Writer, args [][]byte) {
	if len(args) < 2 {
		wr.WriteError(respErrArity("config"))
		return
	}
	switch strings.ToLower(string(args[1])) {
	case "get":
		if len(args) < 3 {
			wr.WriteError(respErrArity("config|get"))
			return
		}
		params := [][2]string{
			{"appendonly", "no"},
			{"databases", strconv.Itoa(s.cfg.Databases)},
			{"maxclients", strconv.Itoa(s.cfg.MaxConns)},
			{"proto-max-bulk-len", strconv.FormatInt(s.cfg.MaxValueBytes, 10)},
			{"save", ""},
			{"timeout", "0"},
		}
		var out []string
		for _, p := range params {
			for _, pattern := range args[2:] {
				if match.Match(p[0], strings.ToLower(string(pattern))) {
					out = append(out, p[0], p[1])
					break
				}
			}
		}
		wr.WriteArray(len(out))
		for _, o := range out {
			wr.WriteBulkString(o)
		}
	case "resetstat":
		wr.WriteString("OK")
	case "set", "rewrite":
		wr.WriteError("ERR CONFIG " + strings.ToUpper(string(args[1])) + " is not supported: dynkv is configured by flags at start")
	default:
		wr.WriteError("ERR unknown subcommand '" + respPrintable(args[1], 64) + "'. Try CONFIG HELP.")
	}
}

// checkClientName applies Redis's rule for CLIENT SETNAME.
func checkClientName(name []byte) string {
	for _, c := range name {
		if c < '!' || c > '~' {
			return "ERR Client names cannot contain spaces, newlines or special characters."
		}
	}
	return ""
}

func (s *Server) client(wr *redcon.Writer, sess *respSession, args [][]byte) {
	if len(args) < 2 {
		wr.WriteError(respErrArity("client"))
		return
	}
	sub := strings.ToLower(string(args[1]))
	switch {
	case sub == "setname" && len(args) == 3:
		if msg := checkClientName(args[2]); msg != "" {
			wr.WriteError(msg)
			return
		}
		sess.name = string(args[2])
		wr.WriteString("OK")
	case sub == "getname" && len(args) == 2:
		if sess.name == "" {
			wr.WriteNull()
			return
		}
		wr.WriteBulkString(sess.name)
	case sub == "setinfo" && len(args) == 4:
		attr := strings.ToLower(string(args[2]))
		if attr != "lib-name" && attr != "lib-ver" {
			wr.WriteError("ERR Unrecognized option '" + respPrintable(args[2], 64) + "'")
			return
		}
		wr.WriteString("OK")
	case sub == "id" && len(args) == 2:
		wr.WriteInt64(sess.id)
	case sub == "info" && len(args) == 2:
		wr.WriteBulkString(fmt.Sprintf("id=%d addr=%s name=%s db=%d\n", sess.id, sess.addr, sess.name, sess.db))
	case sub == "setname", sub == "getname", sub == "setinfo", sub == "id", sub == "info":
		wr.WriteError(respErrArity("client|" + sub))
	default:
		wr.WriteError("ERR unknown subcommand '" + respPrintable(args[1], 64) + "'. Try CLIENT HELP.")
	}
}

// info is the INFO text: a server section that says what this node is and
// how it replicates, and the client count.
func (s *Server) info() string {
	clusterSize := s.backend.ClusterSize()
	s.mu.Lock()
	clients := len(s.conns)
	s.mu.Unlock()
	var b strings.Builder
	line := func(k string, v any) { fmt.Fprintf(&b, "%s:%v\r\n", k, v) }
	b.WriteString("# Server\r\n")
	line("redis_version", respCompatVersion)
	line("dynkv_version", s.cfg.Info.Version)
	line("redis_mode", "standalone")
	line("os", runtime.GOOS+" "+runtime.GOARCH)
	line("process_id", os.Getpid())
	line("tcp_port", portOf(s.Addr()))
	line("node_id", s.cfg.Info.NodeID)
	line("cluster_size", clusterSize)
	line("replicas", s.cfg.Info.Replicas)
	line("read_quorum", s.cfg.Info.ReadQuorum)
	line("write_quorum", s.cfg.Info.WriteQuorum)
	line("databases", s.cfg.Databases)
	b.WriteString("\r\n# Clients\r\n")
	line("connected_clients", clients)
	line("maxclients", s.cfg.MaxConns)
	return b.String()
}

func portOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}
