// The Redis protocol's key and value commands: GET, SET, DEL, EXISTS,
// EXPIRE and friends, TTL, MGET and MSET, and the reads and writes they share.

package resp

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dynkv/dynkv/node/metrics"

	"github.com/tidwall/redcon"

	"github.com/dynkv/dynkv/vclock"
)

// contentType is what a value written through the Redis protocol is
// stored as: HTTP's default, so that a GET over HTTP returns it as bytes.
const contentType = "application/octet-stream"

// read fetches a key through the coordinator. latest is the live sibling
// a Redis GET returns; ok is false when there is none.
func (s *Server) read(db int, key []byte) (set vclock.Set, latest vclock.Sibling, ok bool, err error) {
	release, err := s.acquire()
	if err != nil {
		return vclock.Set{}, vclock.Sibling{}, false, err
	}
	defer release()
	set, found, err := s.backend.Get(s.ctx, db, key)
	if err != nil || !found {
		return set, vclock.Sibling{}, false, err
	}
	latest, ok = latestSibling(set.Live(s.cfg.Now().UnixNano()))
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
func (s *Server) write(db int, key []byte, vc vclock.Context, blind bool, sib vclock.Sibling) error {
	release, err := s.acquire()
	if err != nil {
		return err
	}
	defer release()
	return s.backend.Put(s.ctx, db, key, vc, blind, sib)
}

func (s *Server) value(value []byte, ttl time.Duration) (vclock.Sibling, string) {
	if int64(len(value)) > s.cfg.MaxValueBytes {
		return vclock.Sibling{}, fmt.Sprintf("ERR value too large: %d bytes (at most %d)", len(value), s.cfg.MaxValueBytes)
	}
	now := s.cfg.Now()
	sib := vclock.Sibling{Value: value, ContentType: contentType, LastModified: now.UnixNano()}
	if ttl > 0 {
		sib.Expires = now.Add(ttl).UnixNano()
	}
	return sib, ""
}

func (s *Server) get(wr *redcon.Writer, sess *respSession, key []byte) {
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
func (s *Server) set(wr *redcon.Writer, sess *respSession, key, value []byte, opts [][]byte) {
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
		sib.LastModified = s.cfg.Now().UnixNano()
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

func (s *Server) checkKeys(keys [][]byte) string {
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
func (s *Server) del(wr *redcon.Writer, sess *respSession, keys [][]byte) {
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
		return s.write(sess.db, key, set.Context, false, vclock.Sibling{Tombstone: true, LastModified: s.cfg.Now().UnixNano()})
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
func (s *Server) exists(wr *redcon.Writer, sess *respSession, keys [][]byte) {
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
func (s *Server) expire(wr *redcon.Writer, sess *respSession, name string, key, amount []byte) {
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
	now := s.cfg.Now()
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

func (s *Server) ttl(wr *redcon.Writer, sess *respSession, key []byte, unit time.Duration) {
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
		wr.WriteInt64(respTTL(latest.Expires, s.cfg.Now().UnixNano(), unit))
	}
}

func (s *Server) mget(wr *redcon.Writer, sess *respSession, keys [][]byte) {
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
		s.metrics.Limits.RESPRefused.WithLabelValues(metrics.RefusedBuffer).Inc()
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
func (s *Server) mset(wr *redcon.Writer, sess *respSession, pairs [][]byte) {
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
