package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/syndtr/goleveldb/leveldb"
	"go.uber.org/zap"

	"github.com/dynkv/dynkv/vclock"
)

// Damaged records (docs/operations.md, "Quarantined records").
//
// A record the store cannot decode never stops the node and never stops a
// scan, a hint delivery or the reclaimer. It is quarantined: its exact
// bytes are copied to <Dir>/quarantine/ (a .bin file with the bytes and a
// .json file saying what they were), then it is removed from LevelDB, it
// is counted (Stats.Quarantine) and logged once, and the work that met it
// goes on as if the key were absent here. Other replicas still hold the
// key; read repair, anti-entropy and hinted handoff bring it back.
//
//   - A data record ("d" prefix) is removed with a "drop" WAL record, so
//     the removal is durable and reported to Options.OnChange with before
//     set to the damaged bytes (anti-entropy's hash trees hashed exactly
//     those bytes: ScanMarkedEncoded hands them over undecoded).
//   - A hint record ("h") is removed with a "hint-drop" WAL record, or, if
//     its key itself is malformed (no WAL record could name it), by a plain
//     LevelDB delete.
//   - A WAL record that passes its checksums but carries a Set that does
//     not decode is copied aside and skipped by replay; the key keeps the
//     state LevelDB held before it. A WAL record whose framing does not
//     decode, and any checksum failure, still stop Open (SPEC section 6).
//   - A damaged checkpoint record is copied aside and Open replays every
//     WAL record it still has (records carry full states, and the log kept
//     is contiguous, so a full replay ends in the same state).
//
// The bytes are copied before anything is removed; if the copy fails (a
// full disk) the record stays where it is, the failure is counted, and it
// is skipped for now and tried again the next time it is met.

// Kinds of quarantined record, the "kind" of the .json file and the label
// of the node's metric.
const (
	QuarantineData       = "data"
	QuarantineHint       = "hint"
	QuarantineWAL        = "wal"
	QuarantineCheckpoint = "checkpoint"
)

// QuarantineDirName is the folder under Options.Dir holding quarantined
// records.
const QuarantineDirName = "quarantine"

// quarantineFailLogEvery paces the warnings about records that could not be
// moved aside (each is met again by every scan until the disk has room).
const quarantineFailLogEvery = 10 * time.Second

// errNotQuarantined marks the failure of moving a damaged record aside.
var errNotQuarantined = errors.New("damaged stored record could not be moved aside")

// QuarantineStats counts damaged records.
type QuarantineStats struct {
	Data        uint64 // data records moved aside since Open
	Hints       uint64 // hint records moved aside since Open
	WALRecords  uint64 // WAL records whose Set did not decode, set aside by the last Open's replay
	Checkpoints uint64 // damaged checkpoint records met by the last Open (it replayed the whole WAL)
	Failures    uint64 // attempts to move a damaged record aside that failed (it stays, skipped)
	Held        int    // records kept under Dir/quarantine, from every run
	Dir         string // that folder
}

// Total is every record moved aside since Open.
func (q QuarantineStats) Total() uint64 { return q.Data + q.Hints + q.WALRecords + q.Checkpoints }

// quarantine is the store's bookkeeping of damaged records.
type quarantine struct {
	dir                                     string
	data, hints, wal, checkpoints, failures atomic.Uint64
	held                                    atomic.Int64
	mu                                      sync.Mutex // serialises writing files
	lastFailLog                             atomic.Int64
	failSuppressed                          atomic.Uint64
	warnedUnreachable                       atomic.Bool
}

func (q *quarantine) init(dir string) {
	q.dir = filepath.Join(dir, QuarantineDirName)
	entries, err := os.ReadDir(q.dir)
	if err != nil {
		return
	}
	n := 0
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".json") {
			n++
		}
	}
	q.held.Store(int64(n))
}

func (q *quarantine) stats() QuarantineStats {
	return QuarantineStats{
		Data:        q.data.Load(),
		Hints:       q.hints.Load(),
		WALRecords:  q.wal.Load(),
		Checkpoints: q.checkpoints.Load(),
		Failures:    q.failures.Load(),
		Held:        int(q.held.Load()),
		Dir:         q.dir,
	}
}

