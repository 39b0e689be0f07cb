package store

import (
	"errors"
	"fmt"

	"github.com/dynkv/dynkv/vclock"
)

// ErrContextAhead is matched by the *ContextAheadError of a Strict Write
// whose client context covers writes that neither this replica nor
// Supersede.Known holds: the coordinator should learn what the other
// replicas hold and write again.
var ErrContextAhead = errors.New("store: the client context covers writes this replica has not seen")

// ContextAheadError is ErrContextAhead with what the replica held.
type ContextAheadError struct {
	Context vclock.Context // the client's
	Held    vclock.Context // this replica's context for the key, merged with Known
}

func (e *ContextAheadError) Error() string {
	return fmt.Sprintf("context %s, replicas hold %s: %v", e.Context, e.Held, ErrContextAhead)
}

func (e *ContextAheadError) Unwrap() error { return ErrContextAhead }

// Supersede says which versions a coordinated write replaces (SPEC section
// 5: a write with a context supersedes exactly what the context covers; an
// empty context, from a 404, supersedes nothing; only a write with no
// context at all is blind).
type Supersede struct {
	// Blind: the client sent no context. The write supersedes everything
	// this replica holds, and Context, which for a blind write is what the
	// coordinator gathered from the other replicas.
	Blind bool
	// Context is the client's context (or the gathered one, when Blind).
	Context vclock.Context
	// Known is what other replicas of the key hold, learnt by the
	// coordinator. A client context is clamped to this replica's context
	// merged with Known: a client can only have seen writes some replica
	// minted, and believing more would make this write supersede writes
	// that have not happened yet, so that every replica drops them when
	// they do (a forged X-Context with huge counters).
	Known vclock.Context
	// Strict makes a client context that covers more than this replica and
	// Known hold fail with ErrContextAhead, writing nothing, instead of
	// being clamped at once: the replica may just not have received a write
	// yet, which the coordinator can learn from the other replicas.
	Strict bool
}

// Resolve returns the context the write supersedes at a replica whose
// context for the key is held, or ErrContextAhead (Strict).
func (sup Supersede) Resolve(held vclock.Context) (vclock.Context, error) {
	if sup.Blind {
		return held.Merge(sup.Context), nil
	}
	known := held.Merge(sup.Known)
	clamped := sup.Context.Intersect(known)
	if !clamped.Equal(sup.Context) && sup.Strict {
		return vclock.Context{}, &ContextAheadError{Context: sup.Context, Held: known}
	}
	return clamped, nil
}

// Write is a write coordinated by this replica as actor: the siblings sup
// covers are superseded and sib is added under a fresh dot. A zero
// sib.LastModified is set from the store's clock. It returns the new Set
// and the context to hand the client.
func (s *Store) Write(db int, key []byte, actor string, sup Supersede, sib vclock.Sibling) (vclock.Set, vclock.Context, error) {
	if err := s.checkKey(db, key); err != nil {
		return vclock.Set{}, vclock.Context{}, err
	}
	if sib.LastModified == 0 {
		sib.LastModified = s.opts.Now().UnixNano()
	}
	mu := s.lockFor(db, key)
	mu.Lock()
	defer mu.Unlock()
	cur, found, err := s.read(db, key)
	if err != nil {
		return vclock.Set{}, vclock.Context{}, err
	}
	if !sib.Tombstone {
		// A counter is changed by increments only (a delete, a tombstone,
		// is for any kind).
		if _, counter := cur.LiveKinds(sib.LastModified); counter {
			return vclock.Set{}, vclock.Context{}, fmt.Errorf("store: write a value to db %d key of %d bytes holding a counter: %w", db, len(key), ErrWrongType)
		}
	}
	ctx, err := sup.Resolve(cur.Context)
	if err != nil {
		return vclock.Set{}, vclock.Context{}, fmt.Errorf("store: db %d key of %d bytes: %w", db, len(key), err)
	}
	next, clientCtx := cur.Update(actor, ctx, sib)
	if err := s.commitPut(db, key, cur, found, next); err != nil {
		return vclock.Set{}, vclock.Context{}, err
	}
	return next, clientCtx, nil
}

// Increment adds delta to the counter the key holds (vclock.Set.Increment),
// as actor, the coordinating replica: base, the state the coordinator read
// from a quorum of the key's replicas, is merged in first, so that the
// increment builds on actor's latest share even if this replica lost or
// handed off its copy (any read quorum meets the write quorum of actor's
// last acknowledged increment). The key's lock serialises the increments
// of one actor, so two of them never build on the same share. It returns
// the new state; a key holding a value fails with ErrWrongType.
func (s *Store) Increment(db int, key []byte, actor string, base vclock.Set, delta int64) (vclock.Set, error) {
	if err := s.checkKey(db, key); err != nil {
		return vclock.Set{}, err
	}
	now := s.opts.Now().UnixNano()
	mu := s.lockFor(db, key)
	mu.Lock()
	defer mu.Unlock()
	cur, found, err := s.read(db, key)
	if err != nil {
		return vclock.Set{}, err
	}
	next, err := vclock.Merge(cur, base).Increment(actor, delta, now)
	if err != nil {
		return vclock.Set{}, fmt.Errorf("store: increment db %d key of %d bytes by %d: %w", db, len(key), delta, err)
	}
	if err := s.commitPut(db, key, cur, found, next); err != nil {
		return vclock.Set{}, err
	}
	return next, nil
}
