package wal

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
)

const (
	// MaxPayload is the largest payload Append accepts. It bounds what a
	// reader allocates for one record, whatever a length field claims.
	MaxPayload = 64 << 20

	frameHeaderSize = 20 // header crc, length, lsn, payload crc

	segmentMagic   = "DYNKVWAL"
	segmentVersion = 1
	// segmentHeaderSize is the magic plus the version byte.
	segmentHeaderSize = len(segmentMagic) + 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendRecord frames payload as record lsn onto dst. payloadCRC is passed
// in so appenders can compute it before taking the batch mutex.
func appendRecord(dst []byte, lsn uint64, payloadCRC uint32, payload []byte) []byte {
	var h [frameHeaderSize]byte
	binary.LittleEndian.PutUint32(h[4:8], uint32(len(payload)))
	binary.LittleEndian.PutUint64(h[8:16], lsn)
	binary.LittleEndian.PutUint32(h[16:20], payloadCRC)
	binary.LittleEndian.PutUint32(h[0:4], crc32.Checksum(h[4:16], castagnoli))
	dst = append(dst, h[:]...)
	return append(dst, payload...)
}

func payloadChecksum(p []byte) uint32 { return crc32.Checksum(p, castagnoli) }

// frameHeader is a decoded record header whose checksum validated.
type frameHeader struct {
	length     uint32
	lsn        uint64
	payloadCRC uint32
}

// decodeHeader checks the header checksum before it believes the length.
// A non-empty reason means the header is damaged.
func decodeHeader(h []byte) (frameHeader, string) {
	if len(h) < frameHeaderSize {
		return frameHeader{}, fmt.Sprintf("truncated record header (%d of %d bytes)", len(h), frameHeaderSize)
	}
	if binary.LittleEndian.Uint32(h[0:4]) != crc32.Checksum(h[4:16], castagnoli) {
		return frameHeader{}, "record header checksum mismatch"
	}
	fh := frameHeader{
		length:     binary.LittleEndian.Uint32(h[4:8]),
		lsn:        binary.LittleEndian.Uint64(h[8:16]),
		payloadCRC: binary.LittleEndian.Uint32(h[16:20]),
	}
	if fh.length > MaxPayload {
		return frameHeader{}, fmt.Sprintf("record length %d exceeds maximum %d", fh.length, MaxPayload)
	}
	if fh.lsn == 0 {
		return frameHeader{}, "record lsn 0"
	}
	return fh, ""
}

// decodeRecord decodes the record at the start of b. It never panics and
// never trusts a length it has not bounds-checked; a non-empty reason means
// b does not start with a whole valid record.
func decodeRecord(b []byte) (lsn uint64, payload []byte, n int, reason string) {
	fh, reason := decodeHeader(b)
	if reason != "" {
		return 0, nil, 0, reason
	}
	end := frameHeaderSize + int(fh.length)
	if len(b) < end {
		return 0, nil, 0, fmt.Sprintf("truncated record payload (%d of %d bytes)", len(b)-frameHeaderSize, fh.length)
	}
	payload = b[frameHeaderSize:end]
	if payloadChecksum(payload) != fh.payloadCRC {
		return 0, nil, 0, "record payload checksum mismatch"
	}
	return fh.lsn, payload, end, ""
}

func segmentHeader() []byte {
	return append([]byte(segmentMagic), segmentVersion)
}

// checkSegmentHeader returns a non-empty reason when h is not a valid
// segment header.
func checkSegmentHeader(h []byte) string {
	if len(h) < segmentHeaderSize {
		return fmt.Sprintf("truncated segment header (%d of %d bytes)", len(h), segmentHeaderSize)
	}
	if string(h[:len(segmentMagic)]) != segmentMagic {
		return "bad segment magic"
	}
	if v := h[len(segmentMagic)]; v != segmentVersion {
		return fmt.Sprintf("unsupported segment format version %d (want %d)", v, segmentVersion)
	}
	return ""
}

// recordReader reads records sequentially from one segment through a
// buffer, so scanning a large segment costs one read per buffer, not per
// record, and memory is bounded by the largest payload.
type recordReader struct {
	r       *bufio.Reader
	off     int64 // offset of the next record
	size    int64 // bytes of the segment to read
	prevLSN uint64
	minLSN  uint64 // the segment's base: no record below it
	hdr     [frameHeaderSize]byte
	buf     []byte
}

func newRecordReader(f io.ReaderAt, size int64, minLSN, prevLSN uint64) *recordReader {
	return &recordReader{
		r:       bufio.NewReaderSize(io.NewSectionReader(f, 0, size), int(min(size, 256<<10))),
		size:    size,
		prevLSN: prevLSN,
		minLSN:  minLSN,
	}
}

// skipHeader moves past the segment header, returning a reason if it is
// damaged.
func (rr *recordReader) skipHeader() (string, error) {
	n := min(rr.size, int64(segmentHeaderSize))
	h := make([]byte, n)
	if _, err := io.ReadFull(rr.r, h); err != nil {
		return "", err
	}
	if reason := checkSegmentHeader(h); reason != "" {
		return reason, nil
	}
	rr.off = int64(segmentHeaderSize)
	return "", nil
}

// next returns the next record. At the clean end of the segment err is
// io.EOF; a non-empty reason means the record at rr.off is damaged and rr
// does not advance. The payload is valid until the next call.
//
// Zeros from rr.off to the end are a clean end too: the log fills a
// segment with zeros ahead of its records (WAL.preallocate). Zeros
// followed by anything else are damage, as any other bad header is.
func (rr *recordReader) next() (lsn uint64, payload []byte, reason string, err error) {
	remaining := rr.size - rr.off
	if remaining == 0 {
		return 0, nil, "", io.EOF
	}
	if remaining < frameHeaderSize {
		zero, err := rr.restIsZero(nil)
		if err != nil {
			return 0, nil, "", err
		}
		if zero {
			return 0, nil, "", io.EOF
		}
		return 0, nil, fmt.Sprintf("truncated record header (%d of %d bytes)", remaining, frameHeaderSize), nil
	}
	if _, err := io.ReadFull(rr.r, rr.hdr[:]); err != nil {
		return 0, nil, "", err
	}
	if allZero(rr.hdr[:]) {
		zero, err := rr.restIsZero(rr.hdr[:])
		if err != nil {
			return 0, nil, "", err
		}
		if zero {
			return 0, nil, "", io.EOF
		}
	}
	fh, reason := decodeHeader(rr.hdr[:])
	if reason != "" {
		return 0, nil, reason, nil
	}
	if fh.lsn <= rr.prevLSN {
		return 0, nil, fmt.Sprintf("record lsn %d not above previous lsn %d", fh.lsn, rr.prevLSN), nil
	}
	if fh.lsn < rr.minLSN {
		return 0, nil, fmt.Sprintf("record lsn %d below the segment's first lsn %d", fh.lsn, rr.minLSN), nil
	}
	if int64(fh.length) > remaining-frameHeaderSize {
		return 0, nil, fmt.Sprintf("truncated record payload (%d of %d bytes)", remaining-frameHeaderSize, fh.length), nil
	}
	if cap(rr.buf) < int(fh.length) {
		rr.buf = make([]byte, fh.length)
	}
	payload = rr.buf[:fh.length]
	if _, err := io.ReadFull(rr.r, payload); err != nil {
		return 0, nil, "", err
	}
	if payloadChecksum(payload) != fh.payloadCRC {
		return 0, nil, "record payload checksum mismatch", nil
	}
	rr.off += frameHeaderSize + int64(fh.length)
	rr.prevLSN = fh.lsn
	return fh.lsn, payload, "", nil
}

// restIsZero reports whether every byte from rr.off to the end of the
// segment is zero, read is what of it was already read. It consumes the
// reader: after it, only a clean end or damage at rr.off is reported.
func (rr *recordReader) restIsZero(read []byte) (bool, error) {
	if !allZero(read) {
		return false, nil
	}
	left := rr.size - rr.off - int64(len(read))
	buf := make([]byte, min(left, 64<<10))
	for left > 0 {
		n := min(left, int64(len(buf)))
		if _, err := io.ReadFull(rr.r, buf[:n]); err != nil {
			return false, err
		}
		if !allZero(buf[:n]) {
			return false, nil
		}
		left -= n
	}
	return true, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// scanHeaders looks at every offset in [from, size) for a record header
// whose checksum validates with an LSN above `above`. It tells torn tails
// (nothing valid after the damage) from corruption (a later record
// survived), and finds the highest LSN that may have been handed out.
func scanHeaders(f io.ReaderAt, from, size int64, above uint64) (firstOff int64, maxLSN uint64, found bool, err error) {
	if size-from < frameHeaderSize {
		return -1, 0, false, nil
	}
	chunk := min(int64(1<<20), size-from)
	buf := make([]byte, chunk+frameHeaderSize)
	firstOff = -1
	for base := from; base+frameHeaderSize <= size; base += chunk {
		n := min(int64(len(buf)), size-base)
		if _, err := f.ReadAt(buf[:n], base); err != nil && err != io.EOF {
			return 0, 0, false, err
		}
		for i := int64(0); i < chunk && i+frameHeaderSize <= n; i++ {
			fh, reason := decodeHeader(buf[i : i+frameHeaderSize])
			if reason != "" || fh.lsn <= above {
				continue
			}
			if !found {
				firstOff, found = base+i, true
			}
			maxLSN = max(maxLSN, fh.lsn)
		}
	}
	return firstOff, maxLSN, found, nil
}
