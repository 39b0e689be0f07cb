package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/match"
	"github.com/tidwall/redcon"
	"go.uber.org/zap"

	"github.com/dynkv/dynkv/coordinator"
	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/vclock"
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
	// at authCloseAfter the connection is closed.
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
	run                        func(s *respServer, wr *redcon.Writer, sess *respSession, args [][]byte) respAction
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
		{name: "auth", arity: -2, preAuth: true, run: func(s *respServer, wr *redcon.Writer, sess *respSession, args [][]byte) respAction {
			return s.auth(wr, sess, args)
		}},
		{name: "client", arity: -2, run: func(s *respServer, wr *redcon.Writer, sess *respSession, args [][]byte) respAction {
			s.client(wr, sess, args)
			return actionContinue
		}},
		{name: "command", arity: -1, run: func(s *respServer, wr *redcon.Writer, _ *respSession, args [][]byte) respAction {
			s.command(wr, args)
			return actionContinue
		}},
		{name: "config", arity: -2, run: func(s *respServer, wr *redcon.Writer, _ *respSession, args [][]byte) respAction {
			s.config(wr, args)
			return actionContinue
		}},
		{name: "del", arity: -2, write: true, firstKey: 1, lastKey: -1, keyStep: 1, run: func(s *respServer, wr *redcon.Writer, sess *respSession, args [][]byte) respAction {
			s.del(wr, sess, args[1:])
			return actionContinue
		}},
		{name: "echo", arity: 2, run: func(_ *respServer, wr *redcon.Writer, _ *respSession, args [][]byte) respAction {
			wr.WriteBulk(args[1])
			return actionContinue
		}},
		{name: "exists", arity: -2, firstKey: 1, lastKey: -1, keyStep: 1, run: func(s *respServer, wr *redcon.Writer, sess *respSession, args [][]byte) respAction {
			s.exists(wr, sess, args[1:])
			return actionContinue
		}},
		{name: "expire", arity: 3, write: true, firstKey: 1, lastKey: 1, keyStep: 1, run: func(s *respServer, wr *redcon.Writer, sess *respSession, args [][]byte) respAction {
			s.expire(wr, sess, "expire", args[1], args[2])
			return actionContinue
		}},
		{name: "get", arity: 2, firstKey: 1, lastKey: 1, keyStep: 1, run: func(s *respServer, wr *redcon.Writer, sess *respSession, args [][]byte) respAction {
			s.get(wr, sess, args[1])
			return actionContinue
		}},
		{name: "hello", arity: -1, preAuth: true, run: func(s *respServer, wr *redcon.Writer, sess *respSession, args [][]byte) respAction {
			return s.hello(wr, sess, args)
		}},
		{name: "info", arity: -1, run: func(s *respServer, wr *redcon.Writer, _ *respSession, _ [][]byte) respAction {
			wr.WriteBulkString(s.info())
			return actionContinue
		}},
		{name: "mget", arity: -2, firstKey: 1, lastKey: -1, keyStep: 1, run: func(s *respServer, wr *redcon.Writer, sess *respSession, args [][]byte) respAction {
			s.mget(wr, sess, args[1:])
			return actionContinue
		}},
		{name: "mset", arity: -3, write: true, firstKey: 1, lastKey: -1, keyStep: 2, run: func(s *respServer, wr *redcon.Writer, sess *respSession, args [][]byte) respAction {
			if len(args)%2 != 1 {
				wr.WriteError(respErrArity("mset"))
				return actionContinue
			}
			s.mset(wr, sess, args[1:])
			return actionContinue
		}},
		{name: "pexpire", arity: 3, write: true, firstKey: 1, lastKey: 1, keyStep: 1, run: func(s *respServer, wr *redcon.Writer, sess *respSession, args [][]byte) respAction {
			s.expire(wr, sess, "pexpire", args[1], args[2])
			return actionContinue
		}},
		{name: "ping", arity: -1, run: func(_ *respServer, wr *redcon.Writer, _ *respSession, args [][]byte) respAction {
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
		{name: "pttl", arity: 2, firstKey: 1, lastKey: 1, keyStep: 1, run: func(s *respServer, wr *redcon.Writer, sess *respSession, args [][]byte) respAction {
			s.ttl(wr, sess, args[1], time.Millisecond)
			return actionContinue
		}},
		{name: "quit", arity: -1, preAuth: true, run: func(_ *respServer, wr *redcon.Writer, _ *respSession, _ [][]byte) respAction {
			wr.WriteString("OK")
			return actionClose
		}},
		{name: "select", arity: 2, run: func(s *respServer, wr *redcon.Writer, sess *respSession, args [][]byte) respAction {
			db, ok := respInt(args[1])
			switch {
			case !ok:
				wr.WriteError(respErrNotInt)
			case db < 0 || db >= int64(s.n.cfg.Databases):
				wr.WriteError(respErrDBRange)
			default:
				sess.db = int(db)
				wr.WriteString("OK")
			}
			return actionContinue
		}},
		{name: "set", arity: -3, write: true, firstKey: 1, lastKey: 1, keyStep: 1, run: func(s *respServer, wr *redcon.Writer, sess *respSession, args [][]byte) respAction {
			s.set(wr, sess, args[1], args[2], args[3:])
			return actionContinue
		}},
		{name: "ttl", arity: 2, firstKey: 1, lastKey: 1, keyStep: 1, run: func(s *respServer, wr *redcon.Writer, sess *respSession, args [][]byte) respAction {
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
func (s *respServer) execute(wr *redcon.Writer, sess *respSession, args [][]byte) (act respAction) {
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
		s.n.metrics.observeRequest("resp", op, status, time.Since(start))
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
	if len(key) > MaxKeyBytes {
		return fmt.Sprintf("ERR key too long: %d bytes (at most %d)", len(key), MaxKeyBytes)
	}
	return ""
}

// respErrorText turns an error of the request path into the Redis error to
// send. TRYAGAIN marks what is worth retrying as it is (go-redis retries
// it by itself); a quorum failure is an ERR because the write may have
// reached some replicas and the client should decide.
func (s *respServer) respErrorText(err error) string {
	var (
		br *badRequest
		qe *rpc.QuorumError
	)
	switch {
	case errors.As(err, &qe):
		return fmt.Sprintf("ERR quorum not reached (needed %d, acked %d)", qe.Needed, qe.Acked)
	case errors.As(err, &br):
		return "ERR " + respPrintable([]byte(br.msg), 512)
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
	case err == errNotStarted, errors.Is(err, coordinator.ErrNoRing):
		return "TRYAGAIN node has not joined a ring yet"
	case errors.Is(err, store.ErrClosed), errors.Is(err, coordinator.ErrClosed), errors.Is(err, context.Canceled):
		return "TRYAGAIN node is shutting down"
	default:
		s.log.Error("Redis-protocol command failed", zap.Error(err))
		return "ERR internal error"
	}
}

// acquire takes one of the node's in-flight slots, which HTTP and the
// Redis protocol share, so that one of them cannot starve the other.
func (s *respServer) acquire() (release func(), err error) {
	select {
	case s.n.inflight <- struct{}{}:
		return func() { <-s.n.inflight }, nil
	default:
		return nil, errOverloaded
	}
}

// read fetches a key through the coordinator. latest is the live sibling
// a Redis GET returns; ok is false when there is none.
func (s *respServer) read(db int, key []byte) (set vclock.Set, latest vclock.Sibling, ok bool, err error) {
	release, err := s.acquire()
	if err != nil {
		return vclock.Set{}, vclock.Sibling{}, false, err
	}
	defer release()
	set, found, err := s.n.coordinatedGet(s.ctx, db, key, 0)
	if err != nil || !found {
		return set, vclock.Sibling{}, false, err
	}
	latest, ok = latestSibling(set.Live(s.n.cfg.now().UnixNano()))
	return set, latest, ok, nil
}

// latestSibling picks the most recently written of concurrent values (by
// the coordinator's LastModified, then by dot so that every node picks the
// same one): Redis has no way to return siblings.
func latestSibling(live []vclock.Sibling) (vclock.Sibling, bool) {
	if len(live) == 0 {
		return vclock.Sibling{}, false
	}
	best := live[0]
	for _, s := range live[1:] {
		if s.LastModified > best.LastModified ||
			s.LastModified == best.LastModified && (s.Dot.Actor > best.Dot.Actor ||
				s.Dot.Actor == best.Dot.Actor && s.Dot.Counter > best.Dot.Counter) {
			best = s
		}
	}
	return best, true
}

// write stores sib under key through the coordinator; vc is the context
// it supersedes, or with blind, what the replicas hold (SET, MSET).
func (s *respServer) write(db int, key []byte, vc vclock.Context, blind bool, sib vclock.Sibling) error {
	release, err := s.acquire()
	if err != nil {
		return err
	}
	defer release()
	_, err = s.n.coordinatedPut(s.ctx, db, key, vc, blind, sib, 0)
	return err
}

func (s *respServer) value(value []byte, ttl time.Duration) (vclock.Sibling, string) {
	if int64(len(value)) > s.n.cfg.MaxValueBytes {
		return vclock.Sibling{}, fmt.Sprintf("ERR value too large: %d bytes (at most %d)", len(value), s.n.cfg.MaxValueBytes)
	}
	now := s.n.cfg.now()
	sib := vclock.Sibling{Value: value, ContentType: defaultContentType, LastModified: now.UnixNano()}
	if ttl > 0 {
		sib.Expires = now.Add(ttl).UnixNano()
	}
	return sib, ""
}

func (s *respServer) get(wr *redcon.Writer, sess *respSession, key []byte) {
	if msg := checkKey(key); msg != "" {
		wr.WriteError(msg)
		return
	}
	_, latest, ok, err := s.read(sess.db, key)
	switch {
	case err != nil:
		wr.WriteError(s.respErrorText(err))
	case !ok:
		wr.WriteNull()
	default:
		wr.WriteBulk(latest.Value)
	}
}

// set is SPEC section 4's blind overwrite. With NX or XX it reads first and
// writes with the read's context: that supersedes exactly what it saw, but
// it is not atomic across the cluster (a concurrent writer may slip in
// between, and both values then survive as siblings).
func (s *respServer) set(wr *redcon.Writer, sess *respSession, key, value []byte, opts [][]byte) {
	o, msg := parseSetOptions(opts)
	if msg == "" {
		msg = checkKey(key)
	}
	var sib vclock.Sibling
	if msg == "" {
		sib, msg = s.value(value, o.ttl)
	}
	if msg != "" {
		wr.WriteError(msg)
		return
	}
	var vc vclock.Context
	if o.nx || o.xx {
		set, _, exists, err := s.read(sess.db, key)
		if err != nil {
			wr.WriteError(s.respErrorText(err))
			return
		}
		if o.nx && exists || o.xx && !exists {
			wr.WriteNull()
			return
		}
		vc = set.Context
		// The read took time; the write is what happens now.
		sib.LastModified = s.n.cfg.now().UnixNano()
	}
	if err := s.write(sess.db, key, vc, !o.nx && !o.xx, sib); err != nil {
		wr.WriteError(s.respErrorText(err))
		return
	}
	wr.WriteString("OK")
}

// errReplyTooLarge is an MGET whose values add up to more than maxReply.
var errReplyTooLarge = errors.New("reply too large")

// forEachKey runs fn for every key, at most respFanOut at once, and
// returns the first error.
func forEachKey(keys [][]byte, fn func(i int, key []byte) error) error {
	if len(keys) == 1 {
		return fn(0, keys[0])
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		slots = make(chan struct{}, respFanOut)
	)
	for i, k := range keys {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			if err := fn(i, k); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

func (s *respServer) checkKeys(keys [][]byte) string {
	for _, k := range keys {
		if msg := checkKey(k); msg != "" {
			return msg
		}
	}
	return ""
}

// del counts the keys that held a live value and deletes them, each with a
// tombstone written with its read's context: a concurrent write the read
// did not see survives, as it would an HTTP DELETE with that context.
func (s *respServer) del(wr *redcon.Writer, sess *respSession, keys [][]byte) {
	if msg := s.checkKeys(keys); msg != "" {
		wr.WriteError(msg)
		return
	}
	// A key named twice is deleted once and counted once, as in Redis,
	// where the second mention finds it gone.
	unique := make([][]byte, 0, len(keys))
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if !seen[string(k)] {
			seen[string(k)] = true
			unique = append(unique, k)
		}
	}
	existed := make([]bool, len(unique))
	err := forEachKey(unique, func(i int, key []byte) error {
		set, _, ok, err := s.read(sess.db, key)
		if err != nil || !ok {
			return err
		}
		existed[i] = true
		return s.write(sess.db, key, set.Context, false, vclock.Sibling{Tombstone: true, LastModified: s.n.cfg.now().UnixNano()})
	})
	if err != nil {
		wr.WriteError(s.respErrorText(err))
		return
	}
	wr.WriteInt(countTrue(existed))
}

// countTrue is how many of bs are true.
func countTrue(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// exists counts the keys with a live value; a key named twice counts
// twice, as in Redis.
func (s *respServer) exists(wr *redcon.Writer, sess *respSession, keys [][]byte) {
	if msg := s.checkKeys(keys); msg != "" {
		wr.WriteError(msg)
		return
	}
	found := make([]bool, len(keys))
	err := forEachKey(keys, func(i int, key []byte) error {
		_, _, ok, err := s.read(sess.db, key)
		found[i] = ok
		return err
	})
	if err != nil {
		wr.WriteError(s.respErrorText(err))
		return
	}
	wr.WriteInt(countTrue(found))
}

// expire reads the key and rewrites its latest value with the read's
// context and a new expiry, so siblings collapse into that value (the one
// GET returns). A time that is not positive deletes the key, as in Redis.
func (s *respServer) expire(wr *redcon.Writer, sess *respSession, name string, key, amount []byte) {
	if msg := checkKey(key); msg != "" {
		wr.WriteError(msg)
		return
	}
	v, ok := respInt(amount)
	if !ok {
		wr.WriteError(respErrNotInt)
		return
	}
	unit := time.Second
	if name == "pexpire" {
		unit = time.Millisecond
	}
	var ttl time.Duration
	if v > 0 {
		if ttl, ok = respDuration(v, unit); !ok {
			wr.WriteError(respErrExpire(name))
			return
		}
	}
	set, latest, exists, err := s.read(sess.db, key)
	if err != nil {
		wr.WriteError(s.respErrorText(err))
		return
	}
	if !exists {
		wr.WriteInt(0)
		return
	}
	now := s.n.cfg.now()
	sib := vclock.Sibling{Tombstone: true, LastModified: now.UnixNano()}
	if ttl > 0 {
		sib = vclock.Sibling{Value: latest.Value, ContentType: latest.ContentType,
			LastModified: now.UnixNano(), Expires: now.Add(ttl).UnixNano()}
	}
	if err := s.write(sess.db, key, set.Context, false, sib); err != nil {
		wr.WriteError(s.respErrorText(err))
		return
	}
	wr.WriteInt(1)
}

func (s *respServer) ttl(wr *redcon.Writer, sess *respSession, key []byte, unit time.Duration) {
	if msg := checkKey(key); msg != "" {
		wr.WriteError(msg)
		return
	}
	_, latest, ok, err := s.read(sess.db, key)
	switch {
	case err != nil:
		wr.WriteError(s.respErrorText(err))
	case !ok:
		wr.WriteInt(-2)
	default:
		wr.WriteInt64(respTTL(latest.Expires, s.n.cfg.now().UnixNano(), unit))
	}
}

func (s *respServer) mget(wr *redcon.Writer, sess *respSession, keys [][]byte) {
	if msg := s.checkKeys(keys); msg != "" {
		wr.WriteError(msg)
		return
	}
	values := make([][]byte, len(keys))
	found := make([]bool, len(keys))
	// The values gathered count against the node-wide budget until the
	// reply is built.
	var total, reserved atomic.Int64
	defer func() { s.budget.release(reserved.Load()) }()
	err := forEachKey(keys, func(i int, key []byte) error {
		if total.Load() > s.maxReply {
			return errReplyTooLarge
		}
		_, latest, ok, err := s.read(sess.db, key)
		if err != nil {
			return err
		}
		size := int64(len(latest.Value))
		if total.Add(size) > s.maxReply {
			return errReplyTooLarge
		}
		if !s.budget.reserve(size) {
			return errRESPBufferFull
		}
		reserved.Add(size)
		values[i], found[i] = latest.Value, ok
		return nil
	})
	if err == errRESPBufferFull {
		s.n.metrics.limits.respRefused.WithLabelValues(refusedBuffer).Inc()
	}
	if err != nil {
		wr.WriteError(s.respErrorText(err))
		return
	}
	wr.WriteArray(len(keys))
	for i := range keys {
		if found[i] {
			wr.WriteBulk(values[i])
		} else {
			wr.WriteNull()
		}
	}
}

// mset writes every pair blindly, concurrently. It is not atomic: on an
// error some pairs may be written.
func (s *respServer) mset(wr *redcon.Writer, sess *respSession, pairs [][]byte) {
	keys := make([][]byte, 0, len(pairs)/2)
	sibs := make([]vclock.Sibling, 0, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		msg := checkKey(pairs[i])
		var sib vclock.Sibling
		if msg == "" {
			sib, msg = s.value(pairs[i+1], 0)
		}
		if msg != "" {
			wr.WriteError(msg)
			return
		}
		keys = append(keys, pairs[i])
		sibs = append(sibs, sib)
	}
	err := forEachKey(keys, func(i int, key []byte) error {
		return s.write(sess.db, key, vclock.Context{}, true, sibs[i])
	})
	if err != nil {
		wr.WriteError(s.respErrorText(err))
		return
	}
	wr.WriteString("OK")
}

// auth checks AUTH [username] password against --auth-token. The user
// name is ignored: every token grants the same access.
func (s *respServer) auth(wr *redcon.Writer, sess *respSession, args [][]byte) respAction {
	if len(args) != 2 && len(args) != 3 {
		wr.WriteError(respErrArity("auth"))
		return actionContinue
	}
	if len(s.n.tokens) == 0 {
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
// failed-authentication guard (authfail.go). On a failure it has written
// the reply, after the guard's delay: WRONGPASS, and act is actionClose
// once the connection has failed authCloseAfter times in a row; or, when
// the source address is throttled, an error that tells nothing about the
// password, and the connection closes.
func (s *respServer) login(wr *redcon.Writer, sess *respSession, pw []byte) (ok bool, act respAction) {
	src := authSourceOf(sess.addr)
	if s.n.auth.throttled("resp", src) {
		wr.WriteError(respErrAuthThrottled)
		return false, actionClose
	}
	if s.validPassword(pw) {
		sess.authFails = 0
		return true, actionContinue
	}
	sess.authFails++
	if !s.n.auth.fail(s.ctx, "resp", src, sess.authFails, true) {
		wr.WriteError(respErrAuthThrottled)
		return false, actionClose
	}
	wr.WriteError(respErrWrongPass)
	if sess.authFails >= authCloseAfter {
		s.log.Debug("closing a connection after failed authentications", zap.String("remote", sess.addr), zap.Int("failures", sess.authFails))
		return false, actionClose
	}
	return false, actionContinue
}

// validPassword compares fixed-size digests, as validToken does, so the
// time taken says nothing about the token.
func (s *respServer) validPassword(pw []byte) bool {
	sum := sha256.Sum256(pw)
	valid := 0
	for _, t := range s.n.tokens {
		valid |= subtle.ConstantTimeCompare(sum[:], t[:])
	}
	return valid == 1
}

// hello speaks RESP2 only: HELLO 3 gets -NOPROTO, on which clients such
// as go-redis fall back to RESP2 (and AUTH); HELLO or HELLO 2 gets the
// RESP2 form of Redis's map.
func (s *respServer) hello(wr *redcon.Writer, sess *respSession, args [][]byte) respAction {
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
			if len(s.n.tokens) > 0 {
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
func (s *respServer) command(wr *redcon.Writer, args [][]byte) {
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
func (s *respServer) config(wr *redcon.Writer, args [][]byte) {
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
			{"databases", strconv.Itoa(s.n.cfg.Databases)},
			{"maxclients", strconv.Itoa(s.n.cfg.RESPMaxConns)},
			{"proto-max-bulk-len", strconv.FormatInt(s.n.cfg.MaxValueBytes, 10)},
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

func (s *respServer) client(wr *redcon.Writer, sess *respSession, args [][]byte) {
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
func (s *respServer) info() string {
	clusterSize := 0
	if c := s.n.cluster.Load(); c != nil {
		if p := c.members.Placement(); p.Committed != nil {
			clusterSize = len(p.Committed.Members())
		}
	}
	s.mu.Lock()
	clients := len(s.conns)
	s.mu.Unlock()
	var b strings.Builder
	line := func(k string, v any) { fmt.Fprintf(&b, "%s:%v\r\n", k, v) }
	b.WriteString("# Server\r\n")
	line("redis_version", respCompatVersion)
	line("dynkv_version", s.n.version())
	line("redis_mode", "standalone")
	line("os", runtime.GOOS+" "+runtime.GOARCH)
	line("process_id", os.Getpid())
	line("tcp_port", portOf(s.n.RESPAddr()))
	line("node_id", s.n.cfg.ID)
	line("cluster_size", clusterSize)
	line("replicas", s.n.cfg.Replicas)
	line("read_quorum", s.n.cfg.ReadQuorum)
	line("write_quorum", s.n.cfg.WriteQuorum)
	line("databases", s.n.cfg.Databases)
	b.WriteString("\r\n# Clients\r\n")
	line("connected_clients", clients)
	line("maxclients", s.n.cfg.RESPMaxConns)
	return b.String()
}

func portOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}

// version is the dynkv version: Config.Version as cmd/dynkv sets it, else
// the module version the binary was built from.
func (n *Node) version() string {
	if n.cfg.Version != "" {
		return n.cfg.Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}
