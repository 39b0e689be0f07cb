package membership

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
)

// ring.state: magic (8) | crc32c of the state (4) | State.Encode(). The
// rename makes a torn write impossible; the checksum catches a damaged disk
// before a wrong ring is trusted.
var stateMagic = []byte("DYNKVRNG")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func statePath(dir string) string { return filepath.Join(dir, stateFile) }

// loadState reads <dir>/ring.state; (State{}, false, nil) when there is none.
func loadState(dir string) (State, bool, error) {
	if dir == "" {
		return State{}, false, nil
	}
	path := statePath(dir)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return State{}, false, nil
	}
	if err != nil {
		return State{}, false, fmt.Errorf("membership: read %s: %w", path, err)
	}
	if len(b) < len(stateMagic)+4 || !bytes.Equal(b[:len(stateMagic)], stateMagic) {
		return State{}, false, fmt.Errorf("membership: %s: not a ring state file", path)
	}
	body := b[len(stateMagic)+4:]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[len(stateMagic):]) {
		return State{}, false, fmt.Errorf("membership: %s: checksum mismatch", path)
	}
	s, err := DecodeState(body)
	if err != nil {
		return State{}, false, fmt.Errorf("membership: %s: %w", path, err)
	}
	return s, true, nil
}

// saveState replaces <dir>/ring.state atomically and durably: write a temp
// file, fsync it, rename it over the old one, fsync the directory (without
// which the rename itself may not survive a power loss).
func saveState(dir string, s State) error {
	if dir == "" {
		return nil
	}
	body := s.Encode()
	b := make([]byte, 0, len(stateMagic)+4+len(body))
	b = append(b, stateMagic...)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(body, castagnoli))
	b = append(b, body...)

	path := statePath(dir)
	tmp := path + ".tmp"
	if err := writeSync(tmp, b); err != nil {
		return fmt.Errorf("membership: save %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("membership: save %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("membership: save %s: open dir: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("membership: save %s: sync dir: %w", path, err)
	}
	return nil
}

func writeSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