// damagedError is a stored record that does not decode. Reads return it
// internally; read and the scans turn it into a quarantine.
type damagedError struct {
	kind   string
	db     int    // -1 when unknown (a malformed hint key, a checkpoint)
	key    []byte // the user key, when known
	owner  string // a hint's owner, when known
	lkey   []byte // the LevelDB key; nil for a WAL record
	lsn    uint64 // a WAL record's LSN
	raw    []byte // the bytes as stored
	reason error
}

func (e *damagedError) Error() string {
	return fmt.Sprintf("store: stored %s record (%s) does not decode: %v", e.kind, e.describe(), e.reason)
}

func (e *damagedError) Unwrap() error { return e.reason }

func (e *damagedError) describe() string {
	var parts []string
	if e.owner != "" {
		parts = append(parts, "owner "+strconv.Quote(e.owner))
	}
	if e.db >= 0 {
		parts = append(parts, fmt.Sprintf("db %d key_hash %016x", e.db, keyHash(e.db, e.key)))
	}
	if e.lsn != 0 {
		parts = append(parts, fmt.Sprintf("WAL LSN %d", e.lsn))
	}
	if len(parts) == 0 {
		parts = append(parts, fmt.Sprintf("LevelDB key %q", e.lkey))
	}
	return strings.Join(parts, ", ")
}

func (e *damagedError) logFields() []zap.Field {
	f := []zap.Field{zap.String("kind", e.kind), zap.Int("bytes", len(e.raw)), zap.NamedError("reason", e.reason)}
	if e.db >= 0 {
		f = append(f, zap.Int("db", e.db), zap.String("key_hash", fmt.Sprintf("%016x", keyHash(e.db, e.key))))
	}
	if e.owner != "" {
		f = append(f, zap.String("owner", e.owner))
	}
	if e.lsn != 0 {
		f = append(f, zap.Uint64("lsn", e.lsn))
	}
	if e.db < 0 && e.lkey != nil {
		f = append(f, zap.String("leveldb_key", strconv.QuoteToASCII(string(e.lkey))))
	}
	return f
}

// damagedData is the damagedError of a data record whose value v does not
// decode.
func damagedData(db int, key, v []byte, reason error) *damagedError {
	return &damagedError{kind: QuarantineData, db: db, key: append([]byte(nil), key...), lkey: dataKey(db, key), raw: v, reason: reason}
}

// damagedHint is the damagedError of a hint record.
func damagedHint(lkey, v []byte, reason error) *damagedError {
	d := &damagedError{kind: QuarantineHint, db: -1, lkey: append([]byte(nil), lkey...), raw: v, reason: reason}
	if owner, db, key, ok := parseHintKey(lkey); ok {
		d.owner, d.db, d.key = owner, db, append([]byte(nil), key...)
	}
	return d
}

// quarantineMeta is the .json file beside each quarantined record's bytes.
type quarantineMeta struct {
	Kind          string    `json:"kind"`
	Reason        string    `json:"reason"`
	QuarantinedAt time.Time `json:"quarantined_at"`
	DB            *int      `json:"db,omitempty"`
	// Key is the user key, escaped as a Go string; KeyBase64 holds it
	// exactly.
	Key       string `json:"key,omitempty"`
	KeyBase64 []byte `json:"key_base64,omitempty"`
	KeyHash   string `json:"key_hash,omitempty"`
	Owner     string `json:"owner,omitempty"`
	LSN       uint64 `json:"wal_lsn,omitempty"`
	// LevelDBKey is where the record was stored (base64).
	LevelDBKey []byte `json:"leveldb_key,omitempty"`
	Bytes      int    `json:"bytes"`
	// File is the file, in the same folder, holding the record's bytes
	// exactly as they were stored.
	File string `json:"file"`
}

