package rpc

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dynkv/dynkv/internal/wire"
	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/vclock"
)

// ErrMalformed is wrapped by every frame decoding error.
var ErrMalformed = errors.New("replication: malformed frame")

// Bounds every Decoder enforces before it allocates.
const (
	// MaxFrameBytes bounds every request and response body, and so the
	// total size of a merge batch.
	MaxFrameBytes = 64 << 20
	// MaxBatchItems bounds the items of one merge batch.
	MaxBatchItems = 4096
	// MaxKeyLen is the longest key a frame carries (SPEC section 3).
	MaxKeyLen = store.MaxKeyLen
	// maxDB: the store keeps the database number in one byte.
	maxDB = 255
	// maxW bounds a requested write quorum; N is far smaller in practice.
	maxW = 255
	// maxMessageLen bounds an error message; longer ones are cut on encode.
	maxMessageLen = 4096
)

// FrameVersion is the first byte of every frame. A Decoder refuses versions
// it does not know rather than guess at their layout. The second byte is
// the frame kind (calls.go).
const FrameVersion byte = 1

const flagTombstone byte = 1

// Coordinate request flags: flagBlind marks a write whose client sent no
// context; flagCounter an increment, whose delta follows the flags.
const (
	flagBlind   byte = 1
	flagCounter byte = 2
)

// Layouts (integers are uvarints unless marked; bytes are a uvarint length
// then the bytes; set and context are the vclock encodings as bytes):
//
//	get request         = version kind db key
//	get response        = version kind found(1 byte: 0 or 1) [set]
//	merge request       = version kind db key set
//	ack                 = version kind
//	merge-batch request = version kind count {db key set}
//	merge-covering req. = version kind db key set (the merge request's layout)
//	merge-covering res. = version kind covered(1 byte: 0 or 1) [context, when 0]
//	coordinate request  = version kind db key context sibling w [flags(1 byte) [delta(zigzag), when flag 2]]
//	sibling             = flags(1 byte) actor counter lastModified(zigzag)
//	                      expires(zigzag) contentType value
//	coordinate result   = version kind context [counter value(zigzag), omitted when 0]
//	error               = version kind code(1 byte) message needed acked index+1
//
// Exactly one encoding of each value is accepted (minimal varints, known
// flags, no trailing bytes), so decoding then encoding reproduces the input.

// getRequest asks a replica for its state of one key.
type getRequest struct {
	DB  int
	Key []byte
}

// getResponse is a replica's state of a key; Found is false when it holds
// no record.
type getResponse struct {
	Found bool
	Set   vclock.Set
}

// mergeRequest carries one key's state to merge into a replica.
type mergeRequest struct {
	DB  int
	Key []byte
	Set vclock.Set
}

// Header appends a frame's first two bytes, FrameVersion and kind (one of
// the kinds of calls.go), to b.
func Header(b []byte, kind byte) []byte { return append(b, FrameVersion, kind) }

// Local names for wire's helpers: every frame encoder here and the tests
// size and append with them (the rooms' frames use internal/wire itself).
func bytesLen(n int) int             { return wire.BytesLen(n) }
func appendBytes(b, v []byte) []byte { return wire.AppendBytes(b, v) }
func uvarintLen(x uint64) int        { return wire.UvarintLen(x) }
func varintLen(x int64) int          { return wire.VarintLen(x) }

func encodeGetRequest(r getRequest) []byte {
	b := make([]byte, 0, 2+uvarintLen(uint64(r.DB))+bytesLen(len(r.Key)))
	b = Header(b, KindGetRequest)
	b = binary.AppendUvarint(b, uint64(r.DB))
	return appendBytes(b, r.Key)
}

// decodeGetRequest parses a get request. The key aliases b.
func decodeGetRequest(b []byte) (getRequest, error) {
	d := NewDecoder(b)
	var r getRequest
	var err error
	if err = d.Header("get request", KindGetRequest); err != nil {
		return getRequest{}, err
	}
	if r.DB, err = d.DB(); err != nil {
		return getRequest{}, err
	}
	if r.Key, err = d.Key(); err != nil {
		return getRequest{}, err
	}
	return r, d.End("get request")
}

func encodeGetResponse(r getResponse) []byte {
	if !r.Found {
		return []byte{FrameVersion, KindGetResponse, 0}
	}
	set := r.Set.Encode()
	b := make([]byte, 0, 3+bytesLen(len(set)))
	b = append(Header(b, KindGetResponse), 1)
	return appendBytes(b, set)
}

