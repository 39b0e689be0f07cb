package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/syndtr/goleveldb/leveldb"
	"go.uber.org/zap"

	"github.com/dynkv/dynkv/internal/defaults"
	"github.com/dynkv/dynkv/wal"
)

// Defaults applied by Options.withDefaults to zero fields.
const (
	DefaultDatabases          = 16
	DefaultTombstoneGrace     = 24 * time.Hour
	DefaultMinFreeBytes       = 64 << 20
	DefaultReclaimInterval    = time.Second
	DefaultCheckpointInterval = 30 * time.Second
	// MaxKeyLen is the longest user key (SPEC section 3).
	MaxKeyLen = 1024
	// maxDatabases is what fits in the one db byte of the LevelDB key layout.
	maxDatabases = 256
)

// Options configures a Store. The zero value, with Dir set, opens a working
// store with the defaults above.
type Options struct {
	// Dir holds wal/ and leveldb/; created if missing.
	Dir string
	// Databases is the number of logical databases (0..Databases-1); default 16.
	Databases int
	// SegmentSize is the WAL segment size; 0 lets the wal package choose.
	// A checkpoint is also taken after roughly this many appended bytes so
	// that segments are released as fast as they fill.
	SegmentSize int64
	// Sync is the WAL fsync policy; the zero value fsyncs before every
	// acknowledgement.
	Sync wal.SyncPolicy
	// Repair lets the WAL cut a corrupt log instead of failing Open.
	Repair bool
	// TombstoneGrace is how long a tombstone is kept before it may be
	// reclaimed; default 24h.
	TombstoneGrace time.Duration
	// MinFreeBytes: writes fail with ErrDiskFull while the file system holding
	// Dir has less free space than this; default 64 MiB.
	MinFreeBytes uint64
	// ReclaimInterval is how often the TTL/tombstone reclaimer runs; default 1s.
	ReclaimInterval time.Duration
	// CheckpointInterval is the longest time between checkpoints; default 30s.
	CheckpointInterval time.Duration
	// Now is the clock used for TTL and tombstone decisions; default time.Now.
	Now func() time.Time
	// FS is the file system under the WAL; nil means the real one.
	FS wal.FS
	// Logger receives operator-level events; default zap.NewNop().
	Logger *zap.Logger
	// WALObserver, when set, is told of every WAL fsync (metrics).
	WALObserver wal.Observer
	// CanDropTombstone is asked before a key holding only tombstones older
	// than TombstoneGrace is dropped; in a cluster it answers whether every
	// replica holds them (antientropy.TombstoneGC). It is called from the
	// reclaimer without the key's lock, so it may do network calls, but it
	// should bound them: the reclaimer waits. Nil means always yes (one
	// node). SetCanDropTombstone replaces it after Open.
	CanDropTombstone func(db int, key []byte) bool
	// OnChange, when set, is told of every change to a key's state: Put,
	// Merge, Drop, the reclaimer, and WAL replay during Open. before and
	// after are the encoded Sets (vclock.Set.Encode; nil: absent). It runs
	// once the change is durable (and applied, or queued for a retried
	// apply, so reads already return after), while the key's lock and the
	// store's write gate are held: calls for one key come in order, and a
	// change whose call ran before ScanMarked's mark is in that scan, one
	// whose call runs after is not. It must be quick and must not call the
	// Store. Active anti-entropy keeps its hash trees current with it.
	// When a record that does not decode is moved aside (quarantine.go),
	// before holds its stored bytes, which are not a valid encoding, and
	// after is nil.
	OnChange func(db int, key []byte, before, after []byte)
	// CacheBytes is the memory budget of the cache of recently written and
	// read states in front of LevelDB (cache.go); 0 means
	// DefaultCacheBytes, a negative value (or one under 256 KiB, too small
	// for its 64 shards) turns the cache off.
	CacheBytes int64

	// Test seams, settable only from this package's tests.
	wrapApply func(apply func(*leveldb.Batch) error) func(*leveldb.Batch) error
	freeSpace func(dir string) (uint64, error)
	// checkpointBytes overrides SegmentSize as the size trigger of
	// background checkpoints.
	checkpointBytes int64
}

func (o Options) withDefaults() Options {
	defaults.Set(&o.Databases, DefaultDatabases)
	defaults.Set(&o.TombstoneGrace, DefaultTombstoneGrace)
	defaults.Set(&o.MinFreeBytes, DefaultMinFreeBytes)
	defaults.Set(&o.ReclaimInterval, DefaultReclaimInterval)
	defaults.Set(&o.CheckpointInterval, DefaultCheckpointInterval)
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	defaults.Set(&o.CacheBytes, DefaultCacheBytes)
	return o
}

func (o Options) validate() error {
	var errs []error
	if o.Dir == "" {
		errs = append(errs, errors.New("Dir is empty: the store needs a data directory"))
	}
	if o.Databases < 1 || o.Databases > maxDatabases {
		errs = append(errs, fmt.Errorf("Databases is %d: must be between 1 and %d", o.Databases, maxDatabases))
	}
	if o.SegmentSize < 0 {
		errs = append(errs, fmt.Errorf("SegmentSize is %d: must not be negative", o.SegmentSize))
	}
	if o.TombstoneGrace < 0 {
		errs = append(errs, fmt.Errorf("TombstoneGrace is %s: must not be negative", o.TombstoneGrace))
	}
	if o.ReclaimInterval < 0 {
		errs = append(errs, fmt.Errorf("ReclaimInterval is %s: must be positive", o.ReclaimInterval))
	}
	if o.CheckpointInterval < 0 {
		errs = append(errs, fmt.Errorf("CheckpointInterval is %s: must be positive", o.CheckpointInterval))
	}
	if len(errs) > 0 {
		return fmt.Errorf("store: invalid options: %w", errors.Join(errs...))
	}
	return nil
}
