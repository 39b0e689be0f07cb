package wal

import (
	"fmt"
	"time"

	"github.com/dynkv/dynkv/internal/defaults"
	"go.uber.org/zap"
)

// DefaultSegmentSize is the size past which the active segment is rotated.
const DefaultSegmentSize = 64 << 20

// SyncPolicy says when an Append is acknowledged. The zero value fsyncs
// before every acknowledgement.
type SyncPolicy struct {
	// Interval 0: Append returns after its batch is fsynced. Interval > 0:
	// Append returns after its batch is written and a ticker fsyncs every
	// Interval (see the package doc for what a power loss then costs).
	Interval time.Duration
}

// ParseSyncPolicy parses the --fsync flag: "always" or a Go duration > 0.
func ParseSyncPolicy(s string) (SyncPolicy, error) {
	if s == "always" {
		return SyncPolicy{}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return SyncPolicy{}, fmt.Errorf("wal: sync policy %q: want \"always\" or a duration such as 10ms: %w", s, err)
	}
	if d <= 0 {
		return SyncPolicy{}, fmt.Errorf("wal: sync policy %q: interval must be > 0 (use \"always\" to fsync every write)", s)
	}
	return SyncPolicy{Interval: d}, nil
}

// String returns the flag form: "always" or the interval.
func (p SyncPolicy) String() string {
	if p.Interval == 0 {
		return "always"
	}
	return p.Interval.String()
}

// Options configure Open. Only Dir is required.
type Options struct {
	Dir         string
	SegmentSize int64 // default DefaultSegmentSize
	Sync        SyncPolicy
	// Repair cuts the log at the first corruption instead of failing Open.
	Repair bool
	// NoPreallocate makes records grow the active segment as they are
	// written, instead of landing on zeros written ahead of them
	// (WAL.preallocate). For tests of a write that fails part-way.
	NoPreallocate bool
	// StartLSN is the first LSN of an empty log (default 1). It is also a
	// floor for every LSN assigned, so a caller that knows LSNs up to some
	// checkpoint were handed out can keep them from being reused even if
	// the tail that held them was lost.
	StartLSN uint64
	FS       FS          // default OSFS
	Logger   *zap.Logger // default zap.NewNop()
	Observer Observer    // optional: told of every fsync (metrics)
}

func (o *Options) ensureDefaults() error {
	if o.Dir == "" {
		return fmt.Errorf("wal: options: Dir is required")
	}
	if o.SegmentSize < 0 {
		return fmt.Errorf("wal: options: SegmentSize %d is negative", o.SegmentSize)
	}
	defaults.Set(&o.SegmentSize, DefaultSegmentSize)
	if o.Sync.Interval < 0 {
		return fmt.Errorf("wal: options: sync interval %s is negative", o.Sync.Interval)
	}
	defaults.Set(&o.StartLSN, 1)
	if o.FS == nil {
		o.FS = OSFS{}
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return nil
}