func decodeGetResponse(b []byte) (getResponse, error) {
	d := NewDecoder(b)
	if err := d.Header("get response", KindGetResponse); err != nil {
		return getResponse{}, err
	}
	found, err := d.Byte("found flag")
	if err != nil {
		return getResponse{}, err
	}
	var r getResponse
	switch found {
	case 0:
	case 1:
		r.Found = true
		if r.Set, err = d.Set(); err != nil {
			return getResponse{}, err
		}
	default:
		return getResponse{}, d.ErrorfAt(d.Offset()-1, "found flag %d, want 0 or 1", found)
	}
	return r, d.End("get response")
}

func encodeMergeRequest(r mergeRequest) []byte { return encodeMergeAs(r, KindMergeRequest) }

// encodeCoverRequest is a merge-covering request: a merge request's layout
// under its own kind, so that neither call reads the other's frame.
func encodeCoverRequest(r mergeRequest) []byte { return encodeMergeAs(r, KindCoverRequest) }

func encodeMergeAs(r mergeRequest, kind byte) []byte {
	set := r.Set.Encode()
	b := make([]byte, 0, 2+uvarintLen(uint64(r.DB))+bytesLen(len(r.Key))+bytesLen(len(set)))
	b = Header(b, kind)
	b = binary.AppendUvarint(b, uint64(r.DB))
	b = appendBytes(b, r.Key)
	return appendBytes(b, set)
}

// decodeMergeRequest parses a merge request. The key aliases b.
func decodeMergeRequest(b []byte) (mergeRequest, error) {
	return decodeMergeAs(b, "merge request", KindMergeRequest)
}

// decodeCoverRequest parses a merge-covering request. The key aliases b.
func decodeCoverRequest(b []byte) (mergeRequest, error) {
	return decodeMergeAs(b, "merge-covering request", KindCoverRequest)
}

func decodeMergeAs(b []byte, what string, kind byte) (mergeRequest, error) {
	d := NewDecoder(b)
	var r mergeRequest
	var err error
	if err = d.Header(what, kind); err != nil {
		return mergeRequest{}, err
	}
	if r.DB, err = d.DB(); err != nil {
		return mergeRequest{}, err
	}
	if r.Key, err = d.Key(); err != nil {
		return mergeRequest{}, err
	}
	if r.Set, err = d.Set(); err != nil {
		return mergeRequest{}, err
	}
	return r, d.End(what)
}

// coverResult is a replica's answer to merge-covering: Covered when the
// set covered everything it held and is merged; otherwise nothing was
// written and Held is the replica's context for the key.
type coverResult struct {
	Covered bool
	Held    vclock.Context
}

func encodeCoverResult(r coverResult) []byte {
	if r.Covered {
		return []byte{FrameVersion, KindCoverResult, 1}
	}
	held := r.Held.Encode()
	b := make([]byte, 0, 3+bytesLen(len(held)))
	b = append(Header(b, KindCoverResult), 0)
	return appendBytes(b, held)
}

func decodeCoverResult(b []byte) (coverResult, error) {
	d := NewDecoder(b)
	if err := d.Header("merge-covering result", KindCoverResult); err != nil {
		return coverResult{}, err
	}
	covered, err := d.Byte("covered flag")
	if err != nil {
		return coverResult{}, err
	}
	var r coverResult
	switch covered {
	case 1:
		r.Covered = true
	case 0:
		if r.Held, err = d.Context(); err != nil {
			return coverResult{}, err
		}
	default:
		return coverResult{}, d.ErrorfAt(d.Offset()-1, "covered flag %d, want 0 or 1", covered)
	}
	return r, d.End("merge-covering result")
}

var ackFrame = []byte{FrameVersion, KindAck}

// Ack is the frame of a call that answers nothing but success (merge,
// merge-batch, hint). The caller must not modify it.
func Ack() []byte { return ackFrame }

// DecodeAck checks that b is an ack frame.
func DecodeAck(b []byte) error {
	d := NewDecoder(b)
	if err := d.Header("ack", KindAck); err != nil {
		return err
	}
	return d.End("ack")
}