// preserve copies d's bytes to the quarantine folder (durably: fsync of
// the files and the folder) before anything removes them. The names derive
// from the record's place and bytes, so the same damaged record met again
// (say after a crash undid its removal) overwrites its own copy.
func (s *Store) preserve(d *damagedError) (string, error) {
	q := &s.quar
	place := d.lkey
	if d.kind == QuarantineWAL {
		place = strconv.AppendUint(nil, d.lsn, 10)
	}
	name := fmt.Sprintf("%s-%016x-%016x", d.kind, xxhash.Sum64(place), xxhash.Sum64(d.raw))
	meta := quarantineMeta{
		Kind:          d.kind,
		Reason:        d.reason.Error(),
		QuarantinedAt: time.Now().UTC(),
		Owner:         d.owner,
		LSN:           d.lsn,
		LevelDBKey:    d.lkey,
		Bytes:         len(d.raw),
		File:          name + ".bin",
	}
	if d.db >= 0 {
		db := d.db
		meta.DB = &db
		meta.Key = strconv.Quote(string(d.key))
		meta.KeyBase64 = d.key
		meta.KeyHash = fmt.Sprintf("%016x", keyHash(d.db, d.key))
	}
	js, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return "", err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := os.MkdirAll(q.dir, 0o755); err != nil {
		return "", classifyFileError(err)
	}
	jsonPath := filepath.Join(q.dir, name+".json")
	_, statErr := os.Stat(jsonPath)
	existed := statErr == nil
	if err := writeFileSync(filepath.Join(q.dir, name+".bin"), d.raw); err != nil {
		return "", err
	}
	if err := writeFileSync(jsonPath, append(js, '\n')); err != nil {
		return "", err
	}
	if err := syncDir(q.dir); err != nil {
		return "", err
	}
	if !existed {
		q.held.Add(1)
	}
	return filepath.Join(q.dir, name+".bin"), nil
}

func writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return classifyFileError(err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(tmp)
		return classifyFileError(err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return classifyFileError(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return classifyFileError(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return classifyFileError(err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return classifyFileError(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return classifyFileError(err)
	}
	return nil
}

func classifyFileError(err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("store: quarantine: %w: %w", ErrDiskFull, err)
	}
	return fmt.Errorf("store: quarantine: %w", err)
}

// quarantined counts and logs a record moved aside.
func (s *Store) quarantined(d *damagedError, file, what string) {
	switch d.kind {
	case QuarantineData:
		s.quar.data.Add(1)
	case QuarantineHint:
		s.quar.hints.Add(1)
	case QuarantineWAL:
		s.quar.wal.Add(1)
	case QuarantineCheckpoint:
		s.quar.checkpoints.Add(1)
	}
	s.log.Error("damaged stored record quarantined: "+what,
		append(d.logFields(), zap.String("file", file))...)
}

// quarantineFailed counts a failed attempt, warns at most once per
// quarantineFailLogEvery, and returns the error for the caller.
func (s *Store) quarantineFailed(d *damagedError, err error) error {
	s.quar.failures.Add(1)
	now := time.Now().UnixNano()
	last := s.quar.lastFailLog.Load()
	if now-last >= int64(quarantineFailLogEvery) && s.quar.lastFailLog.CompareAndSwap(last, now) {
		s.log.Warn("a damaged stored record could not be moved aside; it stays in place and is skipped until a later attempt succeeds",
			append(d.logFields(), zap.Error(err), zap.Uint64("suppressed_since_last_warning", s.quar.failSuppressed.Swap(0)))...)
	} else {
		s.quar.failSuppressed.Add(1)
	}
	return fmt.Errorf("%w: %w: %w", d, errNotQuarantined, err)
}

// quarantineDataLocked moves the damaged data record d aside. The caller
// holds the key's lock and has just read d. On success the key is absent
// here.
func (s *Store) quarantineDataLocked(d *damagedError) error {
	file, err := s.preserve(d)
	if err != nil {
		return s.quarantineFailed(d, err)
	}
	b := new(leveldb.Batch)
	b.Delete(d.lkey)
	// The key's reclaim index entry, if any, cannot be computed from bytes
	// that do not decode; the reclaimer drops it when it comes due (the
	// key is then absent).
	p := pendingApply{set: vclock.Set{}, dropped: true}
	if s.opts.OnChange != nil {
		p.before = d.raw
	}
	if err := s.commit(d.db, d.key, encodeRecord(opDrop, d.db, d.key, nil), b, p); err != nil {
		return s.quarantineFailed(d, err)
	}
	s.quarantined(d, file, "the key reads as absent on this node until read repair or anti-entropy restores it from another replica")
	return nil
}

// quarantineScanned handles a data record a scan found damaged in its
// snapshot: under the key's lock, if the key's current state is still
// damaged it is moved aside; a key rewritten since is left alone. It reads
// past the state cache, which may still hold the state the damaged bytes
// replaced.
func (s *Store) quarantineScanned(db int, key []byte) {
	mu := s.lockFor(db, key)
	mu.Lock()
	defer mu.Unlock()
	_, _, err := s.readStored(db, key)
	var d *damagedError
	if errors.As(err, &d) {
		_ = s.quarantineDataLocked(d) // counted and logged
	}
}

// validHintPlace reports whether a hint record's owner, db and key could
// have been written by this store (so a hint-drop WAL record can name it).
func (s *Store) validHintPlace(d *damagedError) bool {
	return d.owner != "" && d.db >= 0 && d.db < s.opts.Databases && len(d.key) >= 1 && len(d.key) <= MaxKeyLen
}

// quarantineHintLocked moves the damaged hint record d aside; the caller
// holds the hint key's lock.
func (s *Store) quarantineHintLocked(d *damagedError) error {
	file, err := s.preserve(d)
	if err != nil {
		return s.quarantineFailed(d, err)
	}
	if s.validHintPlace(d) {
		r := record{op: opHintDrop, db: d.db, key: d.key, owner: d.owner}
		if err := s.commitHint(r, d.lkey); err != nil {
			return s.quarantineFailed(d, err)
		}
		s.hints.remove(d.owner, d.lkey)
	} else {
		// A key no WAL record can name: nothing replays it, so a plain
		// delete is enough (if a crash undoes it, the record is met and
		// moved aside again).
		if err := s.db().Delete(d.lkey, writeNoSync); err != nil {
			return s.quarantineFailed(d, err)
		}
	}
	s.quarantined(d, file, "the hint is not delivered; anti-entropy brings the key to its owner from the other replicas")
	return nil
}

// quarantineHintScanned handles a hint record a scan found damaged: under
// the hint's lock, if LevelDB still holds damaged bytes there, they are
// moved aside.
func (s *Store) quarantineHintScanned(lkey []byte) {
	mu := s.hintLock(lkey)
	mu.Lock()
	defer mu.Unlock()
	if s.closed.Load() {
		return
	}
	v, err := s.db().Get(lkey, nil)
	if err != nil {
		return // gone meanwhile, or LevelDB trouble another path reports
	}
	if _, _, _, _, _, d := s.decodeHintRecord(lkey, v); d != nil {
		_ = s.quarantineHintLocked(d) // counted and logged
	}
}

// decodeHintRecord decodes a stored hint record, or returns its damage: a
// key that does not parse or names a database or key this store could not
// have written, or a value that does not decode.
func (s *Store) decodeHintRecord(lkey, v []byte) (owner string, db int, key []byte, created int64, set vclock.Set, d *damagedError) {
	owner, db, key, ok := parseHintKey(lkey)
	switch {
	case !ok:
		return "", 0, nil, 0, vclock.Set{}, damagedHint(lkey, v, errors.New("malformed hint key"))
	case db >= s.opts.Databases || len(key) > MaxKeyLen:
		return "", 0, nil, 0, vclock.Set{}, damagedHint(lkey, v, fmt.Errorf("hint for database %d (the store has %d) or a key of %d bytes (at most %d)", db, s.opts.Databases, len(key), MaxKeyLen))
	}
	created, set, err := decodeHintValue(v)
	if err != nil {
		return "", 0, nil, 0, vclock.Set{}, damagedHint(lkey, v, err)
	}
	return owner, db, key, created, set, nil
}

// preserveAtOpen copies a record Open meets damaged (a data record a WAL
// record replaces, a WAL record's undecodable Set, the checkpoint) and
// counts and logs it. Nothing is written to the WAL: Open is replaying it.
func (s *Store) preserveAtOpen(d *damagedError, what string) error {
	file, err := s.preserve(d)
	if err != nil {
		s.quar.failures.Add(1)
		return fmt.Errorf("%w: %w: %w", d, errNotQuarantined, err)
	}
	s.quarantined(d, file, what)
	return nil
}

// warnUnreachable logs, once per Open, that scans skip records outside
// the configured databases or key length (left in place: they decode, and
// may be another configuration's, say a larger --databases).
func (s *Store) warnUnreachable(k []byte) {
	if s.quar.warnedUnreachable.CompareAndSwap(false, true) {
		s.log.Warn("scans skip stored records outside the configured databases or key length; they are left in place",
			zap.Int("db", int(k[1])), zap.Int("key_bytes", len(k)-2), zap.Int("databases", s.opts.Databases))
	}
}
