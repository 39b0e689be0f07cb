package wal

import (
	"errors"
	"fmt"
)

var (
	// ErrCorrupt is wrapped by every *CorruptionError: the log holds damage
	// that a crash cannot explain.
	ErrCorrupt = errors.New("wal: corrupt log")
	// ErrClosed is returned by operations on a closed WAL.
	ErrClosed = errors.New("wal: closed")
	// ErrTooLarge is returned by Append for a payload above MaxPayload.
	ErrTooLarge = errors.New("wal: payload too large")
	// ErrFailed is wrapped by every Append after an fsync failed: the log
	// refuses writes until it is reopened.
	ErrFailed = errors.New("wal: log failed")
)

// CorruptionError says where the log is damaged and why.
type CorruptionError struct {
	File   string // path of the segment file
	Offset int64  // byte offset of the first damaged record in File
	Reason string
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("wal: segment %s offset %d: %s", e.File, e.Offset, e.Reason)
}

// Unwrap makes errors.Is(err, ErrCorrupt) hold.
func (e *CorruptionError) Unwrap() error { return ErrCorrupt }
