// Package wire has one job: bounds-checked decoding and appending of the
// project's binary frames (the vclock encodings, the replication frames).
//
// A Decoder reads canonical fields front to back: minimal uvarints,
// zigzag varints, length-prefixed byte strings under a limit, element
// counts checked against the bytes left before anyone allocates, and no
// trailing bytes. Every error wraps the sentinel the owning package gave
// NewDecoder (so errors.Is(err, vclock.ErrMalformed) holds) and names the
// offset of what it rejects. The Append and Len helpers produce exactly the
// encodings the Decoder accepts and size buffers for them.
//
// It imports nothing of ours, so any package may use it without a cycle.
package wire