// encodeMergeBatchRequest fails when the batch exceeds MaxBatchItems or
// MaxFrameBytes, so that a sender learns it before the peer refuses it.
func encodeMergeBatchRequest(items []Item) ([]byte, error) {
	if len(items) > MaxBatchItems {
		return nil, fmt.Errorf("replication: merge batch of %d items exceeds the limit %d", len(items), MaxBatchItems)
	}
	sets := make([][]byte, len(items))
	n := 2 + uvarintLen(uint64(len(items)))
	for i, it := range items {
		sets[i] = it.Set.Encode()
		n += uvarintLen(uint64(it.DB)) + bytesLen(len(it.Key)) + bytesLen(len(sets[i]))
		if n > MaxFrameBytes {
			return nil, fmt.Errorf("replication: merge batch exceeds %d bytes at item %d", MaxFrameBytes, i)
		}
	}
	b := make([]byte, 0, n)
	b = Header(b, KindMergeBatchRequest)
	b = binary.AppendUvarint(b, uint64(len(items)))
	for i, it := range items {
		b = binary.AppendUvarint(b, uint64(it.DB))
		b = appendBytes(b, it.Key)
		b = appendBytes(b, sets[i])
	}
	return b, nil
}

// minItemLen is the fewest bytes an item can take: db, a one-byte key with
// its length, and a set length.
const minItemLen = 4

// decodeMergeBatchRequest parses a merge batch. Keys alias b.
func decodeMergeBatchRequest(b []byte) ([]Item, error) {
	if len(b) > MaxFrameBytes {
		return nil, fmt.Errorf("%w: merge batch of %d bytes exceeds %d", ErrMalformed, len(b), MaxFrameBytes)
	}
	d := NewDecoder(b)
	if err := d.Header("merge-batch request", KindMergeBatchRequest); err != nil {
		return nil, err
	}
	n, err := d.Count("merge-batch item count", minItemLen)
	if err != nil {
		return nil, err
	}
	if n > MaxBatchItems {
		return nil, d.Errorf("merge batch of %d items exceeds the limit %d", n, MaxBatchItems)
	}
	items := make([]Item, n)
	for i := range items {
		it := &items[i]
		if it.DB, err = d.DB(); err != nil {
			return nil, fmt.Errorf("item %d: %w", i, err)
		}
		if it.Key, err = d.Key(); err != nil {
			return nil, fmt.Errorf("item %d: %w", i, err)
		}
		if it.Set, err = d.Set(); err != nil {
			return nil, fmt.Errorf("item %d: %w", i, err)
		}
	}
	return items, d.End("merge-batch request")
}

func siblingLen(s vclock.Sibling) int {
	return 1 + bytesLen(len(s.Dot.Actor)) + uvarintLen(s.Dot.Counter) +
		varintLen(s.LastModified) + varintLen(s.Expires) +
		bytesLen(len(s.ContentType)) + bytesLen(len(s.Value))
}

func appendSibling(b []byte, s vclock.Sibling) []byte {
	var flags byte
	if s.Tombstone {
		flags |= flagTombstone
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(len(s.Dot.Actor)))
	b = append(b, s.Dot.Actor...)
	b = binary.AppendUvarint(b, s.Dot.Counter)
	b = binary.AppendVarint(b, s.LastModified)
	b = binary.AppendVarint(b, s.Expires)
	b = binary.AppendUvarint(b, uint64(len(s.ContentType)))
	b = append(b, s.ContentType...)
	return appendBytes(b, s.Value)
}

func encodeCoordinateRequest(r WriteRequest) []byte {
	ctx := r.Context.Encode()
	b := make([]byte, 0, 2+uvarintLen(uint64(r.DB))+bytesLen(len(r.Key))+bytesLen(len(ctx))+
		siblingLen(r.Sibling)+uvarintLen(uint64(r.W))+1)
	b = Header(b, KindCoordinateRequest)
	b = binary.AppendUvarint(b, uint64(r.DB))
	b = appendBytes(b, r.Key)
	b = appendBytes(b, ctx)
	b = appendSibling(b, r.Sibling)
	b = binary.AppendUvarint(b, uint64(r.W))
	var flags byte
	if r.Blind {
		flags |= flagBlind
	}
	if r.Counter {
		flags |= flagCounter
	}
	b = append(b, flags)
	if r.Counter {
		b = binary.AppendVarint(b, r.Delta)
	}
	return b
}

// decodeCoordinateRequest parses a coordinate request. Key and value alias b.
func decodeCoordinateRequest(b []byte) (WriteRequest, error) {
	d := NewDecoder(b)
	var r WriteRequest
	var err error
	if err = d.Header("coordinate request", KindCoordinateRequest); err != nil {
		return WriteRequest{}, err
	}
	if r.DB, err = d.DB(); err != nil {
		return WriteRequest{}, err
	}
	if r.Key, err = d.Key(); err != nil {
		return WriteRequest{}, err
	}
	if r.Context, err = d.Context(); err != nil {
		return WriteRequest{}, err
	}
	if r.Sibling, err = d.Sibling(); err != nil {
		return WriteRequest{}, err
	}
	at := d.Offset()
	w, err := d.Uvarint("write quorum")
	if err != nil {
		return WriteRequest{}, err
	}
	if w > maxW {
		return WriteRequest{}, d.ErrorfAt(at, "write quorum %d exceeds %d", w, maxW)
	}
	r.W = int(w)
	if d.Len() == 0 {
		// A sender from before the flags byte: it had no empty context,
		// so a zero one meant no context at all.
		r.Blind = r.Context.IsZero()
		return r, nil
	}
	at = d.Offset()
	flags, err := d.Byte("coordinate flags")
	if err != nil {
		return WriteRequest{}, err
	}
	if flags&^(flagBlind|flagCounter) != 0 {
		return WriteRequest{}, d.ErrorfAt(at, "unknown coordinate flags %#x", flags)
	}
	r.Blind = flags&flagBlind != 0
	if flags&flagCounter != 0 {
		r.Counter = true
		if r.Delta, err = d.Varint("counter delta"); err != nil {
			return WriteRequest{}, err
		}
	}
	return r, d.End("coordinate request")
}

func encodeCoordinateResult(r WriteResult) []byte {
	ctx := r.Context.Encode()
	b := make([]byte, 0, 2+bytesLen(len(ctx))+binary.MaxVarintLen64)
	b = Header(b, KindCoordinateResult)
	b = appendBytes(b, ctx)
	if r.Value != 0 {
		b = binary.AppendVarint(b, r.Value)
	}
	return b
}

func decodeCoordinateResult(b []byte) (WriteResult, error) {
	d := NewDecoder(b)
	if err := d.Header("coordinate result", KindCoordinateResult); err != nil {
		return WriteResult{}, err
	}
	ctx, err := d.Context()
	if err != nil {
		return WriteResult{}, err
	}
	res := WriteResult{Context: ctx}
	if d.Len() > 0 {
		at := d.Offset()
		if res.Value, err = d.Varint("counter value"); err != nil {
			return WriteResult{}, err
		}
		if res.Value == 0 {
			return WriteResult{}, d.ErrorfAt(at, "counter value 0 is sent as no value")
		}
	}
	return res, d.End("coordinate result")
}

func encodeError(f errorFrame) []byte {
	msg := f.Message
	if len(msg) > maxMessageLen {
		msg = msg[:maxMessageLen]
	}
	needed, acked, index := uint64(max(f.Needed, 0)), uint64(max(f.Acked, 0)), uint64(max(f.Index+1, 0))
	b := make([]byte, 0, 3+bytesLen(len(msg))+uvarintLen(needed)+uvarintLen(acked)+uvarintLen(index))
	b = append(Header(b, KindError), byte(f.Code))
	b = binary.AppendUvarint(b, uint64(len(msg)))
	b = append(b, msg...)
	b = binary.AppendUvarint(b, needed)
	b = binary.AppendUvarint(b, acked)
	return binary.AppendUvarint(b, index)
}

func decodeError(b []byte) (errorFrame, error) {
	d := NewDecoder(b)
	if err := d.Header("error", KindError); err != nil {
		return errorFrame{}, err
	}
	code, err := d.Byte("error code")
	if err != nil {
		return errorFrame{}, err
	}
	if code == 0 || ErrorCode(code) > maxErrorCode {
		return errorFrame{}, d.ErrorfAt(d.Offset()-1, "unknown error code %d", code)
	}
	f := errorFrame{Code: ErrorCode(code)}
	msg, err := d.Bytes("error message length", maxMessageLen)
	if err != nil {
		return errorFrame{}, err
	}
	f.Message = string(msg)
	// Counts are bounded so they fit an int on every platform.
	const maxCount = 1 << 30
	for _, field := range []struct {
		what string
		dst  *int
	}{{"needed", &f.Needed}, {"acked", &f.Acked}, {"index", &f.Index}} {
		at := d.Offset()
		v, err := d.Uvarint(field.what)
		if err != nil {
			return errorFrame{}, err
		}
		if v > maxCount {
			return errorFrame{}, d.ErrorfAt(at, "%s %d exceeds %d", field.what, v, maxCount)
		}
		*field.dst = int(v)
	}
	f.Index--
	return f, d.End("error")
}

// Decoder is wire's bounds-checked reader with this package's sentinel
// (ErrMalformed), plus the fields only node-to-node frames have; the rooms
// decode their own frames with it.
type Decoder struct{ wire.Decoder }

// NewDecoder reads b.
func NewDecoder(b []byte) Decoder { return Decoder{wire.NewDecoder(b, ErrMalformed)} }

// Header reads a frame's version and kind and checks both; what names the
// frame in errors.
func (d *Decoder) Header(what string, kind byte) error {
	v, err := d.Byte(what + " version")
	if err != nil {
		return err
	}
	if v != FrameVersion {
		return d.ErrorfAt(0, "%s: format version %d, want %d", what, v, FrameVersion)
	}
	k, err := d.Byte(what + " kind")
	if err != nil {
		return err
	}
	if k != kind {
		return d.ErrorfAt(1, "%s: frame kind %d, want %d", what, k, kind)
	}
	return nil
}

// DB reads a database number.
func (d *Decoder) DB() (int, error) {
	at := d.Offset()
	v, err := d.Uvarint("database")
	if err != nil {
		return 0, err
	}
	if v > maxDB {
		return 0, d.ErrorfAt(at, "database %d exceeds %d", v, maxDB)
	}
	return int(v), nil
}

// Key reads a non-empty key of at most MaxKeyLen bytes; it aliases the
// frame.
func (d *Decoder) Key() ([]byte, error) {
	at := d.Offset()
	k, err := d.Bytes("key length", MaxKeyLen)
	if err != nil {
		return nil, err
	}
	if len(k) == 0 {
		return nil, d.ErrorfAt(at, "empty key")
	}
	return k, nil
}

// Set reads a vclock set.
func (d *Decoder) Set() (vclock.Set, error) {
	at := d.Offset()
	b, err := d.Bytes("set length", MaxFrameBytes)
	if err != nil {
		return vclock.Set{}, err
	}
	s, err := vclock.DecodeSet(b)
	if err != nil {
		return vclock.Set{}, fmt.Errorf("%w: offset %d: set: %w", ErrMalformed, at, err)
	}
	return s, nil
}

// Context reads a vclock context.
func (d *Decoder) Context() (vclock.Context, error) {
	at := d.Offset()
	b, err := d.Bytes("context length", MaxFrameBytes)
	if err != nil {
		return vclock.Context{}, err
	}
	c, err := vclock.DecodeContext(b)
	if err != nil {
		return vclock.Context{}, fmt.Errorf("%w: offset %d: context: %w", ErrMalformed, at, err)
	}
	return c, nil
}

// Sibling reads a sibling in full; value and content type alias buf.
func (d *Decoder) Sibling() (vclock.Sibling, error) {
	var s vclock.Sibling
	at := d.Offset()
	flags, err := d.Byte("sibling flags")
	if err != nil {
		return s, err
	}
	if flags&^flagTombstone != 0 {
		return s, d.ErrorfAt(at, "unknown sibling flags %#x", flags)
	}
	s.Tombstone = flags&flagTombstone != 0
	actor, err := d.Bytes("sibling actor length", vclock.MaxActorLen)
	if err != nil {
		return s, err
	}
	s.Dot.Actor = string(actor)
	if s.Dot.Counter, err = d.Uvarint("sibling counter"); err != nil {
		return s, err
	}
	if s.LastModified, err = d.Varint("sibling last-modified"); err != nil {
		return s, err
	}
	if s.Expires, err = d.Varint("sibling expiry"); err != nil {
		return s, err
	}
	ct, err := d.Bytes("sibling content type length", vclock.MaxContentTypeLen)
	if err != nil {
		return s, err
	}
	s.ContentType = string(ct)
	v, err := d.Bytes("sibling value length", vclock.MaxValueLen)
	if err != nil {
		return s, err
	}
	if len(v) > 0 {
		s.Value = v
	}
	return s, nil
}
